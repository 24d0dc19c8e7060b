package app

import (
	"fmt"
	"testing"
)

// `portcullis test` loads a policy directory as serve does: what serve
// refuses fails here with the same message (file:line), warnings are printed,
// and the tests see data.portcullis.config from the defaults, the
// directory's config.yaml and --config.
func TestTestLoadsLikeServe(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"author-no-metadata.txt", []string{"test", "testdata/author/no-metadata"}},
		{"author-kind-validate.txt", []string{"test", "testdata/author/kind-validate"}},
		{"author-enforcement-block.txt", []string{"test", "testdata/author/enforcement-block"}},
		{"author-deny-renamed.txt", []string{"test", "testdata/author/deny-renamed"}},
		{"author-resource-kind.txt", []string{"test", "testdata/author/resource-kind"}},
		{"author-config-typo.txt", []string{"test", "testdata/author/config-typo"}},
		{"author-setting-typo.txt", []string{"test", "testdata/author/setting-typo"}},
		{"author-config-good.txt", []string{"test", "testdata/author/config-good"}},
		{"author-config-flag.txt", []string{"test", "--config", "testdata/author/config-good/config.yaml", "--builtin=false", "testdata/author/config-typo/svc_ports"}},
		{"author-suite.txt", []string{"test", "--builtin=false", "testdata/author/suite"}},
		{"author-coverage.txt", []string{"test", "--coverage", "--coverage-min", "90", "testdata/author/config-good"}},
		{"author-serve-refuses.txt", []string{"validate", "--policies", "testdata/author/kind-validate", "-f", "testdata/manifests/mixed.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := run(t, "", tt.args...)
			golden(t, tt.golden, fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, out, errOut))
		})
	}
}
