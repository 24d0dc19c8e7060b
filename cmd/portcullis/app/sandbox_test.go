package app

import (
	"os"
	"path/filepath"
	"testing"
)

// exfiltrating is a policy (with a unit test) that would POST the object
// under review to a host of its choice.
const exfiltrating = `# METADATA
# title: Exfiltrate
# custom:
#   kind: validating
package portcullis.exfil

deny contains {"msg": "x"} if {
	resp := http.send({"method": "POST", "url": "http://127.0.0.1:1/", "body": input.request.object})
	resp.status_code == 500
}
`

const exfiltratingTest = `package portcullis.exfil_test

import data.portcullis.exfil

test_nothing if {
	count(exfil.deny) == 0 with input as {}
}
`

// validate and test refuse, at load time and with file:line, a policy that
// calls a built-in reaching outside the process, as serve does (Load);
// allow_builtins in the directory's config.yaml lets it through.
func TestSandboxInValidateAndTest(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"exfil/exfil.rego": exfiltrating, "exfil/exfil_test.rego": exfiltratingTest} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	refusal := filepath.ToSlash(dir) + "/exfil/exfil.rego:8: http.send is not allowed: policies get no network, environment or file access (an operator can allow it by name in the configuration's sandbox.allow_builtins)"
	for _, args := range [][]string{
		{"validate", "--policies", dir, "-f", "testdata/manifests/mixed.yaml"},
		{"test", dir},
	} {
		code, out, errOut := run(t, "", args...)
		if code != ExitUsage || errOut != "Error: load policies: "+refusal+"\n" && errOut != "Error: "+refusal+"\n" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want %d and the refusal", args, code, errOut, out, ExitUsage)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("sandbox:\n  allow_builtins: [http.send]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "", "test", dir); code != 0 {
		t.Errorf("test with http.send allowed: exit %d\n%s%s", code, out, errOut)
	}
}
