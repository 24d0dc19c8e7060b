package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// Kind says whether a policy validates or mutates.
type Kind string

// Policy kinds.
const (
	// Validating policies expose deny (and optionally warn).
	Validating Kind = "validating"
	// Mutating policies expose mutate (and optionally deny and warn).
	Mutating Kind = "mutating"
)

// Rego names the engine relies on.
const (
	rootPackage   = "portcullis"
	libPackage    = "lib"
	configKey     = "config"
	ruleDeny      = "deny"
	ruleWarn      = "warn"
	ruleAudit     = "audit"
	ruleMutate    = "mutate"
	testFileExt   = "_test.rego"
	regoFileExt   = ".rego"
	packagePrefix = "data." + rootPackage + "."
)

// Policy is one loaded policy: its identity, metadata, effective settings and
// the prepared query that evaluates it.
type Policy struct {
	// ID is the package name under portcullis (package portcullis.<ID>).
	ID string
	// Title and Description come from the package METADATA.
	Title, Description string
	// Kind is validating or mutating (METADATA custom.kind).
	Kind Kind
	// Enforcement is the effective mode: config policies.<id>.enforcement,
	// else METADATA custom.enforcement, else deny.
	Enforcement Enforcement
	// FailureMode is the effective failure mode: config, else METADATA
	// custom.failure_mode, else deny.
	FailureMode FailureMode
	// Resources, when not empty, lists the resources ("pods",
	// "pods/ephemeralcontainers") the policy applies to; a pre-filter only.
	Resources []string
	// Required policies may not disappear on a hot reload: a new set
	// without them is refused (CheckReload). METADATA custom.required, or
	// config policies.<id>.required, which wins.
	Required bool
	// Operations (METADATA custom.operations: CREATE, UPDATE, DELETE,
	// CONNECT), when not empty, are the operations the webhook rules derived
	// for this policy's resources register (package registration); the
	// engine itself does not filter on them.
	Operations []string
	// Settings is the schema of the policy's own settings (METADATA
	// custom.settings: setting name → type, nested map or list of one), or
	// nil when the policy declares none (its settings are then not checked).
	Settings map[string]any
	// File and Row locate the package declaration carrying the METADATA.
	File string
	Row  int

	hasWarn, hasDeny, hasAudit bool
	combinable                 bool // see combinable
	query                      rego.PreparedEvalQuery
	printFn                    PrintFunc // nil unless the policies print and print output is wanted
}

// AppliesTo reports whether the policy's resource filter admits resource
// (e.g. "pods") with subResource (e.g. "ephemeralcontainers" or "").
func (p *Policy) AppliesTo(resource, subResource string) bool {
	if len(p.Resources) == 0 {
		return true
	}
	key := resource
	if subResource != "" {
		key = resource + "/" + subResource
	}
	for _, r := range p.Resources {
		if r == key || r == "*" {
			return true
		}
	}
	return false
}

// Registry is an immutable, validated set of policies with the configuration
// they were loaded with. Build one with Load; hot reload builds a new one.
type Registry struct {
	policies []*Policy // sorted by ID
	byID     map[string]*Policy
	config   map[string]any
	exempt   []string
	compiler *ast.Compiler
	store    storage.Store
	sets     policySets
	oneByOne bool // never combine policies (tests compare both ways)
	// cacheable is false when a module calls a non-deterministic built-in
	// (time, randomness, HTTP) or reads the request UID: the same request may
	// then get a different answer, so decisions are not cached.
	cacheable bool
	hash      string
	loadedAt  time.Time
	// Warnings are non-fatal load findings (e.g. a resource name that is
	// not a known plural resource), each naming its file and line.
	Warnings []string
	// folded lists the rules computed at load (see foldConstants).
	folded []string
	// Notices say which policies and modules of a later layer replaced an
	// earlier layer's (see Layer); the server logs them.
	Notices []string
}

