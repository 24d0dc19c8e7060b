package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// perfRequests are requests over the built-in policies: the bench-load
// bodies, the webhook test reviews (denied, warned, mutated, deleted), and
// pods the mutating policies edit.
func perfRequests(t *testing.T) map[string]*admissionv1.AdmissionRequest {
	t.Helper()
	reqs := map[string]*admissionv1.AdmissionRequest{}
	for _, name := range benchBodies {
		reqs[name], _ = benchRequest(t, name)
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "webhooks", "testdata", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var review admissionv1.AdmissionReview
		if json.Unmarshal(raw, &review) != nil || review.Request == nil {
			continue
		}
		reqs[filepath.Base(f)] = review.Request
	}
	bare := pod(map[string]any{"app.kubernetes.io/name": "web"}, container("app", "registry.example.com/app:1.0", false))
	reqs["bare pod (mutated)"] = podRequest(t, "default", bare)
	vault := pod(map[string]any{"app.kubernetes.io/name": "web"}, container("app", "nginx:latest", true))
	vault["metadata"].(map[string]any)["annotations"] = map[string]any{
		"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/role": "web",
		"vault.hashicorp.com/agent-inject-secret-db": "database/creds/web",
	}
	reqs["vault pod, privileged, latest"] = podRequest(t, "default", vault)
	return reqs
}

// Evaluating the policies of a phase together must decide exactly what
// evaluating them one by one decides.
func TestPolicySetMatchesOneByOne(t *testing.T) {
	together := loadBuiltin(t)
	oneByOne := loadBuiltin(t)
	oneByOne.oneByOne = true
	ctx := context.Background()
	for name, req := range perfRequests(t) {
		for _, phase := range []Phase{Validating, Mutating} {
			if sel := together.selectPolicies(phase, req.Resource.Resource, req.SubResource, Options{}); len(sel) > 1 && together.policySet(ctx, sel) == nil {
				t.Errorf("%s %s: policies %s not combined", name, phase, setKey(sel))
			}
			a, err := New(together, nil).Evaluate(ctx, phase, req, Options{})
			if err != nil {
				t.Fatalf("%s %s: %v", name, phase, err)
			}
			b, err := New(oneByOne, nil).Evaluate(ctx, phase, req, Options{})
			if err != nil {
				t.Fatalf("%s %s: %v", name, phase, err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s %s:\ntogether   %+v\none by one %+v", name, phase, a, b)
			}
		}
	}
}

// With the policies evaluated together, a runaway policy is still named, the
// results of the policies before it are kept, and the ones after it are
// handled as when evaluating one by one (no time left: timed out).
func TestPolicySetTimeoutNamesThePolicy(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{
		"a/a.rego":       validating("a", `deny contains {"msg": "a denies"} if input.request.namespace == "default"`),
		"loop/loop.rego": validating("loop", loopPolicy),
		"z/z.rego":       validating("z", `deny contains {"msg": "z denies"} if input.request.namespace == "default"`),
	}))
	if reg.policySet(context.Background(), reg.Policies()) == nil {
		t.Fatal("policies not combined")
	}
	obs := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	dec, err := New(reg, obs).Evaluate(ctx, Validating, podRequest(t, "default", pod(nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Violation{
		{Policy: "a", Enforcement: EnforceDeny, Message: "a denies"},
		{Policy: "loop", Enforcement: EnforceDeny, Message: "policy timed out; denied by its failure mode (deny)"},
		{Policy: "z", Enforcement: EnforceDeny, Message: "policy was not evaluated: the deadline had passed; denied by its failure mode (deny)"},
	}
	if !reflect.DeepEqual(dec.Violations, want) {
		t.Errorf("violations = %+v\nwant %+v", dec.Violations, want)
	}
	if len(dec.Errors) != 2 || dec.Errors[0].Policy != "loop" || !dec.Errors[0].TimedOut ||
		dec.Errors[1].Policy != "z" || dec.Errors[1].TimedOut || !dec.Errors[1].Skipped {
		t.Errorf("errors = %+v", dec.Errors)
	}
	wantSeen := []string{"validating/a/denied", "validating/loop/timeout", "validating/z/skipped"}
	if !reflect.DeepEqual(obs.seen, wantSeen) {
		t.Errorf("observed %q, want %q", obs.seen, wantSeen)
	}
}

// A policy whose deny is a complete rule (possibly undefined) is evaluated on
// its own, so it cannot make the set's query undefined for the others.
func TestPolicySetNeedsMultiValueRules(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{
		"a/a.rego": validating("a", `deny contains {"msg": "a denies"} if true`),
		"b/b.rego": validating("b", `deny := {{"msg": "b denies"}} if input.request.namespace == "other"`),
	}))
	if reg.policySet(context.Background(), reg.Policies()) != nil {
		t.Fatal("a policy with a single-value deny was combined")
	}
	dec := evaluate(t, reg, Validating, podRequest(t, "default", pod(nil)))
	if want := []Violation{{Policy: "a", Enforcement: EnforceDeny, Message: "a denies"}}; !reflect.DeepEqual(dec.Violations, want) {
		t.Errorf("violations = %+v", dec.Violations)
	}
}

