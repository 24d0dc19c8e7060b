package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/types"
	admissionv1 "k8s.io/api/admission/v1"
)

// maxPolicySets bounds the prepared multi-policy queries a registry keeps
// (one per distinct selection of policies; the built-in set needs a handful).
const maxPolicySets = 256

// policySet is one prepared query evaluating several policies at once. It is
// cheaper than one query per policy: one evaluation context, and the library
// rules the policies share (the pod spec, the container list, the policy's
// config) are computed once per request instead of once per policy.
//
// The query evaluates the policies in order and, after each one, hands its
// result to a built-in scoped to this query (progressBuiltin), which records
// it with the time. So when the query fails or is cancelled, the results of
// the policies before the failure are kept, the policy that failed or timed
// out is known, and the attribution is the same as evaluating them one by one.
type policySet struct {
	policies []*Policy
	query    rego.PreparedEvalQuery
}

// progressBuiltin receives (index, [results of the policy's entry rules]).
const progressBuiltin = "portcullis.internal.done"

var progressDecl = &rego.Function{
	Name: progressBuiltin,
	Decl: types.NewFunction(types.Args(types.N, types.NewArray(nil, types.A)), types.B),
}

// progress is one evaluation's record of the policies done, in order.
type progress struct {
	values []*ast.Array
	at     []time.Time
}

type progressKey struct{}

func recordProgress(bctx rego.BuiltinContext, _, values *ast.Term) (*ast.Term, error) {
	if p, ok := bctx.Context.Value(progressKey{}).(*progress); ok {
		arr, _ := values.Value.(*ast.Array)
		p.values = append(p.values, arr)
		p.at = append(p.at, time.Now())
	}
	return ast.InternedTerm(true), nil
}

// policySets caches the prepared sets of a registry by their policy IDs.
type policySets struct {
	mu   sync.Mutex
	sets map[string]*policySet // nil value: cannot be combined
}

func setKey(policies []*Policy) string {
	var b strings.Builder
	for _, p := range policies {
		b.WriteString(p.ID)
		b.WriteByte(',')
	}
	return b.String()
}

// policySet returns the prepared query for exactly these policies (in this
// order), preparing it on first use, or nil when they cannot be combined.
func (r *Registry) policySet(ctx context.Context, policies []*Policy) *policySet {
	if len(policies) < 2 || r.oneByOne {
		return nil
	}
	key := setKey(policies)
	r.sets.mu.Lock()
	defer r.sets.mu.Unlock()
	if s, ok := r.sets.sets[key]; ok {
		return s
	}
	if len(r.sets.sets) >= maxPolicySets {
		return nil
	}
	s, err := r.prepareSet(ctx, policies)
	if err != nil {
		if ctx.Err() != nil {
			// The request's deadline, not the policies: try again next time.
			return nil
		}
		s = nil // evaluate them one by one; the per-policy queries compiled at load
	}
	if r.sets.sets == nil {
		r.sets.sets = map[string]*policySet{}
	}
	r.sets.sets[key] = s
	return s
}