// Source is what a Registry is loaded from: layers of policies and the
// configuration documents merged into data.portcullis.config.
type Source struct {
	// Policies, when set, is a first, unnamed layer (walked recursively;
	// *_test.rego skipped).
	Policies fs.FS
	// Layers stack over Policies in order (see Layer).
	Layers []Layer
	// Configs are unnamed YAML documents deep-merged in order (defaults
	// first), before the layers' own Config and ConfigFiles.
	Configs [][]byte
	// ConfigFiles are named documents merged last (--config).
	ConfigFiles []ConfigFile
	// Print, when set, receives the output of Rego print() calls (see
	// PrintFunc). When nil, print calls are compiled out and cost nothing.
	Print PrintFunc
	// NoFold keeps every rule as written instead of computing the rules
	// that do not depend on the request at load (see FoldedRules). Decisions
	// are the same either way; tests compare them.
	NoFold bool
}

// Policies returns the loaded policies sorted by ID.
func (r *Registry) Policies() []*Policy { return append([]*Policy(nil), r.policies...) }

// Policy returns the policy with the given ID, or nil.
func (r *Registry) Policy(id string) *Policy { return r.byID[id] }

// Config returns the merged configuration (data.portcullis.config). Callers must not modify it.
func (r *Registry) Config() map[string]any { return r.config }

// Load parses, compiles and validates every Rego module in src.Policies with
// the merged configuration, and prepares one query per policy. Errors wrap
// ErrLoad and name the file and line.
func Load(ctx context.Context, src Source) (*Registry, error) {
	docs := src.configFiles()
	cfg, err := mergeConfigFiles(docs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	st, err := parseSettings(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrLoad, err)
	}
	src, hashers := src.hashing()
	modules, notices, err := Modules(src, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	if err := duplicatePolicies(modules); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	sandbox, err := NewSandbox(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrLoad, err)
	}
	if err := sandbox.Check(modules); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	// Print is enabled only when some module calls print(): otherwise the
	// policies keep their combined queries (see policySet).
	printing := src.Print != nil && callsPrint(modules)
	compiler := newCompiler(printing, sandbox)
	compiler.Compile(modules)
	if compiler.Failed() {
		return nil, fmt.Errorf("%w: compile: %w", ErrLoad, compiler.Errors)
	}
	if err := reservedCalls(compiler); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	policies, err := discover(modules, compiler, st)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	if err := checkConfig(docs, policies); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}

	store := inmem.NewFromObjectWithOpts(map[string]any{
		rootPackage: map[string]any{configKey: cfg},
	}, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))

	// Rules that do not depend on the request are computed once, here (see
	// foldConstants). The folded modules compile like the originals; should
	// they not, the originals are used: folding only ever saves time.
	var folded []string
	if !src.NoFold {
		foldedModules, paths, err := foldConstants(ctx, compiler, store, modules)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLoad, err)
		}
		if len(paths) > 0 {
			// The originals passed the type checker; a folded value is a
			// literal, whose closed object type would turn a read of an
			// absent key (undefined at run time, as before) into a type
			// error. Types do not change evaluation.
			fc := newCompiler(printing, sandbox).WithSkipStages(ast.StageCheckTypes)
			fc.Compile(foldedModules)
			if !fc.Failed() {
				compiler, folded = fc, paths
			}
		}
	}

	reg := &Registry{byID: map[string]*Policy{}, config: cfg, exempt: st.exemptNamespaces, compiler: compiler, store: store, Notices: notices, folded: folded}
	// print() output is tagged with the policy evaluated: each policy runs
	// in its own query with its own hook, never in a combined one.
	reg.oneByOne = printing
	for _, p := range policies {
		reg.Warnings = append(reg.Warnings, p.resourceWarnings()...)
		if !p.enabled(st.policies[p.ID]) {
			continue
		}
		q := p.queryString()
		opts := []func(*rego.Rego){
			rego.Query(q),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.StoreReadAST(true),
			rego.StrictBuiltinErrors(true), // a built-in error is a policy error, never an undefined rule that admits
		}
		if printing {
			// Each evaluation binds its own hook to its input (evalOptions);
			// this one, without an input, withholds the output.
			opts = append(opts, rego.EnablePrintStatements(true), rego.PrintHook(&policyPrinter{id: p.ID, fn: src.Print}))
			p.printFn = src.Print
		}
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: prepare policy %q (%s:%d): %w", ErrLoad, p.ID, p.File, p.Row, err)
		}
		p.query = pq
		p.combinable = combinable(compiler, p)
		reg.policies = append(reg.policies, p)
		reg.byID[p.ID] = p
	}
	sort.Strings(reg.Warnings)
	reg.cacheable = deterministic(compiler)
	if reg.hash, err = setDigest(hashers, cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	reg.loadedAt = time.Now()
	reg.prepareSets(ctx)
	return reg, nil
}

