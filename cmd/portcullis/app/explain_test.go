package app

import (
	"encoding/base64"
	"os"
	"path/filepath"
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

// --explain=full writes OPA's trace, which quotes what a policy's trace()
// calls write: the request's sensitive values (here an env value and an
// annotation) are redacted in it, as in print() output.
func TestValidateExplainFullRedacts(t *testing.T) {
	const canary = "explain-canary-hunter2"
	dir := writePolicies(t, map[string]string{"tracer/p.rego": `# METADATA
# title: Tracer
# custom:
#   kind: validating
package portcullis.tracer

deny contains "traced" if {
	trace(sprintf("object %v", [input.request.object]))
}
`})
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    example.com/token: ` + canary + `-annotation
spec:
  containers:
    - name: app
      image: nginx:1.27
      env:
        - name: PASSWORD
          value: ` + canary + `
`
	if err := os.WriteFile(manifest, []byte(pod), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "", "validate", "--builtin=false", "--policies", dir, "--no-mutate",
		"-f", manifest, "--explain=full")
	if code != ExitDenied {
		t.Fatalf("exit %d, want %d; stderr %q", code, ExitDenied, stderr)
	}
	if !strings.Contains(stderr, "trace of ") || !strings.Contains(stderr, "[REDACTED]") {
		t.Errorf("no redacted trace on stderr:\n%s", stderr)
	}
	for _, out := range []string{stdout, stderr} {
		if strings.Contains(out, canary) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(canary))) {
			t.Errorf("output leaks the env value:\n%s", out)
		}
	}
}
