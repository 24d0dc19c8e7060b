package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// maxPolicySets bounds the prepared multi-policy queries a registry keeps
// (one per distinct selection of policies; the built-in set needs a handful).
const maxPolicySets = 256

// policySet is one prepared query evaluating several policies at once. It is
// cheaper than one query per policy: one evaluation context, and the library
// rules the policies share (the pod spec, the container list, the policy's
// config) are computed once per request instead of once per policy. It is an
// optimisation only: when it fails or times out, the engine evaluates the
// policies one by one, which says which policy failed or timed out.
type policySet struct {
	policies []*Policy
	query    rego.PreparedEvalQuery
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
		for _, rule := range p.rules() {
			parts = append(parts, fmt.Sprintf("%s := %s%s.%s", bindingName(i, rule), packagePrefix, p.ID, rule))
		}
	}
	pq, err := rego.New(
		rego.Query(strings.Join(parts, "; ")),
		rego.Compiler(r.compiler),
		rego.Store(r.store),
		rego.StoreReadAST(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &policySet{policies: policies, query: pq}, nil
}

func bindingName(i int, rule string) string { return fmt.Sprintf("p%d_%s", i, rule) }

// rules lists the entry rules the policy's query binds.
func (p *Policy) rules() []string {
	var out []string
	if p.hasDeny {
		out = append(out, ruleDeny)
	}
	if p.hasWarn {
		out = append(out, ruleWarn)
	}
	if p.Kind == Mutating {
		out = append(out, ruleMutate)
	}
	return out
}

// eval evaluates every policy of the set on input and decodes each one's
// result, in the set's order.
func (s *policySet) eval(ctx context.Context, input ast.Value) ([]*policyResult, error) {
	rs, err := s.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("policy set: %d results", len(rs))
	}
	out := make([]*policyResult, len(s.policies))
	for i, p := range s.policies {
		res, err := p.decode(func(rule string) (any, bool) {
			v, ok := rs[0].Bindings[bindingName(i, rule)]
			return v, ok
		})
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
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
