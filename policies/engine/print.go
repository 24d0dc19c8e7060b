package engine

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
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

// policyPrinter is the print.Hook of one policy's query.
type policyPrinter struct {
	id string
	fn PrintFunc
}

// Print implements print.Hook.
func (p policyPrinter) Print(pctx print.Context, msg string) error {
	loc := ""
	if pctx.Location != nil {
		loc = fmt.Sprintf("%s:%d", pctx.Location.File, pctx.Location.Row)
	}
	p.fn(p.id, loc, msg)
	return nil
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
