package engine

import (
	"context"
	"reflect"
	"testing"
)

// Explain names the deny/warn rule bodies that fired, with their file,
// line and message; bodies that did not fire are not listed.
func TestExplainFirings(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"x.rego": validating("x", `deny contains {"msg": "no team"} if {
	not input.request.object.metadata.labels.team
}

deny contains "never" if false

warn contains sprintf("pod %s", [input.request.object.metadata.name]) if {
	true
}

warn contains "pulls from https://bob:hunter2@registry.example/app"`)}))
	req := podRequest(t, "shop", pod(nil, container("app", "nginx:1", false)))
	got, trace, err := New(reg, nil).Explain(context.Background(), req, "x")
	if err != nil {
		t.Fatal(err)
	}
	want := []Firing{
		{Rule: "deny", File: "x.rego", Row: 7, Message: "no team"},
		{Rule: "warn", File: "x.rego", Row: 13, Message: "pod web"},
		// Redacted as the decision's warning is.
		{Rule: "warn", File: "x.rego", Row: 17, Message: "pulls from https://REDACTED@registry.example/app"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("firings %+v\nwant %+v", got, want)
	}
	if len(trace.Events) == 0 {
		t.Error("no trace")
	}
}
