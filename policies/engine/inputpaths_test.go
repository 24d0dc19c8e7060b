package engine

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// inputPaths lists the input references a policy can make: the ground
// prefix of every ref to input in its rules and in everything they depend
// on (the compiler's dependency graph, transitively), sorted. A policy that
// reaches a subtree through an alias (obj := input.request.object) reads
// it with a path the analysis cannot follow, so the listed prefix stands
// for the whole subtree.
func inputPaths(c *ast.Compiler, p *Policy) []string {
	seen := map[*ast.Rule]bool{}
	paths := map[string]bool{}
	var visit func(r *ast.Rule)
	visit = func(r *ast.Rule) {
		if seen[r] {
			return
		}
		seen[r] = true
		for node := r; node != nil; node = node.Else {
			ast.WalkRefs(node, func(ref ast.Ref) bool {
				if ref[0].Value.Compare(ast.InputRootDocument.Value) == 0 {
					paths[ref.GroundPrefix().String()] = true
				}
				return false
			})
			for dep := range c.Graph.Dependencies(node) {
				if d, ok := dep.(*ast.Rule); ok {
					visit(d)
				}
			}
		}
	}
	for _, rule := range p.rules() {
		for _, r := range c.GetRulesExact(ruleRef(p.ID, rule)) {
			visit(r)
		}
	}
	out := make([]string, 0, len(paths))
	for path := range paths {
		out = append(out, path)
	}
	sort.Strings(out)
	return out
}

// TestInputPathsOfBuiltinPolicies enumerates the input paths each built-in
// policy reads (golden: testdata/input-paths.golden) and checks that the
// request → input conversion keeps every one of them: a full UPDATE
// request (object, old object, options, user, namespace labels) converted as
// the server converts it has a value at each path's request-level member.
// A lever that converted less of the request (only what the policies read)
// would have to keep this test green; a policy reading a new part of the
// request changes the golden file.
func TestInputPathsOfBuiltinPolicies(t *testing.T) {
	reg := loadBuiltin(t)
	var b strings.Builder
	all := map[string]bool{}
	for _, p := range reg.policies {
		paths := inputPaths(reg.compiler, p)
		if len(paths) == 0 {
			t.Errorf("%s: no input path found", p.ID)
		}
		b.WriteString(p.ID + ":\n")
		for _, path := range paths {
			b.WriteString("  " + path + "\n")
			all[path] = true
		}
	}
	golden := filepath.Join("testdata", "input-paths.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("input paths changed (UPDATE_GOLDEN=1 to accept):\n%s\nwant:\n%s", b.String(), want)
	}

	// A request with every member a policy can read.
	dry := true
	req := &admissionv1.AdmissionRequest{
		UID:                "paths",
		Kind:               metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:           metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		SubResource:        "ephemeralcontainers",
		RequestKind:        &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		RequestResource:    &metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		RequestSubResource: "ephemeralcontainers",
		Name:               "web",
		Namespace:          "shop",
		Operation:          admissionv1.Update,
		UserInfo:           authnv1.UserInfo{Username: "alice", UID: "u", Groups: []string{"dev"}, Extra: map[string]authnv1.ExtraValue{"k": {"v"}}},
		DryRun:             &dry,
		Object:             runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"a":"b"}},"spec":{"containers":[{"name":"app","image":"x"}]}}`)},
		OldObject:          runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"y"}]}}`)},
		Options:            runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}`)},
	}
	e := New(reg, nil, WithNamespaceLabels(&staticLabels{labels: map[string]map[string]string{"shop": {"pod-security.kubernetes.io/enforce": "baseline"}}}))
	small, err := smallRequestJSON(req)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := e.namespaceJSON(context.Background(), req.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	input, err := toInputFrom(req, small, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range slices.Sorted(maps.Keys(all)) {
		ref := ast.MustParseRef(path)
		// The member of the request (or of input) the path goes through:
		// input.request.object, input.namespace.labels, input.request.operation.
		n := min(len(ref), 3)
		member := ref[1:n]
		if len(member) == 0 {
			continue // all of input: nothing narrower to check
		}
		if _, err := input.Find(member); err != nil {
			t.Errorf("%s: the converted input has no %s", path, ref[:n])
		}
	}
	// Every policy reads input.request as a whole (object.get on it, in the
	// lib and in pod_security), so every member of the request, as the API
	// encodes it, must be in the input.
	if !all["input.request"] {
		t.Fatal("no policy reads input.request whole any more: narrow this check")
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var members map[string]any
	if err := json.Unmarshal(raw, &members); err != nil {
		t.Fatal(err)
	}
	for name := range members {
		if _, err := input.Find(ast.Ref{ast.StringTerm("request"), ast.StringTerm(name)}); err != nil {
			t.Errorf("input.request.%s is missing from the converted input", name)
		}
	}
	if len(members) < 15 {
		t.Errorf("the request has only %d members: fill every field", len(members))
	}
}
