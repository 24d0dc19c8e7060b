package engine

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
)

// Input is the document the policies receive: a policy that echoes its
// input (json.marshal(input)) reports exactly what Input returns, with and
// without input.namespace.
func TestInputIsWhatPoliciesReceive(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"echo.rego": validating("echo", `deny contains json.marshal(input)`)}))
	labels := &staticLabels{labels: map[string]map[string]string{"shop": {"tier": "prod"}}}
	for name, eng := range map[string]*Engine{"plain": New(reg, nil), "labels": New(reg, nil, WithNamespaceLabels(labels))} {
		req := podRequest(t, "shop", pod(map[string]any{"app": "web"}, container("app", "nginx:1", false)))
		dec, err := eng.Evaluate(context.Background(), Validating, req, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(dec.Violations) != 1 {
			t.Fatalf("%s: violations %+v, want 1", name, dec.Violations)
		}
		in, err := eng.Input(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: Input: %v", name, err)
		}
		var seen, shown map[string]any
		if err := json.Unmarshal([]byte(dec.Violations[0].Message), &seen); err != nil {
			t.Fatalf("%s: policy output: %v", name, err)
		}
		if err := json.Unmarshal(in, &shown); err != nil {
			t.Fatalf("%s: Input output: %v", name, err)
		}
		if !reflect.DeepEqual(seen, shown) {
			t.Errorf("%s: Input\n%s\npolicy saw\n%s", name, in, dec.Violations[0].Message)
		}
		_, hasNS := shown["namespace"]
		if hasNS != (name == "labels") {
			t.Errorf("%s: input.namespace present %v", name, hasNS)
		}
	}
}
