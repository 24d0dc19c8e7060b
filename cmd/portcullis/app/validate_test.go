package app

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = os.Getenv("UPDATE_GOLDEN") == "1"

// run executes the portcullis command line in-process.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// golden compares got with testdata/golden/name, rewriting it with UPDATE_GOLDEN=1.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (regenerate with UPDATE_GOLDEN=1): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file (UPDATE_GOLDEN=1 to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

const fixturePolicies = "testdata/policies"

func TestValidateGolden(t *testing.T) {
	stdin, err := os.ReadFile("testdata/manifests/mixed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	jsonStream, err := os.ReadFile("testdata/manifests/json-stream.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
	}{
		{"mixed.txt", []string{"-f", "testdata/manifests/mixed.yaml"}, "", ExitDenied},
		{"mixed.json", []string{"-f", "testdata/manifests/mixed.yaml", "-o", "json"}, "", ExitDenied},
		{"mixed.xml", []string{"-f", "testdata/manifests/mixed.yaml", "-o", "junit"}, "", ExitDenied},
		{"mixed-patch.json", []string{"-f", "testdata/manifests/mixed.yaml", "-o", "json", "--show-patch"}, "", ExitDenied},
		{"mixed-patch.txt", []string{"-f", "testdata/manifests/mixed.yaml", "--show-patch"}, "", ExitDenied},
		{"mixed-no-mutate.txt", []string{"-f", "testdata/manifests/mixed.yaml", "--no-mutate"}, "", ExitDenied},
		{"mixed-mutated.yaml", []string{"-f", "testdata/manifests/mixed.yaml", "-o", "yaml"}, "", ExitDenied},
		{"stdin.txt", []string{"-f", "-"}, string(stdin), ExitDenied},
		{"list.json", []string{"-f", "testdata/manifests/list.json", "-o", "json"}, "", ExitOK},
		{"dir.txt", []string{"-f", "testdata/manifests/dir", "-n", "team-a"}, "", ExitOK},
		{"only-privileged.txt", []string{"-f", "testdata/manifests/mixed.yaml", "--policy", "no_privileged"}, "", ExitDenied},
		{"only-team.txt", []string{"-f", "testdata/manifests/mixed.yaml", "--policy", "team_label", "--policy", "default_team"}, "", ExitDenied},
		{"audit-config.txt", []string{"-f", "testdata/manifests/mixed.yaml", "--config", "testdata/audit.yaml"}, "", ExitOK},

		// A concatenated JSON stream is two objects, as kubectl reads it.
		{"json-stream.txt", []string{"-f", "testdata/manifests/json-stream.json"}, "", ExitDenied},
		{"json-stream-stdin.txt", []string{"-f", "-"}, string(jsonStream), ExitDenied},
		{"json-stream.yaml", []string{"-f", "testdata/manifests/json-stream.json", "-o", "yaml"}, "", ExitDenied},
		// A repository: a Helm chart, package.json, a workflow and a
		// kustomization beside manifests; the objects are evaluated, the
		// rest listed as skipped; cluster-scoped kinds get no namespace.
		{"repo.txt", []string{"-f", "testdata/manifests/repo"}, "", ExitOK},
		{"repo.xml", []string{"-f", "testdata/manifests/repo", "-o", "junit"}, "", ExitOK},
		{"repo-top-level.txt", []string{"-f", "testdata/manifests/repo", "-R=false"}, "", ExitOK},
		{"kustomize.txt", []string{"-k", "testdata/manifests/kustomize/overlays/prod"}, "", ExitDenied},
		{"kustomize.yaml", []string{"-k", "testdata/manifests/kustomize/overlays/prod", "-o", "yaml", "--no-mutate"}, "", ExitDenied},
		{"schema.txt", []string{"-f", "testdata/manifests/schema.yaml"}, "", ExitDenied},
		{"schema.json", []string{"-f", "testdata/manifests/schema.yaml", "-o", "json"}, "", ExitDenied},
		{"crd.txt", []string{"-f", "testdata/manifests/crd.yaml"}, "", ExitDenied},
		{"schema-off.txt", []string{"-f", "testdata/manifests/schema.yaml", "--schema=false"}, "", ExitOK},
		{"statuses.txt", []string{"-f", "testdata/manifests/statuses.yaml"}, "", ExitOK},
		{"statuses-quiet.txt", []string{"-f", "testdata/manifests/statuses.yaml", "-f", "testdata/manifests/mixed.yaml", "-q"}, "", ExitDenied},
		{"statuses-fail-on-warn.txt", []string{"-f", "testdata/manifests/statuses.yaml", "--fail-on-warn"}, "", ExitDenied},
		{"statuses.github.txt", []string{"-f", "testdata/manifests/statuses.yaml", "-f", "testdata/manifests/mixed.yaml", "-o", "github"}, "", ExitDenied},
		{"mixed.sarif.json", []string{"-f", "testdata/manifests/mixed.yaml", "-f", "testdata/manifests/statuses.yaml", "-f", "testdata/manifests/broken.yaml", "-o", "sarif"}, "", ExitUsage},
		{"update.txt", []string{"-f", "testdata/manifests/update/new.yaml", "--operation", "UPDATE", "--old", "testdata/manifests/update/old.yaml"}, "", ExitDenied},
		{"update-unmatched-old.txt", []string{"-f", "testdata/manifests/update/new.yaml", "--operation", "UPDATE", "--old", "testdata/manifests/update/old.yaml", "--old", "testdata/manifests/mixed.yaml"}, "", ExitDenied},
		{"delete-denied.txt", []string{"-f", "testdata/manifests/update/old.yaml", "--operation", "delete", "--user", "bob", "--groups", "dev"}, "", ExitDenied},
		{"delete-admitted.txt", []string{"-f", "testdata/manifests/update/old.yaml", "--operation", "DELETE", "--user", "alice", "--groups", "dev,admins"}, "", ExitOK},
		// Files named on the command line that are not objects are errors,
		// listed after the results of the others.
		{"explicit-non-object.txt", []string{"-f", "testdata/manifests/repo/chart/values.yaml", "-f", "testdata/manifests/repo/deploy/app.yaml"}, "", ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "--builtin=false", "--policies", fixturePolicies}, tt.args...)
			code, out, errOut := run(t, tt.stdin, args...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tt.wantCode, errOut)
			}
			wantErr := ""
			if tt.wantCode == ExitUsage {
				wantErr = "Error: 1 input error (listed above)\n"
			}
			if errOut != wantErr {
				t.Errorf("stderr %q, want %q", errOut, wantErr)
			}
			golden(t, tt.name, out)
		})
	}
}

