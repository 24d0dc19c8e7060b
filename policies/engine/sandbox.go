package engine

import (
	"errors"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The policy sandbox: policies get no network, no environment and no file
// access. OPA's own mechanism does the refusing: the compiler is given
// capabilities (ast.CapabilitiesForThisVersion) without the denied
// built-ins, so a module calling one does not compile
// (https://www.openpolicyagent.org/docs/deployments#capabilities). Check
// refuses them first with a message that says why and how to allow one.
//
// Denied: every built-in OPA marks non-deterministic, except those that only
// read the clock or draw random numbers. That covers http.send,
// net.lookup_ip_addr, opa.runtime (the environment) and json.match_schema /
// json.verify_schema (which fetch remote $ref schemas), and any such
// built-in a later OPA adds. OPA has no file built-ins; print is compiled
// out unless Source.Print is set, and then writes only to that hook. The allowed clock and random built-ins make decisions uncacheable
// (see deterministic).

// clockAndRandom are the non-deterministic built-ins that reach nothing
// outside the process.
var clockAndRandom = map[string]bool{
	"time.now_ns":            true,
	"rand.intn":              true,
	"uuid.rfc4122":           true,
	"io.jwt.encode_sign":     true, // random nonce for some algorithms
	"io.jwt.encode_sign_raw": true,
	"io.jwt.decode_verify":   true, // reads the clock for exp/nbf
}

// configSandbox is the configuration key of the sandbox settings:
// sandbox.allow_builtins lists built-ins the operator allows by name.
const configSandbox = "sandbox"

// Sandbox is the set of built-ins policies may call under a configuration.
type Sandbox struct {
	caps   *ast.Capabilities
	denied map[string]bool
}

// NewSandbox returns the sandbox for the merged configuration cfg:
// everything but the denied built-ins, minus those cfg's
// sandbox.allow_builtins names. Naming a built-in that does not exist is an
// error (a typo would otherwise go unnoticed).
func NewSandbox(cfg map[string]any) (*Sandbox, error) {
	allow, err := sandboxAllowed(cfg)
	if err != nil {
		return nil, err
	}
	all := ast.CapabilitiesForThisVersion()
	known := map[string]bool{}
	for _, b := range all.Builtins {
		known[b.Name] = true
	}
	for _, name := range allow {
		if !known[name] {
			return nil, fmt.Errorf("%s.allow_builtins: %q is not an OPA built-in", configSandbox, name)
		}
	}
	allowed := map[string]bool{}
	for _, name := range allow {
		allowed[name] = true
	}
	s := &Sandbox{caps: all, denied: map[string]bool{}}
	builtins := make([]*ast.Builtin, 0, len(all.Builtins))
	for _, b := range all.Builtins {
		if b.Nondeterministic && !clockAndRandom[b.Name] && !allowed[b.Name] {
			s.denied[b.Name] = true
			continue
		}
		builtins = append(builtins, b)
	}
	all.Builtins = builtins
	return s, nil
}

// Capabilities are OPA's capabilities without the denied built-ins, for
// ast.Compiler.WithCapabilities (Load; the test runner of `portcullis test`).
func (s *Sandbox) Capabilities() *ast.Capabilities { return s.caps }

// Denied returns the sorted names of the built-ins policies may not call.
func (s *Sandbox) Denied() []string {
	out := make([]string, 0, len(s.denied))
	for name := range s.denied {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Check refuses, with file and line, every call of a denied built-in in
// modules (parsed, not yet compiled).
func (s *Sandbox) Check(modules map[string]*ast.Module) error {
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		seen := map[string]bool{}
		// A built-in appears as a ref: the operator of a call expression, the
		// function of a nested call, or an operand (f := http.send).
		ast.WalkRefs(modules[name], func(ref ast.Ref) bool {
			op := ref.String()
			if !s.denied[op] {
				return false
			}
			loc := ref[0].Location
			if loc == nil {
				loc = &ast.Location{File: name}
			}
			key := fmt.Sprintf("%s:%d:%s", loc.File, loc.Row, op)
			if !seen[key] {
				seen[key] = true
				errs = append(errs, fmt.Errorf("%s:%d: %s is not allowed: policies get no network, environment or file access (an operator can allow it by name in the configuration's %s.allow_builtins)",
					loc.File, loc.Row, op, configSandbox))
			}
			return false
		})
	}
	return errors.Join(errs...)
}

// sandboxAllowed reads sandbox.allow_builtins.
func sandboxAllowed(cfg map[string]any) ([]string, error) {
	raw, ok := cfg[configSandbox]
	if !ok || raw == nil {
		return nil, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: must be a map of settings", configSandbox)
	}
	list, ok := m["allow_builtins"]
	if !ok || list == nil {
		return nil, nil
	}
	items, ok := list.([]any)
	if !ok {
		return nil, fmt.Errorf("%s.allow_builtins: must be a list of built-in names", configSandbox)
	}
	out := make([]string, 0, len(items))
	for _, item := range items {
		s, ok := item.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("%s.allow_builtins: %v is not a built-in name", configSandbox, item)
		}
		out = append(out, s)
	}
	return out, nil
}
