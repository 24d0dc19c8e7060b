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
