package engine

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	admissionv1 "k8s.io/api/admission/v1"
)

// Firing is a deny or warn rule body of a policy that produced an entry.
type Firing struct {
	// Rule is "deny" or "warn".
	Rule string `json:"rule"`
	// File and Row locate the rule that fired.
	File string `json:"file"`
	Row  int    `json:"row"`
	// Message is the entry's msg (the entry itself when it is a string).
	Message string `json:"message"`
}

// Trace is OPA's trace of one Explain evaluation.
type Trace struct {
	// Events are the tracer's events, in order. They quote input values:
	// pass any text rendered from them through Redact.
	Events []*topdown.Event

	redactor *redactor
}

// Redact returns s with the request's sensitive values (a Secret's data,
// env values, annotation values, userInfo.extra; plain and base64) replaced
// by [REDACTED], as print() output is.
func (t *Trace) Redact(s string) string {
	return t.redactor.Replace(s)
}

// Explain evaluates policy id once more on req with OPA's tracer
// (topdown.BufferTracer, https://pkg.go.dev/github.com/open-policy-agent/opa/v1/topdown#BufferTracer)
// and returns the deny and warn rule bodies that produced an entry, in
// trace order, with the full trace. Messages are redacted as the
// decision's are (Redact). It is for explaining a decision
// (validate --explain); it never changes one and is never on the
// request path.
func (e *Engine) Explain(ctx context.Context, req *admissionv1.AdmissionRequest, id string) ([]Firing, *Trace, error) {
	reg := e.Registry()
	p := reg.Policy(id)
	if p == nil {
		return nil, nil, fmt.Errorf("no policy %q", id)
	}
	if req == nil {
		return nil, nil, fmt.Errorf("%w: no request", ErrBadRequest)
	}
	small, err := smallRequestJSON(req)
	if err != nil {
		return nil, nil, err
	}
	nsJSON, err := e.namespaceJSON(ctx, req.Namespace)
	if err != nil {
		return nil, nil, err
	}
	input, err := toInputFrom(req, small, nsJSON)
	if err != nil {
		return nil, nil, err
	}
	buf := topdown.NewBufferTracer()
	if _, err := p.query.Eval(ctx, p.evalOptions(input, rego.EvalQueryTracer(buf))...); err != nil {
		return nil, nil, fmt.Errorf("explain policy %q: %w", id, err)
	}
	pkg := ast.MustParseRef(packagePrefix + id)
	var out []Firing
	secrets := secretRedactor(input) // as redactSecrets does to the decision
	for _, ev := range *buf {
		rule, ok := ev.Node.(*ast.Rule)
		if ev.Op != topdown.ExitOp || !ok || rule.Module == nil || !rule.Module.Package.Path.Equal(pkg) {
			continue
		}
		name := rule.Head.Name.String()
		if len(rule.Head.Reference) > 0 {
			name = rule.Head.Reference[0].String()
		}
		if (name != ruleDeny && name != ruleWarn) || rule.Head.Key == nil {
			continue
		}
		f := Firing{Rule: name}
		if rule.Location != nil {
			f.File, f.Row = rule.Location.File, rule.Location.Row
		}
		f.Message = Redact(entryMessage(entryTerm(ev, rule.Head.Key)))
		f.Message = secrets.Replace(f.Message)
		out = append(out, f)
	}
	return out, &Trace{Events: *buf, redactor: sensitiveRedactor(input)}, nil
}

// entryTerm is the rule's entry (key) with the body's bindings at its exit
// (the event's local variables) substituted.
func entryTerm(ev *topdown.Event, key *ast.Term) *ast.Term {
	if ev.Locals == nil {
		return ev.Plug(key)
	}
	t, err := ast.TransformVars(key.Copy(), func(v ast.Var) (ast.Value, error) {
		if x := ev.Locals.Get(v); x != nil {
			return x, nil
		}
		return v, nil
	})
	if err != nil {
		return key
	}
	switch x := t.(type) {
	case *ast.Term:
		return x
	case ast.Value:
		return ast.NewTerm(x)
	}
	return key
}

// entryMessage is the msg of an entry term: its "msg" member, or the
// entry itself when it is a string.
func entryMessage(t *ast.Term) string {
	switch v := t.Value.(type) {
	case ast.String:
		return string(v)
	case ast.Object:
		if m := v.Get(ast.StringTerm("msg")); m != nil {
			if s, ok := m.Value.(ast.String); ok {
				return string(s)
			}
		}
	}
	return t.String()
}