// newCompiler is the compiler of a registry's modules.
func newCompiler(printing bool, sandbox *Sandbox) *ast.Compiler {
	return ast.NewCompiler().WithEnablePrintStatements(printing).
		WithCapabilities(sandbox.Capabilities()).
		WithBuiltins(map[string]*ast.Builtin{progressBuiltin: {Name: progressBuiltin, Decl: progressDecl.Decl}})
}

// FoldedRules lists the rules computed at load instead of per request (see
// foldConstants), as data paths, sorted.
func (r *Registry) FoldedRules() []string { return append([]string(nil), r.folded...) }

// prepareSets prepares, at load time, the multi-policy query of each phase
// for each resource the policies name, so requests do not pay for it.
func (r *Registry) prepareSets(ctx context.Context) {
	keys := map[string]bool{"": true}
	for _, p := range r.policies {
		for _, res := range p.Resources {
			keys[res] = true
		}
	}
	for key := range keys {
		resource, sub, _ := strings.Cut(key, "/")
		for _, phase := range []Phase{Validating, Mutating} {
			r.policySet(ctx, r.selectPolicies(phase, resource, sub, Options{}))
		}
	}
}

// reservedCalls refuses modules calling the engine's internal built-in,
// which only the engine's own queries may call.
func reservedCalls(compiler *ast.Compiler) error {
	var errs []error
	for _, m := range compiler.Modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() && e.Operator().String() == progressBuiltin {
				errs = append(errs, fmt.Errorf("%s:%d: %s is reserved for the engine", e.Location.File, e.Location.Row, progressBuiltin))
			}
			return false
		})
	}
	return errors.Join(errs...)
}

// uidRef is input.request.uid: a policy reading it answers differently for
// every request, so its decisions cannot be cached. (A policy reaching the
// UID through an alias of input.request is not seen here; the cache also
// refuses any decision whose text contains the request's UID.)
var uidRef = ast.MustParseRef("input.request.uid")

// deterministic reports whether the compiled modules call no
// non-deterministic built-in and never read the request UID.
func deterministic(compiler *ast.Compiler) bool {
	ok := true
	nondet := func(op ast.Ref) {
		if b, found := ast.BuiltinMap[op.String()]; found && b.Nondeterministic {
			ok = false
		}
	}
	for _, m := range compiler.Modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() {
				nondet(e.Operator())
			}
			return false
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			switch v := t.Value.(type) {
			case ast.Call:
				if ref, isRef := v[0].Value.(ast.Ref); isRef {
					nondet(ref)
				}
			case ast.Ref:
				if v.HasPrefix(uidRef) {
					ok = false
				}
			}
			return false
		})
	}
	return ok
}

// fsOrNil keeps a missing source nil (ParseModules reports it).
func fsOrNil(h *hashingFS) fs.FS {
	if h == nil {
		return nil
	}
	return h
}

func (p *Policy) queryString() string {
	ref := packagePrefix + p.ID
	var parts []string
	for _, rule := range p.rules() {
		parts = append(parts, rule+" := "+ref+"."+rule)
	}
	return strings.Join(parts, "; ")
}

// ParseModules parses the .rego files of fsys (Rego v1, with METADATA),
// skipping hidden and testdata directories, and *_test.rego files unless
// withTests. `portcullis test` uses it with tests; Load without.
func ParseModules(fsys fs.FS, withTests bool) (map[string]*ast.Module, error) {
	return parseModulesPrefixed(fsys, withTests, "")
}

