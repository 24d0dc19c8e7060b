package engine

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// print() output reaches Source.Print tagged with the policy evaluated and
// the call's file:line, never the decision; without Print the calls are
// compiled out and the decision is the same.
func TestPrintOutput(t *testing.T) {
	t.Parallel()
	files := mapFS(map[string]string{
		"a.rego": validating("a", `deny contains "a denies" if {
	print("a sees", input.request.object.metadata.name)
	true
}`),
		"b.rego": validating("b", `deny contains "never" if false

warn contains "b warns" if {
	print("b sees", count(input.request.object.spec.containers))
}`),
	})
	var mu sync.Mutex
	var got []string
	src := Source{Policies: files, Print: func(policy, location, message string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s %s %s", policy, location, message))
	}}
	reg, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if !reg.oneByOne {
		t.Error("policies that print are evaluated in a combined query: print output would not name its policy")
	}
	req := podRequest(t, "shop", pod(nil, container("app", "nginx:1", false)))
	dec, err := New(reg, nil).Evaluate(context.Background(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`a a.rego:8 a sees web`, `b b.rego:10 b sees 1`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("printed %q\nwant %q", got, want)
	}
	plain, err := Load(context.Background(), Source{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	plainDec, err := New(plain, nil).Evaluate(context.Background(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec.Violations, plainDec.Violations) || !reflect.DeepEqual(dec.Warnings, plainDec.Warnings) || len(dec.Violations) != 1 {
		t.Errorf("with print: %+v %q\nwithout: %+v %q", dec.Violations, dec.Warnings, plainDec.Violations, plainDec.Warnings)
	}
}

// Print set on policies that never call print() changes nothing: print stays
// compiled out and the policies keep their combined queries.
func TestPrintUnusedKeepsCombinedQueries(t *testing.T) {
	t.Parallel()
	files := mapFS(map[string]string{
		"a.rego": validating("a", `deny contains "a" if false`),
		"b.rego": validating("b", `deny contains "b" if false`),
	})
	reg, err := Load(context.Background(), Source{Policies: files, Print: func(string, string, string) { t.Error("printed") }})
	if err != nil {
		t.Fatal(err)
	}
	if reg.oneByOne {
		t.Error("no print() call, yet policies are evaluated one by one")
	}
}
