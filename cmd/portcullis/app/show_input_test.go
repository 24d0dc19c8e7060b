package app

import "testing"

// --show-input prints data.portcullis.config and, per object, the input of
// the mutating policies (the object as written, input.namespace from
// --namespace-labels) and of the validating ones (the object as mutated:
// default_team's team label); with --no-mutate only the latter, unmutated.
// The report is not printed; the exit code is the decision's.
func TestValidateShowInputGolden(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"show-input.json", []string{"--namespace-labels", "default=tier=prod"}, 0},
		// The exit code is still the decision's: team_label denies the unmutated pod.
		{"show-input-no-mutate.json", []string{"--no-mutate"}, ExitDenied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "--builtin=false", "--policies", fixturePolicies,
				"-f", "testdata/manifests/show-input/pod.yaml", "--show-input"}, tt.args...)
			code, stdout, stderr := run(t, "", args...)
			if code != tt.wantCode || stderr != "" {
				t.Fatalf("exit %d (want %d), stderr %q", code, tt.wantCode, stderr)
			}
			golden(t, tt.name, stdout)
		})
	}
}
