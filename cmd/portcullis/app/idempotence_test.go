package app

import (
	"fmt"
	"testing"
)

// validate re-runs the mutating policies on their own result and warns,
// naming the policy and the patch paths, when the second pass changes the
// object: add_toleration appends an unnamed toleration on every pass;
// add_env appends a named env entry, which the second pass skips.
func TestValidateIdempotence(t *testing.T) {
	dir := "testdata/idempotence"
	base := []string{"validate", "--builtin=false", "--policies", dir, "-f", dir + "/pod.yaml"}
	tests := []struct {
		golden string
		args   []string
	}{
		{"idempotence-both.txt", base},
		{"idempotence-both-json.txt", append(append([]string(nil), base...), "-o", "json")},
		{"idempotence-idempotent.txt", append(append([]string(nil), base...), "--policy", "add_env", "--show-patch")},
		{"idempotence-builtin.txt", []string{"validate", "-f", dir + "/pod.yaml", "--show-patch"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := run(t, "", tt.args...)
			golden(t, tt.golden, fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, out, errOut))
		})
	}
}