// cacheRecorder counts decision-cache hits and misses.
type cacheRecorder struct {
	recorder
	mu           sync.Mutex
	hits, misses int
}

func (c *cacheRecorder) ObserveCache(_ Phase, hit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hit {
		c.hits++
	} else {
		c.misses++
	}
}

func TestDecisionCache(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{
		"team/team.rego": validating("team", `deny contains {"msg": sprintf("%s/%s by %s needs a team label", [input.request.namespace, input.request.name, input.request.userInfo.username])} if {
	not input.request.object.metadata.labels.team
}`),
	}))
	obs := &cacheRecorder{}
	eng := New(reg, obs, WithDecisionCache(16, 0))
	base := podRequest(t, "default", pod(nil))
	base.UserInfo = authnv1.UserInfo{Username: "alice"}
	// The first request's decision is not stored (the doorkeeper), the
	// second's is.
	var first *Decision
	for range 2 {
		var err error
		if first, err = eng.Evaluate(context.Background(), Validating, base, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if obs.hits != 0 {
		t.Fatalf("hits = %d before any decision was stored", obs.hits)
	}
	if want := "[team] default/web by alice needs a team label"; first.Message() != want {
		t.Fatalf("message = %q, want %q", first.Message(), want)
	}
	variants := map[string]func(r *admissionv1.AdmissionRequest){
		"new uid (hit)": func(r *admissionv1.AdmissionRequest) { r.UID = "another-uid" },
		"user":          func(r *admissionv1.AdmissionRequest) { r.UserInfo.Username = "bob" },
		"groups":        func(r *admissionv1.AdmissionRequest) { r.UserInfo.Groups = []string{"admins"} },
		"extra":         func(r *admissionv1.AdmissionRequest) { r.UserInfo.Extra = map[string]authnv1.ExtraValue{"k": {"v"}} },
		"namespace":     func(r *admissionv1.AdmissionRequest) { r.Namespace = "other" },
		"operation":     func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Update },
		"dry run":       func(r *admissionv1.AdmissionRequest) { d := true; r.DryRun = &d },
		"options": func(r *admissionv1.AdmissionRequest) {
			r.Options = runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions"}`)}
		},
		"old object": func(r *admissionv1.AdmissionRequest) { r.OldObject = runtime.RawExtension{Raw: []byte(`{}`)} },
		"object": func(r *admissionv1.AdmissionRequest) {
			r.Object.Raw = []byte(strings.Replace(string(r.Object.Raw), "web", "api", 1))
		},
		"sub-resource":    func(r *admissionv1.AdmissionRequest) { r.SubResource = "status" },
		"object null/{}":  func(r *admissionv1.AdmissionRequest) { r.Object.Raw = nil },
		"old object null": func(r *admissionv1.AdmissionRequest) { r.OldObject.Raw = []byte{} },
	}
	for name, change := range variants {
		req := *base
		change(&req)
		wantHit := strings.HasSuffix(name, "(hit)")
		before := obs.hits
		dec, err := eng.Evaluate(context.Background(), Validating, &req, Options{})
		if name == "old object null" {
			continue // an empty raw is a bad request; what matters is no hit on the null one
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if hit := obs.hits > before; hit != wantHit {
			t.Errorf("%s: hit = %v, want %v", name, hit, wantHit)
		}
		if wantHit && dec != first {
			t.Errorf("%s: a hit returned a different decision", name)
		}
	}
	// A different phase or policy selection is another key.
	before := obs.hits
	for range 2 {
		if _, err := eng.Evaluate(context.Background(), Validating, base, Options{Policies: []string{"team"}}); err != nil {
			t.Fatal(err)
		}
	}
	if obs.hits != before {
		t.Error("options.Policies shares the key of a full evaluation")
	}
	// A reload starts an empty cache.
	eng.Swap(reg)
	before = obs.hits
	if _, err := eng.Evaluate(context.Background(), Validating, base, Options{}); err != nil {
		t.Fatal(err)
	}
	if obs.hits != before {
		t.Error("cache survived a reload")
	}
}

// A decision that quotes the request UID is never served to another request.
func TestDecisionCacheNeverLeaksUID(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body      string
		cacheable bool // registry-level: a direct input.request.uid read disables caching
	}{
		"direct read": {`deny contains {"msg": sprintf("request %s", [input.request.uid])} if true`, false},
		"through an alias": {`deny contains {"msg": sprintf("request %s", [r.uid])} if {
	r := input.request
}`, true},
		"in details": {`deny contains {"msg": "no", "ref": object.get(input, ["request", "uid"], "")} if true`, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := mustLoad(t, mapFS(map[string]string{"u/u.rego": validating("u", tc.body)}))
			if reg.cacheable != tc.cacheable {
				t.Errorf("cacheable = %v, want %v", reg.cacheable, tc.cacheable)
			}
			eng := New(reg, nil, WithDecisionCache(16, 0))
			for _, uid := range []string{"uid-one", "uid-two"} {
				req := podRequest(t, "default", pod(nil))
				req.UID = types.UID("sensitive-" + uid)
				dec, err := eng.Evaluate(context.Background(), Validating, req, Options{})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(dec.Violations)
				if !strings.Contains(string(b), string(req.UID)) {
					t.Errorf("%s: decision %s does not name its own UID", uid, b)
				}
				if uid == "uid-two" && strings.Contains(string(b), "uid-one") {
					t.Errorf("decision for uid-two leaks uid-one: %s", b)
				}
			}
		})
	}
}

