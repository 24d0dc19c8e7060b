package engine

import (
	"reflect"
	"testing"
)

// Which rules foldConstants computes at load: request-independent ones
// only; never one reading input, calling a non-deterministic built-in (in
// an expression or nested in a term) or raising an error, and nothing at
// all when a module uses `with`.
func TestFoldedRulesSelection(t *testing.T) {
	t.Parallel()
	body := `
limit := n if {
	n := data.portcullis.config.policies.f.limit
} else := 10

doubled := 2 * limit

names contains n if some n in ["a", "b"]

stamp := time.now_ns()

nested := {"at": time.now_ns()}

lucky := rand.intn("x", 100)

ns := input.request.namespace

broken := to_number("x")

already := 3

deny contains {"msg": "too many"} if count(input.request.object.spec.containers) > doubled
`
	tests := []struct {
		name  string
		extra string
		want  []string
	}{
		{
			name: "request-independent rules only",
			want: []string{"data.portcullis.f.doubled", "data.portcullis.f.limit", "data.portcullis.f.names"},
		},
		{
			name:  "a with anywhere: nothing",
			extra: "\nshadowed := x if {\n\tx := doubled with data.portcullis.config.policies.f.limit as 1\n}\n",
			want:  nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := mustLoad(t, mapFS(map[string]string{"f/f.rego": validating("f", body+tc.extra)}), "policies:\n  f:\n    limit: 4\n")
			if got := reg.FoldedRules(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("folded %q, want %q", got, tc.want)
			}
		})
	}
}
