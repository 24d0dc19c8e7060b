package engine

import (
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// PrintFunc receives the output of one Rego print() call: the ID of the
// policy being evaluated, the call's location (file:line; a call in a
// shared lib module names that module's file) and the printed text. Print
// output can quote the object under review (Secret data included): callers
// must send it only where the objects themselves may go (the CLI's stderr,
// the server's debug log), never into a response.
//
// The hook is OPA's print.Hook, enabled with rego.EnablePrintStatements and
// rego.PrintHook (https://www.openpolicyagent.org/docs/policy-reference#debugging).
type PrintFunc func(policy, location, message string)

// policyPrinter is the print.Hook of one evaluation of one policy. Before a
// printed text reaches the PrintFunc, every value of the evaluation's input
// that must never reach a log (see sensitiveRedactor) is replaced by
// redactedMark, in plain and in base64 form: a policy author's
// print(input.request.object) on a Secret, or print(container.env), leaves
// the values out of the server's debug log and of a CI job's output. It is
// a net for accidents, not a sandbox: a policy that transforms a value
// first (reverses it, hex-encodes it) is not caught.
type policyPrinter struct {
	id string
	fn PrintFunc
	// input is the evaluation's input. Nil (the hook bound when the query
	// is prepared, which an evaluation replaces with its own): the output is
	// withheld, since nothing says which values to hide.
	input ast.Value

	once     sync.Once
	redactor *redactor
}

// Print implements print.Hook.
func (p *policyPrinter) Print(pctx print.Context, msg string) error {
	loc := ""
	if pctx.Location != nil {
		loc = fmt.Sprintf("%s:%d", pctx.Location.File, pctx.Location.Row)
	}
	if p.input == nil {
		p.fn(p.id, loc, "[print output withheld: no request to redact it against]")
		return nil
	}
	p.once.Do(func() { p.redactor = sensitiveRedactor(p.input) })
	p.fn(p.id, loc, p.redactor.Replace(msg))
	return nil
}

// evalOptions are the options of one evaluation of p's query on input,
// with more: the input, and a print hook bound to it when print output is
// wanted.
func (p *Policy) evalOptions(input ast.Value, more ...rego.EvalOption) []rego.EvalOption {
	opts := append([]rego.EvalOption{rego.EvalParsedInput(input)}, more...)
	if p.printFn != nil {
		opts = append(opts, rego.EvalPrintHook(&policyPrinter{id: p.ID, fn: p.printFn, input: input}))
	}
	return opts
}

// callsPrint reports whether any module calls print.
func callsPrint(modules map[string]*ast.Module) bool {
	found := false
	for _, m := range modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if !found && e.IsCall() && e.Operator().Equal(ast.Print.Ref()) {
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
