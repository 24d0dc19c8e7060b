package engine

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
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
// that must never reach a log (see sensitiveValues) is replaced by
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
	replacer *strings.Replacer
}

// redactedMark replaces a sensitive value in print output.
const redactedMark = "[REDACTED]"

// minRedacted is the length below which a value is not redacted: a
// two-character env value would otherwise blank every occurrence of those
// characters in the output.
const minRedacted = 4

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
	p.once.Do(func() { p.replacer = newRedactor(sensitiveValues(p.input), minRedacted) })
	p.fn(p.id, loc, p.replacer.Replace(msg))
	return nil
}

// newRedactor replaces each value at least minLen bytes long, and its
// base64 encoding, by redactedMark; longer values first, so a value
// containing another is replaced whole.
func newRedactor(values []string, minLen int) *strings.Replacer {
	seen := map[string]bool{}
	var all []string
	add := func(v string) {
		if len(v) >= minLen && !seen[v] {
			seen[v] = true
			all = append(all, v)
		}
	}
	for _, v := range values {
		add(v)
		add(base64.StdEncoding.EncodeToString([]byte(v)))
	}
	sort.Slice(all, func(i, j int) bool {
		if len(all[i]) != len(all[j]) {
			return len(all[i]) > len(all[j])
		}
		return all[i] < all[j]
	})
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, redactedMark)
	}
	return strings.NewReplacer(pairs...)
}

// sensitiveValues lists the strings of an input that no log may carry:
// secretValues, and anywhere in input.request.object and oldObject every
// env entry's value and every annotation's value.
func sensitiveValues(input ast.Value) []string {
	out := secretValues(input)
	req := getObject(input, "request")
	for _, key := range []string{"object", "oldObject"} {
		if obj := getObject(req, key); obj != nil {
			out = walkSensitive(out, obj)
		}
	}
	return out
}

// secretValues lists what no message may carry either: in
// input.request.object and oldObject, a Secret's data (and each value
// base64-decoded) and stringData; and the values of
// input.request.userInfo.extra (credential IDs, token claims).
func secretValues(input ast.Value) []string {
	var out []string
	req := getObject(input, "request")
	if req == nil {
		return nil
	}
	for _, key := range []string{"object", "oldObject"} {
		obj := getObject(req, key)
		if obj == nil {
			continue
		}
		if kind, ok := getValue(obj, "kind").(ast.String); !ok || kind != "Secret" {
			continue
		}
		if data := getObject(obj, "data"); data != nil {
			data.Foreach(func(_, v *ast.Term) {
				if s, ok := v.Value.(ast.String); ok {
					out = append(out, string(s))
					if raw, err := base64.StdEncoding.DecodeString(string(s)); err == nil {
						out = append(out, string(raw))
					}
				}
			})
		}
		out = appendStrings(out, getObject(obj, "stringData"))
	}
	if extra := getObject(getObject(req, "userInfo"), "extra"); extra != nil {
		extra.Foreach(func(_, v *ast.Term) {
			if arr, ok := v.Value.(*ast.Array); ok {
				arr.Foreach(func(t *ast.Term) {
					if s, ok := t.Value.(ast.String); ok {
						out = append(out, string(s))
					}
				})
			}
		})
	}
	return out
}

// walkSensitive appends the env values and annotation values anywhere
// under v.
func walkSensitive(out []string, v ast.Value) []string {
	switch x := v.(type) {
	case ast.Object:
		x.Foreach(func(k, val *ast.Term) {
			switch k.Value {
			case ast.String("env"):
				if arr, ok := val.Value.(*ast.Array); ok {
					arr.Foreach(func(e *ast.Term) {
						if s, ok := getValue(e.Value, "value").(ast.String); ok {
							out = append(out, string(s))
						}
					})
				}
			case ast.String("annotations"):
				if obj, ok := val.Value.(ast.Object); ok {
					out = appendStrings(out, obj)
				}
			}
			out = walkSensitive(out, val.Value)
		})
	case *ast.Array:
		x.Foreach(func(e *ast.Term) { out = walkSensitive(out, e.Value) })
	}
	return out
}

// appendStrings appends obj's string values.
func appendStrings(out []string, obj ast.Object) []string {
	if obj == nil {
		return out
	}
	obj.Foreach(func(_, v *ast.Term) {
		if s, ok := v.Value.(ast.String); ok {
			out = append(out, string(s))
		}
	})
	return out
}

// getValue is v[key] when v is an object that has it, else nil.
func getValue(v ast.Value, key string) ast.Value {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil
	}
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return nil
	}
	return t.Value
}

// getObject is v[key] when it is an object, else nil.
func getObject(v ast.Value, key string) ast.Object {
	obj, _ := getValue(v, key).(ast.Object)
	return obj
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
