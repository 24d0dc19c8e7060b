package app

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// issue4Dir holds the realistic manifests of the image_sources,
// secret_handling and apparmor policies (issue 4), the configuration that
// switches their optional modes on, and their golden outputs.
const issue4Dir = "../testdata/issue4"

// TestValidateIssue4Golden runs `portcullis validate` with the built-in
// policy set on a Helm-style Deployment, a CronJob, a Pod with ephemeral
// containers and a ConfigMap with a Secret, each in an admitted and a
// denied variant: all three policies together, each policy alone on the
// denied variants, and some with the default configuration. Goldens are
// rewritten with UPDATE_GOLDEN=1.
func TestValidateIssue4Golden(t *testing.T) {
	type tc struct {
		golden   string
		args     []string
		wantCode int
	}
	all := []string{"--policy", "image_sources", "--policy", "secret_handling", "--policy", "apparmor"}
	config := []string{"--config", filepath.Join(issue4Dir, "config.yaml")}
	var tests []tc
	for _, shape := range []string{"deployment", "cronjob", "pod-ephemeral", "configmap"} {
		for variant, code := range map[string]int{"admitted": ExitOK, "denied": ExitDenied} {
			file := shape + "-" + variant
			args := append([]string{"-f", filepath.Join(issue4Dir, file+".yaml")}, config...)
			tests = append(tests, tc{file + ".txt", append(slices.Clone(args), all...), code})
			if variant != "denied" {
				continue
			}
			for _, policy := range []string{"image_sources", "secret_handling", "apparmor"} {
				if shape == "configmap" && policy != "secret_handling" {
					continue // ConfigMaps and Secrets are secret_handling's alone
				}
				tests = append(tests, tc{file + "." + policy + ".txt", append(slices.Clone(args), "--policy", policy), ExitDenied})
			}
		}
	}
	tests = append(tests,
		// Defaults: no allowlists, so the Localhost profile of the admitted
		// Deployment is denied, and only what needs no setting is reported.
		tc{"deployment-admitted.defaults.txt", append([]string{"-f", filepath.Join(issue4Dir, "deployment-admitted.yaml")}, all...), ExitDenied},
		tc{"pod-ephemeral-denied.defaults.txt", append([]string{"-f", filepath.Join(issue4Dir, "pod-ephemeral-denied.yaml")}, all...), ExitDenied},
		tc{"deployment-denied.json", append(append([]string{"-f", filepath.Join(issue4Dir, "deployment-denied.yaml"), "-o", "json"}, config...), all...), ExitDenied},
	)
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := run(t, "", append([]string{"validate"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stdout: %s; stderr: %s", code, tt.wantCode, out, errOut)
			}
			if errOut != "" {
				t.Errorf("unexpected stderr: %s", errOut)
			}
			issue4Golden(t, tt.golden, out)
		})
	}
}

// TestValidateIssue4NoSecretEcho: the credentials in the denied manifests
// appear in no output format, not even in part.
func TestValidateIssue4NoSecretEcho(t *testing.T) {
	canaries := []string{"hunter2", "canarykey", "canarypass42", "ghp_canary", "canaryCANARY", "AKIACANARY", "CANARY0123456789", "MIIEvQ", "BEGIN PRIVATE KEY"}
	for _, output := range []string{"text", "json", "junit"} {
		for _, file := range []string{"deployment-denied.yaml", "cronjob-denied.yaml", "pod-ephemeral-denied.yaml", "configmap-denied.yaml"} {
			_, out, errOut := run(t, "", "validate", "-o", output, "-f", filepath.Join(issue4Dir, file), "--config", filepath.Join(issue4Dir, "config.yaml"),
				"--policy", "image_sources", "--policy", "secret_handling", "--policy", "apparmor")
			for _, c := range canaries {
				if strings.Contains(strings.ToLower(out+errOut), strings.ToLower(c)) {
					t.Errorf("-o %s %s: output contains %q", output, file, c)
				}
			}
		}
	}
}

// issue4Golden is golden() for the goldens under issue4Dir/golden.
func issue4Golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(issue4Dir, "golden", name)
	if updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
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
