package engine

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parallelEngine is an engine splitting every validating request over up to
// procs goroutines, whatever the machine's GOMAXPROCS.
func parallelEngine(reg *Registry, procs int32, observer Observer) *Engine {
	e := New(reg, observer, WithParallelism(1))
	e.procs = procs
	return e
}

// Splitting a request's validating policies over several combined queries
// must decide exactly what one query decides: the same violations,
// warnings, errors and order.
func TestParallelMatchesSerial(t *testing.T) {
	reg := loadBuiltin(t)
	ctx := context.Background()
	reqs := perfRequests(t)
	for _, name := range benchBodies {
		reqs[name], _ = benchRequest(t, name)
	}
	serial := New(reg, nil)
	for _, procs := range []int32{2, 3, 4} {
		parallel := parallelEngine(reg, procs, nil)
		for name, req := range reqs {
			sel := reg.selectPolicies(Validating, req.Resource.Resource, req.SubResource, Options{})
			if len(sel) < 2 {
				continue
			}
			if want := min(int(procs), len(sel), maxGroups); parallel.groups(Validating, req, len(sel)) != want {
				t.Fatalf("%s: not split in %d", name, want)
			}
			parallel.extra.Store(0)
			want, err := serial.Evaluate(ctx, Validating, req, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := parallel.Evaluate(ctx, Validating, req, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%d cores, %s:\nparallel %+v\nserial   %+v", procs, name, got, want)
			}
			if b, x := parallel.busy.Load(), parallel.extra.Load(); b != 0 || x != 0 {
				t.Fatalf("after the evaluation: %d busy, %d extra cores still taken", b, x)
			}
		}
	}
}

// groups splits only validating requests at least the threshold long, and
// only over the cores no other evaluation uses.
func TestParallelGroups(t *testing.T) {
	reg := loadBuiltin(t)
	req, _ := benchRequest(t, "large-pod")
	size := len(req.Object.Raw)
	tests := []struct {
		name        string
		minBytes    int
		procs       int32
		busy, extra int32
		phase       Phase
		n           int
		want        int
	}{
		{name: "idle machine: one group per core", minBytes: 1, procs: 4, busy: 1, n: 5, want: 4},
		{name: "at most maxGroups", minBytes: 1, procs: 16, busy: 1, n: 5, want: 4},
		{name: "no more groups than policies", minBytes: 1, procs: 4, busy: 1, n: 2, want: 2},
		{name: "other evaluations take cores", minBytes: 1, procs: 4, busy: 3, n: 5, want: 2},
		{name: "other requests' groups take cores", minBytes: 1, procs: 4, busy: 2, extra: 1, n: 5, want: 2},
		{name: "saturated: one query", minBytes: 1, procs: 4, busy: 4, n: 5, want: 1},
		{name: "one core", minBytes: 1, procs: 1, busy: 1, n: 5, want: 1},
		{name: "below the threshold", minBytes: size + 1, procs: 4, busy: 1, n: 5, want: 1},
		{name: "at the threshold", minBytes: size, procs: 4, busy: 1, n: 5, want: 4},
		{name: "disabled", minBytes: 0, procs: 4, busy: 1, n: 5, want: 1},
		{name: "mutating requests are never split", minBytes: 1, procs: 4, busy: 1, phase: Mutating, n: 2, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := New(reg, nil, WithParallelism(tc.minBytes))
			e.procs = tc.procs
			e.busy.Store(tc.busy)
			e.extra.Store(tc.extra)
			phase := tc.phase
			if phase == "" {
				phase = Validating
			}
			if got := e.groups(phase, req, tc.n); got != tc.want {
				t.Errorf("groups = %d, want %d", got, tc.want)
			}
			if got := e.extra.Load(); got != tc.extra+int32(tc.want-1) {
				t.Errorf("extra = %d, want %d", got, tc.extra+int32(tc.want-1))
			}
		})
	}
}

// A policy raising a built-in error in one group is attributed to it alone,
// as in one query; the other groups' results are kept.
func TestParallelBuiltinErrorNamesThePolicy(t *testing.T) {
	reg := mustLoad(t, mapFS(map[string]string{
		"a/a.rego":     validating("a", `deny contains {"msg": "a denies"} if input.request.namespace == "default"`),
		"bad/bad.rego": validating("bad", `deny contains {"msg": "too many"} if to_number(input.request.object.metadata.name) > 3`),
		"c/c.rego":     validating("c", `deny contains {"msg": "c denies"} if input.request.namespace == "default"`),
		"d/d.rego":     validating("d", `deny contains {"msg": "never"} if false`),
	}))
	p := pod(nil)
	p["metadata"].(map[string]any)["name"] = "web"
	req := podRequest(t, "default", p)
	want, err := New(reg, nil).Evaluate(t.Context(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := parallelEngine(reg, 2, nil).Evaluate(t.Context(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Decision{got, want} {
		for i := range d.Errors {
			d.Errors[i].Err = nil
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parallel %+v\nserial   %+v", got, want)
	}
	if len(got.Errors) != 1 || got.Errors[0].Policy != "bad" || got.Errors[0].Code != "eval_builtin_error" {
		t.Errorf("errors = %+v, want bad's eval_builtin_error", got.Errors)
	}
	if msg := got.Message(); !strings.Contains(msg, "[a] a denies") || !strings.Contains(msg, "[c] c denies") {
		t.Errorf("message = %q, want a's and c's violations", msg)
	}
}

// A runaway policy in one group times out and is named; policies of other
// groups, evaluated at the same time, keep their results (one query would
// have skipped the ones after it).
func TestParallelTimeoutNamesThePolicy(t *testing.T) {
	reg := mustLoad(t, mapFS(map[string]string{
		"a/a.rego":       validating("a", `deny contains {"msg": "a denies"} if input.request.namespace == "default"`),
		"loop/loop.rego": validating("loop", loopPolicy),
		"z/z.rego":       validating("z", `deny contains {"msg": "z denies"} if input.request.namespace == "default"`),
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	dec, err := parallelEngine(reg, 3, nil).Evaluate(ctx, Validating, podRequest(t, "default", pod(nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Violation{
		{Policy: "a", Enforcement: EnforceDeny, Message: "a denies"},
		{Policy: "loop", Enforcement: EnforceDeny, Message: "policy timed out; denied by its failure mode (deny)"},
		{Policy: "z", Enforcement: EnforceDeny, Message: "z denies"},
	}
	if !reflect.DeepEqual(dec.Violations, want) {
		t.Errorf("violations = %+v\nwant %+v", dec.Violations, want)
	}
	if len(dec.Errors) != 1 || dec.Errors[0].Policy != "loop" || !dec.Errors[0].TimedOut {
		t.Errorf("errors = %+v, want loop timed out", dec.Errors)
	}
}
