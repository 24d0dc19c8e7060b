package app

import (
	"strings"
	"testing"
)

// --explain names, under each result, the deny/warn rule that fired with
// its file and line (text and JSON); --explain=full also writes OPA's trace
// of that policy, filtered to its file, to stderr.
func TestValidateExplainGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"explain.txt", []string{"--explain"}},
		{"explain.json", []string{"--explain", "-o", "json"}},
		{"explain-full.txt", []string{"--explain=full"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "--builtin=false", "--policies", fixturePolicies, "--no-mutate",
				"-f", "testdata/manifests/show-input/pod.yaml"}, tt.args...)
			code, stdout, stderr := run(t, "", args...)
			if code != ExitDenied {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitDenied, stderr)
			}
			golden(t, tt.name, stdout)
			if tt.name == "explain-full.txt" {
				golden(t, "explain-full.stderr", stderr)
			} else if stderr != "" {
				t.Errorf("stderr %q", stderr)
			}
		})
	}
	code, _, stderr := run(t, "", "validate", "--builtin=false", "--policies", fixturePolicies,
		"-f", "testdata/manifests/show-input/pod.yaml", "--explain=why")
	if want := "Error: --explain=\"why\": must be rules or full\n"; code != ExitUsage || !strings.HasPrefix(stderr, want) {
		t.Errorf("--explain=why: exit %d, stderr %q", code, stderr)
	}
}
