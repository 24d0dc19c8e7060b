package engine

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
)

// staticLabels is a NamespaceLabeler over a fixed map; a namespace missing
// from it is an error, and every lookup is counted.
type staticLabels struct {
	mu      sync.Mutex
	labels  map[string]map[string]string
	lookups int
}

func (s *staticLabels) NamespaceLabels(_ context.Context, ns string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	l, ok := s.labels[ns]
	if !ok {
		return nil, errors.New("namespace not found")
	}
	return l, nil
}

func (s *staticLabels) set(ns string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.labels[ns] = labels
}

// tierPolicy denies pods in namespaces labelled tier=prod that are not
// labelled owner, and reports input.namespace when it has no labels.
const tierPolicy = `
deny contains {"msg": "prod pods need an owner label"} if {
	input.namespace.labels.tier == "prod"
	not input.request.object.metadata.labels.owner
}

deny contains {"msg": sprintf("no labels for namespace %s", [input.namespace.name])} if {
	count(input.namespace.labels) == 0
}

warn contains "no namespace input" if not input.namespace
`

func TestNamespaceLabelsInput(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"tier.rego": validating("tier", tierPolicy)}))
	labels := &staticLabels{labels: map[string]map[string]string{
		"shop": {"tier": "prod"},
		"dev":  {"tier": "dev"},
		"bare": {},
	}}
	eng := New(reg, nil, WithNamespaceLabels(labels), WithDecisionCache(16, 0))
	p := pod(nil, container("app", "nginx:1", false))
	for _, tc := range []struct {
		ns         string
		wantDenied []string
	}{
		{"shop", []string{"prod pods need an owner label"}},
		{"dev", nil},
		{"bare", []string{"no labels for namespace bare"}},
	} {
		dec, err := eng.Evaluate(context.Background(), Validating, podRequest(t, tc.ns, p), Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.ns, err)
		}
		var got []string
		for _, v := range dec.Violations {
			got = append(got, v.Message)
		}
		if !reflect.DeepEqual(got, tc.wantDenied) || dec.Allowed != (tc.wantDenied == nil) || dec.Warnings != nil {
			t.Errorf("%s: allowed %v, violations %q, warnings %q; want %q", tc.ns, dec.Allowed, got, dec.Warnings, tc.wantDenied)
		}
	}

	// Without a labeler, or for a cluster-scoped object, there is no input.namespace.
	plain := New(reg, nil)
	dec, err := plain.Evaluate(context.Background(), Validating, podRequest(t, "shop", p), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !dec.Allowed || !reflect.DeepEqual(dec.Warnings, []string{"tier: no namespace input"}) {
		t.Errorf("no labeler: allowed %v, warnings %q", dec.Allowed, dec.Warnings)
	}
}

// The labels are part of the decision-cache key: relabelling a namespace
// changes the next decision on an identical request.
func TestNamespaceLabelsCacheKey(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"tier.rego": validating("tier", tierPolicy)}))
	labels := &staticLabels{labels: map[string]map[string]string{"shop": {"tier": "dev"}}}
	obs := &cacheRecorder{}
	eng := New(reg, obs, WithNamespaceLabels(labels), WithDecisionCache(16, 0))
	req := podRequest(t, "shop", pod(nil, container("app", "nginx:1", false)))
	allowed := func() bool {
		t.Helper()
		dec, err := eng.Evaluate(context.Background(), Validating, req, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return dec.Allowed
	}
	if !allowed() || !allowed() {
		t.Fatal("tier=dev: denied")
	}
	labels.set("shop", map[string]string{"tier": "prod"})
	if allowed() {
		t.Error("tier=prod after relabelling: allowed (a decision cached under the old labels was served)")
	}
	labels.set("shop", map[string]string{"tier": "dev"})
	if !allowed() {
		t.Error("tier=dev again: denied")
	}
	// dev: miss (seen once), miss (stored); prod: miss; dev again: hit.
	if want := [2]int{1, 3}; obs.counts() != want {
		t.Errorf("cache hits, misses = %v, want %v", obs.counts(), want)
	}
}

func (c *cacheRecorder) counts() [2]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return [2]int{c.hits, c.misses}
}

// A namespace whose labels cannot be read fails the evaluation (the server
// answers an error and the webhook's failurePolicy applies), as upstream Pod
// Security Admission does; cluster-scoped requests need no lookup.
func TestNamespaceLabelsLookupFails(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"tier.rego": validating("tier", tierPolicy)}))
	labels := &staticLabels{labels: map[string]map[string]string{}}
	eng := New(reg, nil, WithNamespaceLabels(labels))
	_, err := eng.Evaluate(context.Background(), Validating, podRequest(t, "gone", pod(nil)), Options{})
	if err == nil || err.Error() != `labels of namespace "gone": namespace not found` {
		t.Errorf("err = %v", err)
	}
	req := request(t, "Namespace", "namespaces", "", "", "gone", "CREATE", map[string]any{"kind": "Namespace"})
	reg2 := mustLoad(t, mapFS(map[string]string{"ns.rego": "# METADATA\n# title: ns\n# custom:\n#   kind: validating\n#   resources: [namespaces]\npackage portcullis.ns\n\ndeny contains \"has namespace input\" if input.namespace\n"}))
	eng2 := New(reg2, nil, WithNamespaceLabels(labels))
	dec, err := eng2.Evaluate(context.Background(), Validating, req, Options{})
	if err != nil || !dec.Allowed {
		t.Errorf("cluster-scoped: err %v, decision %+v", err, dec)
	}
	if labels.lookups != 1 {
		t.Errorf("lookups = %d, want 1", labels.lookups)
	}
}

// audit entries are violations with enforcement audit whatever the policy's
// enforcement: recorded, never rejecting, never warning.
func TestAuditRule(t *testing.T) {
	t.Parallel()
	src := `
deny contains "denied" if input.request.object.metadata.labels.deny
audit contains {"msg": "audited", "check": "a1"} if input.request.object.metadata.labels.audit
`
	reg := mustLoad(t, mapFS(map[string]string{"a.rego": validating("auditing", src)}))
	eng := New(reg, nil)
	eval := func(labels map[string]any) *Decision {
		t.Helper()
		dec, err := eng.Evaluate(context.Background(), Validating, podRequest(t, "default", pod(labels)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return dec
	}
	dec := eval(map[string]any{"audit": "x"})
	want := []Violation{{Policy: "auditing", Enforcement: EnforceAudit, Message: "audited", Details: map[string]any{"check": "a1"}}}
	if !dec.Allowed || !reflect.DeepEqual(dec.Violations, want) || dec.Warnings != nil {
		t.Errorf("audit only: %+v", dec)
	}
	dec = eval(map[string]any{"audit": "x", "deny": "x"})
	want = append([]Violation{{Policy: "auditing", Enforcement: EnforceDeny, Message: "denied"}}, want...)
	if dec.Allowed || !reflect.DeepEqual(dec.Violations, want) {
		t.Errorf("audit and deny: %+v", dec)
	}
	if got := dec.DeniedBy(EnforceAudit); !reflect.DeepEqual(got, []string{"auditing"}) {
		t.Errorf("DeniedBy(audit) = %q", got)
	}
}