// TestValidateUsageErrors: bad flags and policies stop before any output.
func TestValidateUsageErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"no input", nil, "Error: no input: give -f FILE, -f DIR, -f - or -k DIR\n"},
		{"unknown policy", []string{"-f", "testdata/manifests/mixed.yaml", "--policy", "nope"},
			"Error: --policy \"nope\": no such policy (loaded: default_team, guarded_delete, immutable_team, no_privileged, team_label)\n"},
		{"bad output", []string{"-f", "testdata/manifests/mixed.yaml", "-o", "xml"},
			"Error: --output \"xml\": must be one of text, json, junit, sarif, github, yaml\n"},
		{"bad config", []string{"-f", "testdata/manifests/mixed.yaml", "--config", "testdata/bad-config.yaml"},
			"Error: load policies: config: policies.no_privileged.enforcement \"block\": must be deny, warn or audit\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "--builtin=false", "--policies", fixturePolicies}, tt.args...)
			code, out, errOut := run(t, "", args...)
			if code != ExitUsage {
				t.Fatalf("exit code %d, want %d; stdout: %s", code, ExitUsage, out)
			}
			if out != "" {
				t.Errorf("stdout should be empty on usage errors, got %q", out)
			}
			if errOut != tt.wantStderr {
				t.Errorf("stderr:\n got %q\nwant %q", errOut, tt.wantStderr)
			}
		})
	}
}