func TestDecisionCacheSkipsNondeterministicAndFailures(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"t/t.rego": validating("t", `deny contains {"msg": "late"} if time.now_ns() < 0`)}))
	if reg.cacheable {
		t.Error("a policy calling time.now_ns is cacheable")
	}
	loop := mustLoad(t, mapFS(map[string]string{"loop/loop.rego": validating("loop", loopPolicy)}))
	obs := &cacheRecorder{}
	eng := New(loop, obs, WithDecisionCache(16, 0))
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		dec, err := eng.Evaluate(ctx, Validating, podRequest(t, "default", pod(nil)), Options{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(dec.Errors) != 1 {
			t.Fatalf("errors = %+v", dec.Errors)
		}
	}
	if obs.hits != 0 || obs.misses != 2 {
		t.Errorf("hits %d misses %d: a timed-out decision was cached", obs.hits, obs.misses)
	}
}

func TestDecisionCacheBounds(t *testing.T) {
	t.Parallel()
	c := newDecisionCache(2, 1<<20)
	k := func(b byte) cacheKey { return cacheKey{b, 0, 0, 0, 0, 0, 0, 0, b} }
	// store puts a decision twice: the doorkeeper stores it the second time.
	store := func(c *decisionCache, key cacheKey, d *Decision) {
		c.put(key, d)
		c.put(key, d)
	}
	d1, d2, d3 := &Decision{}, &Decision{}, &Decision{}
	store(c, k(1), d1)
	store(c, k(2), d2)
	if _, ok := c.get(k(1)); !ok { // 1 is now the most recent
		t.Fatal("1 missing")
	}
	store(c, k(3), d3)
	if _, ok := c.get(k(2)); ok {
		t.Error("least recently used entry 2 not evicted")
	}
	for _, b := range []byte{1, 3} {
		if _, ok := c.get(k(b)); !ok {
			t.Errorf("%d evicted", b)
		}
	}
	// The byte bound evicts too, and one decision over a quarter of it is not kept.
	small := newDecisionCache(100, 16384)
	for b := range byte(5) {
		store(small, k(b), &Decision{Warnings: []string{strings.Repeat("w", 3000)}}) // ~3.5 KB each
	}
	if small.order.Len() != 4 || small.bytes > 16384 {
		t.Errorf("entries %d, bytes %d over a 16384-byte bound", small.order.Len(), small.bytes)
	}
	if _, ok := small.get(k(0)); ok {
		t.Error("oldest entry kept over the byte bound")
	}
	store(small, k(9), &Decision{Warnings: []string{strings.Repeat("w", 4096)}})
	if _, ok := small.get(k(9)); ok {
		t.Error("an oversized decision was cached")
	}
	if newDecisionCache(0, 0) != nil {
		t.Error("a zero-entry cache is not disabled")
	}
}

