package engine

import (
	"context"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Load-time evaluation of the rules that do not depend on the request.
//
// A registry's configuration (data.portcullis.config) and its modules are
// fixed until the next reload, so a rule whose value depends on neither
// input nor anything non-deterministic has the same value for every request:
// `settings := data.portcullis.config.policies.pod_security`, the level a
// missing namespace_levels entry defaults to, the patterns built from a
// policy's allow-list. OPA evaluates them again on every query (its caches
// live for one query); stock OPA cannot know they are constant, because its
// data may change between queries. The engine can: foldConstants evaluates
// each such rule once, at load, and replaces its definitions with one rule
// whose value is the result, so a request pays for a constant lookup.
//
// What is folded, conservatively:
//   - complete rules (`x := ...`, with else and default) and multi-value
//     rules (`x contains ...`) named by one plain identifier in a package,
//     without arguments; never a policy's entry rules (deny, warn, audit,
//     mutate: they keep their kind for the combined queries);
//   - only when every definition of the rule, and everything it depends on
//     transitively (rules and functions, through the compiler's dependency
//     graph), reads no input, calls no non-deterministic built-in and no
//     print, and no module uses `with` (a `with` could replace the data a
//     folded value was computed from);
//   - only rules that are defined at load and evaluate without error: an
//     undefined rule or one raising an error keeps its definitions, so the
//     request sees exactly what it saw before.
//
// A folded rule keeps its location (file:line of its first definition).
// Decisions are unchanged by construction: the value a request would compute
// is the value computed at load. TestFoldKeepsDecisions compares every
// built-in policy's decisions with and without folding.

// foldConstants returns modules with the constant rules of compiled (the
// compiled form of modules) replaced by their values, and the paths of the
// rules it replaced, sorted; modules itself and no paths when nothing can be
// folded.
func foldConstants(ctx context.Context, compiled *ast.Compiler, store storage.Store, modules map[string]*ast.Module) (map[string]*ast.Module, []string, error) {
	var folded []string
	if usesWith(compiled) {
		return modules, nil, nil
	}
	// Every rule node (each definition and each else branch) by path.
	byPath := map[string][]*ast.Rule{}
	for _, m := range compiled.Modules {
		for _, r := range m.Rules {
			byPath[r.Path().String()] = append(byPath[r.Path().String()], r)
		}
	}
	memo := map[*ast.Rule]bool{}
	var candidates []string
	for path, rules := range byPath {
		if foldable(compiled, rules, memo) {
			candidates = append(candidates, path)
		}
	}
	if len(candidates) == 0 {
		return modules, nil, nil
	}
	sort.Strings(candidates)

	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("fold constants: %w", err)
	}
	defer store.Abort(ctx, txn)
	values := map[string]*ast.Term{}
	for _, path := range candidates {
		v, ok := evalConstant(ctx, compiled, store, txn, byPath[path][0].Path())
		if !ok {
			continue
		}
		if isLiteral(byPath[path]) {
			continue // already a constant: nothing to gain
		}
		values[path] = v
	}
	if len(values) == 0 {
		return modules, nil, nil
	}

	out := make(map[string]*ast.Module, len(modules))
	for name, m := range modules {
		var keep []*ast.Rule
		changed := false
		for _, r := range m.Rules {
			path := r.Path().String()
			v, fold := values[path]
			if !fold {
				keep = append(keep, r)
				continue
			}
			changed = true
			if v == nil {
				continue // already emitted in an earlier module
			}
			keep = append(keep, constantRule(m, r, v))
			values[path] = nil
			folded = append(folded, path)
		}
		if !changed {
			out[name] = m
			continue
		}
		cp := m.Copy()
		cp.Rules = keep
		for _, r := range cp.Rules {
			r.Module = cp
		}
		out[name] = cp
	}
	sort.Strings(folded)
	return out, folded, nil
}

// usesWith reports whether any module has a `with` modifier.
func usesWith(c *ast.Compiler) bool {
	found := false
	for _, m := range c.Modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if len(e.With) > 0 {
				found = true
			}
			return found
		})
		if found {
			return true
		}
	}
	return false
}

// entryRules are never folded: the engine reads their kind (see combinable).
var entryRules = map[string]bool{ruleDeny: true, ruleWarn: true, ruleAudit: true, ruleMutate: true}