func (r *Registry) prepareSet(ctx context.Context, policies []*Policy) (*policySet, error) {
	var parts []string
	for i, p := range policies {
		if !p.combinable {
			return nil, fmt.Errorf("policy %q cannot be combined", p.ID)
		}
		var names []string
		for _, rule := range p.rules() {
			name := bindingName(i, rule)
			parts = append(parts, fmt.Sprintf("%s := %s%s.%s", name, packagePrefix, p.ID, rule))
			names = append(names, name)
		}
		parts = append(parts, fmt.Sprintf("%s(%d, [%s])", progressBuiltin, i, strings.Join(names, ", ")))
	}
	pq, err := rego.New(
		rego.Query(strings.Join(parts, "; ")),
		rego.Compiler(r.compiler),
		rego.Store(r.store),
		rego.StoreReadAST(true),
		rego.StrictBuiltinErrors(true), // a built-in error is a policy error, never an undefined rule that admits
		rego.Function2(progressDecl, recordProgress),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &policySet{policies: policies, query: pq}, nil
}

func bindingName(i int, rule string) string { return fmt.Sprintf("__p%d_%s", i, rule) }

// rules lists the entry rules the policy's query binds.
func (p *Policy) rules() []string {
	var out []string
	if p.hasDeny {
		out = append(out, ruleDeny)
	}
	if p.hasWarn {
		out = append(out, ruleWarn)
	}
	if p.hasAudit {
		out = append(out, ruleAudit)
	}
	if p.Kind == Mutating {
		out = append(out, ruleMutate)
	}
	return out
}

// setResult is the outcome of a policy set's evaluation: the results and
// durations of the policies that finished, in order, and, when the
// evaluation stopped early, the error of the policy after them.
type setResult struct {
	results []*policyResult
	took    []time.Duration
	err     error
}

// eval evaluates the policies of the set on input, in order.
func (s *policySet) eval(ctx context.Context, input ast.Value) setResult {
	prog := &progress{values: make([]*ast.Array, 0, len(s.policies)), at: make([]time.Time, 0, len(s.policies))}
	start := time.Now()
	_, err := s.query.Eval(context.WithValue(ctx, progressKey{}, prog), rego.EvalParsedInput(input))
	if err == nil {
		err = ctx.Err()
	}
	if te, ok := errors.AsType[*topdown.Error](err); ok && te.Code == topdown.BuiltinErr {
		// A built-in error does not stop the query: OPA finishes it and then
		// returns the first such error (strict mode), without saying which
		// policy's rule raised it. Start over one policy at a time (the
		// caller does so for every policy after the results returned, here
		// none), so the error is attributed to its policy alone.
		return setResult{}
	}
	var out setResult
	for i, arr := range prog.values {
		p := s.policies[i]
		rules := p.rules()
		res, derr := p.decode(func(rule string) (any, bool) {
			j := slices.Index(rules, rule)
			if j < 0 || arr == nil || j >= arr.Len() {
				return nil, false
			}
			v, jerr := ast.JSON(arr.Elem(j).Value)
			if jerr != nil {
				return nil, false
			}
			return v, true
		})
		if derr != nil {
			out.err = derr
			return out
		}
		out.results = append(out.results, res)
		out.took = append(out.took, prog.at[i].Sub(start))
		start = prog.at[i]
	}
	switch {
	case len(out.results) == len(s.policies):
		// Every policy has its result: a deadline passing after the last one
		// (err is then ctx.Err()) leaves a complete decision, and there is no
		// policy after them to blame.
	case err != nil:
		out.err = fmt.Errorf("evaluate policy %q: %w", s.policies[len(out.results)].ID, err)
	default:
		out.err = fmt.Errorf("policy set stopped after %d of %d policies", len(out.results), len(s.policies))
	}
	return out
}

// combinable reports whether every entry rule of the policy is a multi-value
// (contains) rule: those are always defined, possibly empty, so one policy
// cannot make the combined query undefined for the others.
func combinable(compiler *ast.Compiler, p *Policy) bool {
	for _, rule := range p.rules() {
		rules := compiler.GetRulesExact(ruleRef(p.ID, rule))
		if len(rules) == 0 {
			return false
		}
		for _, r := range rules {
			if r.Head.RuleKind() != ast.MultiValue {
				return false
			}
		}
	}
	return true
}

// earlyResult is one policy's outcome from a combined query: its result and
// time, or the error that stopped the query at it. done is false for the
// policies the query did not reach (they are evaluated one by one).
type earlyResult struct {
	res  *policyResult
	took time.Duration
	err  error
	done bool
}

// evalSets evaluates the selected policies in combined queries: one, or, for
// a validating request large enough to be worth it while cores are idle
// (see WithParallelism), one per group of policies at the same time. The
// outcome of each policy is the same either way: the policies of a set are
// independent (validating policies only read the request), each group is
// evaluated like a whole set, and the results are put back in ID order.
func (e *Engine) evalSets(ctx context.Context, reg *Registry, phase Phase, req *admissionv1.AdmissionRequest, selected []*Policy, input ast.Value) []earlyResult {
	if len(selected) < 2 || reg.oneByOne {
		return nil
	}
	groups := e.groups(phase, req, len(selected))
	if groups > 1 {
		defer e.extra.Add(-int32(groups - 1))
	}
	early := make([]earlyResult, len(selected))
	if groups <= 1 {
		ps := reg.policySet(ctx, selected)
		if ps == nil {
			return nil
		}
		fill(early, ps.eval(ctx, input))
		return early
	}
	parts := partition(selected, groups)
	var wg sync.WaitGroup
	for _, part := range parts[1:] {
		wg.Go(func() { evalPart(ctx, reg, selected, part, input, early) })
	}
	evalPart(ctx, reg, selected, parts[0], input, early)
	wg.Wait()
	return early
}

// evalPart evaluates the policies at indices part (of selected) as one set
// and records their outcomes in early.
func evalPart(ctx context.Context, reg *Registry, selected []*Policy, part []int, input ast.Value, early []earlyResult) {
	if len(part) == 1 {
		start := time.Now()
		res, err := selected[part[0]].eval(ctx, input)
		early[part[0]] = earlyResult{res: res, took: time.Since(start), err: err, done: true}
		return
	}
	policies := make([]*Policy, len(part))
	for j, i := range part {
		policies[j] = selected[i]
	}
	ps := reg.policySet(ctx, policies)
	if ps == nil {
		return // one by one, by the caller
	}
	sub := make([]earlyResult, len(part))
	fill(sub, ps.eval(ctx, input))
	for j, i := range part {
		early[i] = sub[j]
	}
}

// fill records a set's results in early (indexed like the set's policies).
func fill(early []earlyResult, set setResult) {
	for i, r := range set.results {
		early[i] = earlyResult{res: r, took: set.took[i], done: true}
	}
	if n := len(set.results); n < len(early) && set.err != nil {
		early[n] = earlyResult{err: set.err, done: true}
	}
}

// partition splits the indices of n policies into groups, round robin, so
// each group gets a share of the costly and of the cheap ones.
func partition(selected []*Policy, groups int) [][]int {
	parts := make([][]int, groups)
	for i := range selected {
		parts[i%groups] = append(parts[i%groups], i)
	}
	return parts
}

// maxGroups bounds the goroutines one request's policies are spread over.
const maxGroups = 4

// groups is how many combined queries the request's n policies are split
// into: more than one only for a validating request whose object (or old
// object) is at least the parallelism threshold, and only as many as there are idle
// cores (GOMAXPROCS minus the evaluations and extra groups in flight), so a
// busy server evaluates each request in one query, the cheapest way, and
// an idle one answers a large request sooner. The cores taken are given
// back (extra) when the evaluation ends.
func (e *Engine) groups(phase Phase, req *admissionv1.AdmissionRequest, n int) int {
	size := max(len(req.Object.Raw), len(req.OldObject.Raw))
	if e.parallelMinBytes <= 0 || phase != Validating || size < e.parallelMinBytes || e.procs < 2 {
		return 1
	}
	want := int32(min(n, maxGroups, int(e.procs)))
	for {
		extra := e.extra.Load()
		take := min(want-1, e.procs-e.busy.Load()-extra)
		if take <= 0 {
			return 1
		}
		if e.extra.CompareAndSwap(extra, extra+take) {
			return int(take) + 1
		}
	}
}