// TestValidateInputErrors: documents that cannot be read are listed after
// the results of every object that could (exit 2), in files named with -f.
func TestValidateInputErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantOut string
	}{
		{"broken yaml names the line", []string{"-f", "testdata/manifests/broken.yaml"}, "",
			"PASS Pod default/fine (testdata/manifests/broken.yaml:1 #0)\n" +
				"ERROR testdata/manifests/broken.yaml:6: invalid YAML: yaml: line 8: did not find expected ',' or '}'\n" +
				"1 object: 1 admitted, 0 denied, 0 warned, 0 exempt, 0 invalid, 0 errors; 1 input error, 0 skipped\n"},
		{"broken yaml on stdin", []string{"-f", "-"}, "{apiVersion: v1, kind: Pod, metadata: {name: a, labels: {team: search}}}\n---\n\tbad: [\n",
			"PASS Pod default/a (-:1 #0)\n" +
				"ERROR -:3: invalid YAML: yaml: found character that cannot start any token\n" +
				"1 object: 1 admitted, 0 denied, 0 warned, 0 exempt, 0 invalid, 0 errors; 1 input error, 0 skipped\n"},
		{"missing kind", []string{"-f", "testdata/manifests/nokind.yaml"}, "",
			"ERROR testdata/manifests/nokind.yaml:1: not a Kubernetes object: missing apiVersion or kind\n" +
				"0 objects: 0 admitted, 0 denied, 0 warned, 0 exempt, 0 invalid, 0 errors; 1 input error, 0 skipped\n"},
		{"scalar document", []string{"-f", "-"}, "just a string\n",
			"ERROR -:1: not a Kubernetes object (expected a mapping with apiVersion and kind)\n" +
				"0 objects: 0 admitted, 0 denied, 0 warned, 0 exempt, 0 invalid, 0 errors; 1 input error, 0 skipped\n"},
		{"missing file", []string{"-f", "testdata/manifests/nope.yaml", "-f", "testdata/manifests/dir"}, "",
			"PASS Pod default/in-dir (testdata/manifests/dir/a.yaml:1 #0)\n" +
				"PASS ConfigMap default/settings (testdata/manifests/dir/nested/b.yml:1 #0)\n" +
				"ERROR testdata/manifests/nope.yaml: stat testdata/manifests/nope.yaml: no such file or directory\n" +
				"2 objects: 2 admitted, 0 denied, 0 warned, 0 exempt, 0 invalid, 0 errors; 1 input error, 0 skipped\n"},
		{"update without its old object", []string{"-f", "testdata/manifests/dir/a.yaml", "--operation", "UPDATE", "--old", "testdata/manifests/dir/nested/b.yml"}, "",
			"ERROR testdata/manifests/dir/a.yaml:1: no old object for Pod default/in-dir in --old\n" +
				"SKIP testdata/manifests/dir/nested/b.yml:1: --old: ConfigMap default/settings matches no object of the input\n" +
				"0 objects: 0 admitted, 0 denied, 0 warned, 0 exempt, 0 invalid, 0 errors; 1 input error, 1 skipped\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "--builtin=false", "--policies", fixturePolicies}, tt.args...)
			code, out, errOut := run(t, tt.stdin, args...)
			if code != ExitUsage {
				t.Fatalf("exit code %d, want %d; stdout: %s", code, ExitUsage, out)
			}
			if out != tt.wantOut {
				t.Errorf("stdout:\n got %q\nwant %q", out, tt.wantOut)
			}
			if want := "Error: 1 input error (listed above)\n"; errOut != want {
				t.Errorf("stderr: got %q, want %q", errOut, want)
			}
		})
	}
}

// TestValidateDeterministic runs the same input repeatedly: same bytes, same exit code.
func TestValidateDeterministic(t *testing.T) {
	var first string
	for i := 0; i < 10; i++ {
		code, out, _ := run(t, "", "validate", "--builtin=false", "--policies", fixturePolicies, "-f", "testdata/manifests/mixed.yaml", "-o", "json", "--show-patch")
		if code != ExitDenied {
			t.Fatalf("run %d: exit %d", i, code)
		}
		if i == 0 {
			first = out
		} else if out != first {
			t.Fatalf("run %d differs:\n%s\nvs\n%s", i, out, first)
		}
	}
}

// TestValidateBuiltinGolden runs the embedded default policy set on the
// fixture manifests: the privileged pod is refused by pod_security, the plain
// pod and Deployment are admitted after the security_context defaults.
func TestValidateBuiltinGolden(t *testing.T) {
	code, out, errOut := run(t, "", "validate", "-f", "testdata/manifests/mixed.yaml", "--show-patch")
	if code != ExitDenied {
		t.Fatalf("exit %d, want %d: %s", code, ExitDenied, errOut)
	}
	golden(t, "builtin-mixed.txt", out)
}

// TestValidateDefaultPolicies runs the embedded default set, as a user would.
func TestValidateDefaultPolicies(t *testing.T) {
	code, out, errOut := run(t, "", "validate", "-f", "testdata/manifests/dir", "-o", "json")
	if code != ExitOK && code != ExitDenied {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"objects": 2`) {
		t.Errorf("expected 2 objects in summary, got %s", out)
	}
}

// runMainEnv makes the test binary run the command line instead of the
// tests (TestValidateInterrupted signals it as a separate process).
const runMainEnv = "PORTCULLIS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	flag.Parse()
	os.Exit(m.Run())
}