// parseModulesPrefixed is ParseModules naming each file prefix/name.
func parseModulesPrefixed(fsys fs.FS, withTests bool, prefix string) (map[string]*ast.Module, error) {
	if fsys == nil {
		return nil, errors.New("no policy source")
	}
	modules := map[string]*ast.Module{}
	var errs []error
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Skip hidden directories (.git, editor folders) and testdata.
			if name != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, regoFileExt) || (!withTests && strings.HasSuffix(name, testFileExt)) {
			return nil
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if prefix != "" {
			name = path.Join(prefix, name)
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{
			ProcessAnnotation: true,
			RegoVersion:       ast.RegoV1,
		})
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		modules[name] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk policies: %w", err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parse: %w", errors.Join(errs...))
	}
	return modules, nil
}

// discover finds the policy packages (portcullis.<id>, not under
// portcullis.lib) and validates their METADATA and entry rules.
func discover(modules map[string]*ast.Module, compiler *ast.Compiler, st settings) ([]*Policy, error) {
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)

	byID := map[string]*Policy{}
	seen := map[string]*ast.Location{} // policy packages, with or without METADATA: the first file's package
	declared := map[string]bool{}      // those with a METADATA custom.kind, valid or not
	var errs []error
	for _, name := range names {
		m := modules[name]
		id, ok := policyID(m.Package.Path)
		if !ok {
			continue
		}
		if seen[id] == nil {
			seen[id] = m.Package.Location
		}
		ann := packageAnnotation(m)
		if ann == nil || ann.Custom["kind"] == nil {
			continue // another file of the same package, or helpers
		}
		declared[id] = true
		loc := m.Package.Location // duplicates were refused by duplicatePolicies
		p, err := newPolicy(id, ann, loc, st.policies[id])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: policy %q: %w", loc.File, loc.Row, id, err))
			continue
		}
		p.hasDeny = len(compiler.GetRulesExact(ruleRef(id, ruleDeny))) > 0
		p.hasWarn = len(compiler.GetRulesExact(ruleRef(id, ruleWarn))) > 0
		p.hasAudit = len(compiler.GetRulesExact(ruleRef(id, ruleAudit))) > 0
		hasMutate := len(compiler.GetRulesExact(ruleRef(id, ruleMutate))) > 0
		switch {
		case p.Kind == Validating && !p.hasDeny:
			errs = append(errs, fmt.Errorf("%s:%d: validating policy %q has no %q rule", loc.File, loc.Row, id, ruleDeny))
			continue
		case p.Kind == Mutating && !hasMutate:
			errs = append(errs, fmt.Errorf("%s:%d: mutating policy %q has no %q rule", loc.File, loc.Row, id, ruleMutate))
			continue
		}
		byID[id] = p
	}
	for id, loc := range seen {
		if !declared[id] {
			errs = append(errs, fmt.Errorf("%s:%d: policy package %q: no file declares it with METADATA custom.kind (validating or mutating)", loc.File, loc.Row, rootPackage+"."+id))
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, errors.Join(errs...)
	}
	out := make([]*Policy, 0, len(byID))
	for _, p := range byID {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// duplicatePolicies refuses a policy ID declared with METADATA custom.kind
// in more than one file. It runs before compiling: OPA's compiler would
// otherwise report the second package annotation as a type error that does
// not say which policy is declared twice.
func duplicatePolicies(modules map[string]*ast.Module) error {
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	first := map[string]*ast.Location{}
	var errs []error
	for _, name := range names {
		m := modules[name]
		id, ok := policyID(m.Package.Path)
		if !ok {
			continue
		}
		if ann := packageAnnotation(m); ann == nil || ann.Custom["kind"] == nil {
			continue
		}
		loc := m.Package.Location
		if prev, dup := first[id]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: duplicate policy ID %q (METADATA also at %s:%d)", loc.File, loc.Row, id, prev.File, prev.Row))
			continue
		}
		first[id] = loc
	}
	return errors.Join(errs...)
}

func (p *Policy) enabled(ps policySettings) bool { return ps.enabled == nil || *ps.enabled }

func ruleRef(id, rule string) ast.Ref {
	return ast.MustParseRef(packagePrefix + id + "." + rule)
}

// policyID returns <id> for package data.portcullis.<id>, excluding the
// reserved lib and config names and test packages.
func policyID(pkg ast.Ref) (string, bool) {
	if len(pkg) != 3 || !pkg[0].Equal(ast.DefaultRootDocument) {
		return "", false
	}
	root, ok1 := pkg[1].Value.(ast.String)
	id, ok2 := pkg[2].Value.(ast.String)
	if !ok1 || !ok2 || string(root) != rootPackage {
		return "", false
	}
	s := string(id)
	if s == libPackage || s == configKey || strings.HasSuffix(s, "_test") {
		return "", false
	}
	return s, true
}

func packageAnnotation(m *ast.Module) *ast.Annotations {
	for _, a := range m.Annotations {
		if a.Scope == "package" {
			return a
		}
	}
	return nil
}

func newPolicy(id string, ann *ast.Annotations, loc *ast.Location, ps policySettings) (*Policy, error) {
	p := &Policy{ID: id, Title: ann.Title, Description: strings.TrimSpace(ann.Description), File: loc.File, Row: loc.Row}
	kind, _ := ann.Custom["kind"].(string)
	switch Kind(kind) {
	case Validating, Mutating:
		p.Kind = Kind(kind)
	default:
		return nil, fmt.Errorf("METADATA custom.kind %q: must be validating or mutating%s", kind, didYouMean(kind, []string{string(Validating), string(Mutating)}))
	}
	enforcement, err := parseOptional(ann.Custom, "enforcement", parseEnforcement)
	if err != nil {
		return nil, fmt.Errorf("METADATA custom.%w", err)
	}
	failureMode, err := parseOptional(ann.Custom, "failure_mode", parseFailureMode)
	if err != nil {
		return nil, fmt.Errorf("METADATA custom.%w", err)
	}
	p.Enforcement = firstSet(ps.enforcement, enforcement, EnforceDeny)
	// A validating policy that cannot be evaluated denies; a mutating one is
	// skipped, since the validating webhook checks the final object anyway;
	// a warn or audit policy, which never rejects when it works, does not
	// reject when it fails either, unless its failure_mode says deny
	// explicitly (policies/README.md, "Evaluation errors").
	defaultFailure := FailDeny
	if p.Kind == Mutating || p.Enforcement != EnforceDeny {
		defaultFailure = FailAllow
	}
	p.FailureMode = firstSet(ps.failureMode, failureMode, defaultFailure)
	if v, ok := ann.Custom["required"]; ok {
		b, ok := v.(bool)
		if !ok {
			return nil, errors.New("METADATA custom.required: must be true or false")
		}
		p.Required = b
	}
	if ps.required != nil {
		p.Required = *ps.required
	}
	if v, ok := ann.Custom["settings"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("METADATA custom.settings: must be a map of setting name to type")
		}
		if err := parseSettingsSchema(m, "METADATA custom.settings"); err != nil {
			return nil, err
		}
		p.Settings = m
	}
	if v, ok := ann.Custom["resources"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, errors.New("METADATA custom.resources: must be a list of resource names")
		}
		for _, item := range list {
			s, ok := item.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("METADATA custom.resources: %v is not a resource name", item)
			}
			p.Resources = append(p.Resources, s)
		}
	}
	if v, ok := ann.Custom["operations"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, errors.New("METADATA custom.operations: must be a list of CREATE, UPDATE, DELETE or CONNECT")
		}
		for _, item := range list {
			s, _ := item.(string)
			switch s {
			case "CREATE", "UPDATE", "DELETE", "CONNECT":
				p.Operations = append(p.Operations, s)
			default:
				return nil, fmt.Errorf("METADATA custom.operations: %v: must be CREATE, UPDATE, DELETE or CONNECT", item)
			}
		}
	}
	return p, nil
}

// firstSet returns the first non-empty value: config over METADATA over the
// built-in default.
func firstSet[T ~string](values ...T) T {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	var zero T
	return zero
}

// namespaceExempt reports whether ns matches one of the exempt names or globs.
func (r *Registry) namespaceExempt(ns string) bool {
	if ns == "" {
		return false
	}
	for _, pat := range r.exempt {
		if ok, _ := path.Match(pat, ns); ok {
			return true
		}
	}
	return false
}
