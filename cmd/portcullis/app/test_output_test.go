package app

import (
	"fmt"
	"regexp"
	"testing"
)

// durations vary from run to run; the goldens hold them as zero.
var testDurations = regexp.MustCompile(`("duration_ms": )[0-9.e+-]+|( time="|: (?:FAIL|ERROR|PASS) \()[0-9.]+(µs|ms|ns|s)?(")?`)

func zeroDurations(s string) string {
	return testDurations.ReplaceAllStringFunc(s, func(m string) string {
		sub := testDurations.FindStringSubmatch(m)
		if sub[1] != "" {
			return sub[1] + "0"
		}
		if sub[4] == "" {
			return sub[2] + "0" + sub[3]
		}
		return sub[2] + "0.000" + sub[4]
	})
}

// `portcullis test -o text|json|junit`: the Rego unit tests' and the suite
// cases' results (name, file, pass/fail, failure reasons, duration); JUnit
// has one testsuite per file and one testcase per test or case.
func TestTestOutputFormats(t *testing.T) {
	dir := "testdata/testfmt"
	tests := []struct {
		golden string
		args   []string
	}{
		{"test-output-text.txt", []string{"test", "--builtin=false", dir}},
		{"test-output-json.txt", []string{"test", "--builtin=false", "-o", "json", dir}},
		{"test-output-junit.txt", []string{"test", "--builtin=false", "-o", "junit", dir}},
		{"test-output-json-pass.txt", []string{"test", "--builtin=false", "-o", "json", "--run", "configured", "testdata/author/config-good"}},
		{"test-output-junit-coverage.txt", []string{"test", "--builtin=false", "-o", "junit", "--coverage", "testdata/author/config-good"}},
		{"test-output-bad-format.txt", []string{"test", "-o", "yaml", dir}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := run(t, "", tt.args...)
			golden(t, tt.golden, zeroDurations(fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, out, errOut)))
		})
	}
}