// foldable reports whether the rule named by these definitions can be
// computed at load: see foldConstants.
func foldable(c *ast.Compiler, rules []*ast.Rule, memo map[*ast.Rule]bool) bool {
	for _, r := range rules {
		head := r.Head
		if len(head.Args) > 0 || len(head.Reference) != 1 {
			return false
		}
		if entryRules[string(head.Name)] {
			return false
		}
		switch head.RuleKind() {
		case ast.SingleValue:
			if head.Key != nil {
				return false
			}
		case ast.MultiValue:
		default:
			return false
		}
		if !requestFree(c, r, memo) {
			return false
		}
	}
	return true
}

// requestFree reports whether rule (with its else branches) and everything
// it depends on read no input, call nothing non-deterministic and no print.
func requestFree(c *ast.Compiler, rule *ast.Rule, memo map[*ast.Rule]bool) bool {
	if ok, seen := memo[rule]; seen {
		return ok
	}
	memo[rule] = false // cycles (recursion is refused by the compiler anyway)
	ok := true
	for node := rule; node != nil && ok; node = node.Else {
		ok = locallyRequestFree(node)
		for dep := range c.Graph.Dependencies(node) {
			if !ok {
				break
			}
			if r, isRule := dep.(*ast.Rule); isRule {
				ok = requestFree(c, r, memo)
			}
		}
	}
	memo[rule] = ok
	return ok
}

// locallyRequestFree checks one rule node's own head and body (its else
// branches are nodes of their own).
func locallyRequestFree(r *ast.Rule) bool {
	ok := true
	check := func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Var:
			if v.Equal(ast.InputRootDocument.Value) {
				ok = false
			}
		case ast.Ref:
			if v[0].Value.Compare(ast.InputRootDocument.Value) == 0 {
				ok = false
			}
			if impure(v) {
				ok = false
			}
		}
		return !ok
	}
	// A call's operator is a ref term of its expression (or of the
	// ast.Call term), so this walk sees built-in calls too.
	ast.WalkTerms(r.Head, check)
	if ok {
		ast.WalkTerms(r.Body, check)
	}
	return ok
}

// isLiteral reports whether the rule is already one definition with a
// ground value and a body of `true`: folding it gains nothing.
func isLiteral(rules []*ast.Rule) bool {
	if len(rules) != 1 {
		return false
	}
	r := rules[0]
	if r.Else != nil || r.Head.Key != nil || r.Head.Value == nil || !r.Head.Value.IsGround() || len(r.Body) != 1 {
		return false
	}
	t, ok := r.Body[0].Terms.(*ast.Term)
	return ok && t.Equal(ast.BooleanTerm(true))
}

// evalConstant evaluates path with no input; ok is false when it is
// undefined or raises an error (the rule is then left as written).
func evalConstant(ctx context.Context, c *ast.Compiler, store storage.Store, txn storage.Transaction, path ast.Ref) (*ast.Term, bool) {
	out := ast.Var("__fold")
	body := ast.NewBody(ast.Equality.Expr(ast.NewTerm(out), ast.NewTerm(path)))
	compiled, err := c.QueryCompiler().Compile(body)
	if err != nil {
		return nil, false
	}
	rs, err := topdown.NewQuery(compiled).
		WithCompiler(c).
		WithStore(store).
		WithTransaction(txn).
		WithStrictBuiltinErrors(true).
		Run(ctx)
	if err != nil || len(rs) != 1 {
		return nil, false
	}
	v, ok := rs[0][out]
	if !ok || !v.IsGround() {
		return nil, false
	}
	return v, true
}

// constantRule is the rule `name := value` (a multi-value rule becomes a
// complete rule with its set as value: references to it read the same set)
// at the location of the definition it replaces.
func constantRule(m *ast.Module, orig *ast.Rule, value *ast.Term) *ast.Rule {
	loc := orig.Location
	v := value.Copy()
	v.SetLocation(loc)
	name := ast.VarTerm(string(orig.Head.Name))
	name.SetLocation(loc)
	head := ast.NewHead(orig.Head.Name, nil, v)
	head.Reference = ast.Ref{name}
	head.Assign = true
	head.Location = loc
	t := ast.BooleanTerm(true)
	t.SetLocation(loc)
	expr := ast.NewExpr(t)
	expr.Location = loc
	return &ast.Rule{
		Head:     head,
		Body:     ast.NewBody(expr),
		Module:   m,
		Location: loc,
	}
}

// impure reports whether ref names a built-in whose result or effect a
// load-time value would lose: a non-deterministic one, or print.
func impure(ref ast.Ref) bool {
	op, found := ast.BuiltinMap[ref.String()]
	return found && (op.Nondeterministic || op.Name == ast.Print.Name || op.Name == ast.InternalPrint.Name)
}