// The doorkeeper: a decision is stored the second time its key is seen, so
// a stream of unique requests stores nothing, and a repeated one is stored
// once.
func TestDecisionCacheDoorkeeper(t *testing.T) {
	t.Parallel()
	c := newDecisionCache(4096, 0)
	if len(c.seen) != 8192 {
		t.Errorf("doorkeeper of %d slots for 4096 entries, want 8192", len(c.seen))
	}
	key := func(i int) cacheKey {
		var k cacheKey
		binary.LittleEndian.PutUint64(k[:8], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(k[8:16], uint64(i))
		return k
	}
	for i := range 10000 {
		c.put(key(i), &Decision{})
	}
	if n := c.order.Len(); n != 0 {
		t.Errorf("%d decisions of unique requests stored", n)
	}
	d := &Decision{}
	c.put(key(42), d) // evicted from the doorkeeper by key(42+8192) since: seen again now
	if _, ok := c.get(key(42)); ok {
		t.Error("stored at its first sighting after its fingerprint was evicted")
	}
	c.put(key(42), d)
	if got, ok := c.get(key(42)); !ok || got != d {
		t.Error("not stored at its second sighting")
	}
	if n := c.order.Len(); n != 1 {
		t.Errorf("%d decisions stored, want 1", n)
	}
}

// The built-in policies are deterministic, so the server can cache them.
func TestBuiltinPoliciesCacheable(t *testing.T) {
	if reg := loadBuiltin(t); !reg.cacheable {
		t.Error("built-in policy set is not cacheable")
	}
}

// The engine's progress built-in is not for policies.
func TestReservedBuiltin(t *testing.T) {
	t.Parallel()
	_, err := Load(context.Background(), Source{Policies: mapFS(map[string]string{
		"x/x.rego": validating("x", `deny contains {"msg": "x"} if portcullis.internal.done(0, [])`),
	})})
	if want := "load policies: x/x.rego:7: portcullis.internal.done is reserved for the engine"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// A mutating decision served from the cache has the same patch; it does not
// keep the mutated object.
func TestDecisionCacheMutating(t *testing.T) {
	obs := &cacheRecorder{}
	eng := New(loadBuiltin(t), obs, WithDecisionCache(16, 0))
	req := podRequest(t, "default", pod(map[string]any{"app.kubernetes.io/name": "web"}, container("app", "registry.example.com/app:1.0", false)))
	first, err := eng.Evaluate(context.Background(), Mutating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Patch) == 0 || first.Object == nil {
		t.Fatalf("no mutation to cache: %+v", first)
	}
	again := *req
	again.UID = "second"
	if _, err := eng.Evaluate(context.Background(), Mutating, &again, Options{}); err != nil { // stored now (the doorkeeper)
		t.Fatal(err)
	}
	again.UID = "third"
	second, err := eng.Evaluate(context.Background(), Mutating, &again, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if obs.hits != 1 {
		t.Fatalf("hits = %d", obs.hits)
	}
	if !reflect.DeepEqual(second.Patch, first.Patch) || second.Object != nil || second.Allowed != first.Allowed {
		t.Errorf("cached decision %+v\nfirst %+v", second, first)
	}
}

// lateDeadline is a context whose deadline passes between the last policy's
// result and the end of the set's query: never cancelled while evaluating
// (Done is nil), expired when asked afterwards.
type lateDeadline struct{ context.Context }

func (lateDeadline) Done() <-chan struct{} { return nil }
func (lateDeadline) Err() error            { return context.DeadlineExceeded }

// A deadline passing after every policy of the set has its result keeps the
// results (the decision was complete in time) rather than blaming a policy
// past the end of the set.
func TestPolicySetDeadlineAfterLastPolicy(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{
		"a/a.rego": validating("a", `deny contains {"msg": "a denies"} if input.request.namespace == "default"`),
		"z/z.rego": validating("z", `deny contains {"msg": "z denies"} if input.request.namespace == "default"`),
	}))
	ps := reg.policySet(context.Background(), reg.Policies())
	if ps == nil {
		t.Fatal("policies not combined")
	}
	input, err := toInput(podRequest(t, "default", pod(nil)))
	if err != nil {
		t.Fatal(err)
	}
	res := ps.eval(lateDeadline{context.Background()}, input)
	if res.err != nil || len(res.results) != 2 {
		t.Errorf("results %d, err %v; want 2, none", len(res.results), res.err)
	}
}
