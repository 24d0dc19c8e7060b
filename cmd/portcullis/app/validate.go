package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/input"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/report"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/review"
	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks/audit"
)

// ValidateOptions configure `portcullis validate`.
type ValidateOptions struct {
	Source        PolicySourceOptions
	Files         []string
	Kustomize     []string
	Recursive     bool
	MaxInputBytes int64
	Schema        bool

	Namespace string
	Operation string
	Old       []string
	User      string
	Groups    []string

	Policies []string
	// NamespaceLabels are --namespace-labels: what policies see as
	// input.namespace (absent when not given).
	NamespaceLabels []string
	NoMutate        bool
	EvalTimeout     time.Duration

	Output     string
	Quiet      bool
	ShowPatch  bool
	FailOnWarn bool
	// ShowInput prints the policies' input documents instead of the report.
	ShowInput bool
	// Explain is "" (off), "rules" (the rule bodies that fired) or "full"
	// (also OPA's trace of each policy that fired, to stderr).
	Explain string
}

// NewValidateOptions returns the defaults.
func NewValidateOptions() *ValidateOptions {
	return &ValidateOptions{
		Recursive:     true,
		MaxInputBytes: input.DefaultMaxBytes,
		Schema:        true,
		Namespace:     "default",
		Operation:     string(admissionv1.Create),
		User:          review.DefaultUser,
		EvalTimeout:   NewServeOptions().EvalTimeout, // the server's decision, deadline included
		Output:        report.FormatText,
	}
}

// AddFlags registers the validate flags.
func (o *ValidateOptions) AddFlags(fs *pflag.FlagSet) {
	o.Source.AddFlags(fs)
	fs.StringArrayVarP(&o.Files, "filename", "f", nil, "manifest file, directory or - for stdin; repeatable")
	fs.StringArrayVarP(&o.Kustomize, "kustomize", "k", nil, "kustomization directory, rendered as `kubectl apply -k` does; repeatable")
	fs.BoolVarP(&o.Recursive, "recursive", "R", o.Recursive, "read directories given with -f recursively (-R=false: only the top level)")
	fs.Int64Var(&o.MaxInputBytes, "max-input-bytes", o.MaxInputBytes, "limit on the bytes read from all inputs together")
	fs.BoolVar(&o.Schema, "schema", o.Schema, "check built-in kinds against their Kubernetes schema (unknown fields, wrong types, duplicate keys)")
	fs.StringVarP(&o.Namespace, "namespace", "n", o.Namespace, "namespace for namespaced objects that name none")
	fs.StringVar(&o.Operation, "operation", o.Operation, "CREATE, UPDATE (needs --old) or DELETE")
	fs.StringArrayVar(&o.Old, "old", nil, "file or directory with the old objects of an UPDATE, matched by kind, namespace and name; repeatable")
	fs.StringVar(&o.User, "user", o.User, "username of the requests")
	fs.StringSliceVar(&o.Groups, "groups", nil, "groups of the requesting user (comma-separated or repeated)")
	fs.StringArrayVar(&o.Policies, "policy", nil, "run only this policy ID (repeatable; mutating or validating)")
	fs.StringArrayVar(&o.NamespaceLabels, "namespace-labels", nil, "labels of a namespace as policies see them (input.namespace; pod_security's Pod Security Admission labels): NS=key=value,key=value; repeatable; other namespaces have no labels")
	fs.BoolVar(&o.NoMutate, "no-mutate", false, "validate the manifests as written, without the mutating policies")
	fs.DurationVar(&o.EvalTimeout, "eval-timeout", o.EvalTimeout, "deadline of each webhook call, as serve's --eval-timeout")
	fs.StringVarP(&o.Output, "output", "o", o.Output, strings.Join(report.Formats, ", "))
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "text: print only objects with failures or warnings, and the summary")
	fs.BoolVar(&o.ShowPatch, "show-patch", false, "include the JSON patch the server would return (json) or its operations (text)")
	fs.BoolVar(&o.FailOnWarn, "fail-on-warn", false, "exit 1 when any object has warnings")
	fs.StringVar(&o.Explain, "explain", "", "for each violation and warning, the rule, file and line that produced it (--explain); --explain=full also writes OPA's trace of that policy to stderr")
	fs.Lookup("explain").NoOptDefVal = explainRules
	fs.BoolVar(&o.ShowInput, "show-input", false, "print, as JSON instead of the report, the input document the policies receive for each object and data.portcullis.config")
}

// Validate checks the flags.
func (o *ValidateOptions) Validate() error {
	if err := o.Source.Validate(); err != nil {
		return err
	}
	if len(o.Files) == 0 && len(o.Kustomize) == 0 {
		return errors.New("no input: give -f FILE, -f DIR, -f - or -k DIR")
	}
	valid := false
	for _, f := range report.Formats {
		valid = valid || o.Output == f
	}
	if !valid {
		return fmt.Errorf("--output %q: must be one of %s", o.Output, strings.Join(report.Formats, ", "))
	}
	op, err := review.ParseOperation(o.Operation)
	if err != nil {
		return err
	}
	if op == admissionv1.Update && len(o.Old) == 0 {
		return errors.New("--operation UPDATE needs --old FILE with the old objects")
	}
	if op != admissionv1.Update && len(o.Old) > 0 {
		return fmt.Errorf("--old is only for --operation UPDATE, not %s", op)
	}
	if _, err := audit.ParseNamespaceLabels(o.NamespaceLabels); err != nil {
		return err
	}
	if o.Explain != "" && o.Explain != explainRules && o.Explain != explainFull {
		return fmt.Errorf("--explain=%q: must be %s or %s", o.Explain, explainRules, explainFull)
	}
	if o.EvalTimeout <= 0 {
		return errors.New("--eval-timeout must be positive")
	}
	if o.MaxInputBytes <= 0 {
		return errors.New("--max-input-bytes must be positive")
	}
	return nil
}

func newValidateCommand(streams IO) *cobra.Command {
	o := NewValidateOptions()
	cmd := &cobra.Command{
		Use:   "validate (-f FILE|DIR|- | -k DIR) [-f ...]",
		Short: "Dry-run manifests through the policies, as the webhooks would decide",
		Long: `Validate reads manifests as kubectl apply does and sends each object through
the same engine the server uses, as the apiserver would: mutating policies
first, then the validating policies on the mutated object.

Files found by walking a directory that are not Kubernetes objects
(Chart.yaml, values.yaml, Helm templates, package.json, kustomization.yaml)
are listed and skipped; in files named with -f they are input errors.

Exit codes: 0 everything admitted (warnings allowed unless --fail-on-warn),
1 something denied or invalid against its schema, 2 usage, input or policy
load errors (listed after all results), 3 a policy could not be evaluated
(error or timeout). The highest applies in the order 3, 2, 1. Interrupted:
130 (SIGINT) or 143 (SIGTERM), with no results written.`,
		Args: cobra.NoArgs,
		RunE: runE(o, streams),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// errInterrupted stops a run when its context ends (SIGINT/SIGTERM): no
// results are written, none of them could be trusted.
var errInterrupted = errors.New("interrupted; no results written")

// Run reads the manifests, decides each, writes the report and returns an
// exitError for denials (1), input errors (2) or evaluation errors (3).
func (o *ValidateOptions) Run(ctx context.Context, streams IO) error {
	o.Source.Print = stderrPrinter(streams.Err)
	reg, err := o.Source.Load(ctx)
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err != nil {
		return usageError(err)
	}
	for _, id := range o.Policies {
		if reg.Policy(id) == nil {
			return usageError(fmt.Errorf("--policy %q: no such policy (loaded: %s)", id, strings.Join(policyIDs(reg), ", ")))
		}
	}
	in, old, err := o.read(ctx, streams)
	if err != nil {
		return err
	}
	b, err := o.builder(in, old)
	if err != nil {
		return usageError(err)
	}
	var engOpts []engine.EngineOption
	if len(o.NamespaceLabels) > 0 {
		labels, _ := audit.ParseNamespaceLabels(o.NamespaceLabels)
		engOpts = append(engOpts, engine.WithNamespaceLabels(&audit.StaticLabels{Labels: labels}))
	}
	r, inputs, err := o.decideAll(ctx, engine.New(reg, nil, engOpts...), b, in, streams)
	if err != nil {
		return err
	}
	for _, src := range [][]input.Problem{old.Problems, in.Problems} {
		for _, p := range src {
			r.Problems = append(r.Problems, problem(p))
		}
	}
	// An old object nothing updates is most likely a renamed or mistyped
	// one: listed, not an error.
	for _, u := range b.Unmatched() {
		r.Problems = append(r.Problems, problem(input.Problem{Position: u.Position, Skipped: true,
			Err: fmt.Errorf("--old: %s matches no object of the input", b.Key(u))}))
	}
	r.Summarize()
	if o.ShowInput {
		if err := writeInputs(streams.Out, reg.Config(), inputs, r.Problems); err != nil {
			return err
		}
		return o.exit(r.Summary)
	}
	if err := report.Write(streams.Out, r, report.Options{Format: o.Output, Quiet: o.Quiet, ShowPatch: o.ShowPatch, FailOnWarn: o.FailOnWarn}); err != nil {
		return err
	}
	return o.exit(r.Summary)
}

// read reads the inputs and the old objects within one byte budget.
func (o *ValidateOptions) read(ctx context.Context, streams IO) (in, old *input.Input, err error) {
	rd := &input.Reader{Stdin: streams.In, MaxBytes: o.MaxInputBytes, Recursive: o.Recursive}
	var specs []input.Spec
	for _, f := range o.Files {
		specs = append(specs, input.Spec{Path: f})
	}
	for _, k := range o.Kustomize {
		specs = append(specs, input.Spec{Path: k, Kustomize: true})
	}
	var oldSpecs []input.Spec
	for _, f := range o.Old {
		oldSpecs = append(oldSpecs, input.Spec{Path: f})
	}
	if in, err = rd.Read(ctx, specs); err == nil {
		old, err = rd.Read(ctx, oldSpecs)
	}
	switch {
	case ctx.Err() != nil:
		return nil, nil, errInterrupted
	case err != nil:
		return nil, nil, usageError(err)
	}
	return in, old, nil
}

func (o *ValidateOptions) builder(in, old *input.Input) (*review.Builder, error) {
	op, _ := review.ParseOperation(o.Operation)
	b := &review.Builder{Operation: op, User: o.User, Groups: o.Groups, Namespace: o.Namespace}
	b.Learn(in.Objects)
	b.Learn(old.Objects)
	if op == admissionv1.Update {
		if err := b.SetOld(old.Objects); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// decideAll runs every object through the webhooks' decision path. An
// object that cannot become a request (an UPDATE without its old object)
// is an input problem.
func (o *ValidateOptions) decideAll(ctx context.Context, eng *engine.Engine, b *review.Builder, in *input.Input, streams IO) (*report.Report, []objectInput, error) {
	r := &report.Report{Results: []report.Result{}}
	var inputs []objectInput
	opts := review.Options{NoMutate: o.NoMutate, Policies: o.Policies, Timeout: o.EvalTimeout, CheckIdempotent: true}
	var crds *input.CRDSchemas
	if o.Schema {
		crds = input.LearnCRDs(in.Objects)
	}
	for _, obj := range in.Objects {
		req, err := b.Request(obj)
		if err != nil {
			r.Problems = append(r.Problems, problem(input.Problem{Position: obj.Position, Err: err}))
			continue
		}
		out, err := review.Decide(ctx, eng, req, opts)
		if ctx.Err() != nil {
			return nil, nil, errInterrupted
		}
		if err != nil {
			r.Problems = append(r.Problems, problem(input.Problem{Position: obj.Position, Err: err}))
			continue
		}
		res := report.Result{Source: obj.Source, Index: obj.Doc, Line: obj.Line, Kind: obj.GVK.Kind, Namespace: req.Namespace, Name: obj.Name,
			Original: &report.Original{JSON: obj.JSON, Text: obj.Text, JSONText: obj.JSONText, Item: obj.Item, TextLine: obj.TextLine}}
		if obj.Item >= 0 {
			item := obj.Item
			res.Item = &item
		}
		if o.Schema {
			res.Schema = obj.CheckSchema(crds).Errors
		}
		res.Decision(out.Mutate, out.Validate)
		if len(out.NotIdempotent) > 0 {
			res.Warnings = append(res.Warnings, out.NotIdempotent...)
			res.SetStatus()
		}
		if o.Explain != "" {
			if res.Explain, err = o.explain(ctx, eng, res, out, streams); err != nil {
				return nil, nil, err
			}
		}
		r.Results = append(r.Results, res)
		if o.ShowInput {
			oi, err := showInput(ctx, eng, res, out)
			if err != nil {
				return nil, nil, err
			}
			inputs = append(inputs, oi)
		}
	}
	return r, inputs, nil
}

func problem(p input.Problem) report.Problem {
	rp := report.Problem{Source: p.Source, Line: p.Line, Error: p.Err.Error(), Skipped: p.Skipped}
	if p.Item >= 0 || p.Line > 0 {
		doc := p.Doc
		rp.Index = &doc
	}
	return rp
}

// exit maps the summary to the exit code: evaluation errors (3) over input
// errors (2) over denials, schema errors and, with --fail-on-warn,
// warnings (1).
func (o *ValidateOptions) exit(s report.Summary) error {
	switch {
	case s.Errors > 0:
		return &exitError{code: ExitEvalError}
	case s.InputErrors > 0:
		return &exitError{code: ExitUsage, err: fmt.Errorf("%d input %s (listed above)", s.InputErrors, plural(s.InputErrors, "error", "errors"))}
	case s.Denied > 0 || s.Invalid > 0 || (o.FailOnWarn && s.Warned > 0):
		return &exitError{code: ExitDenied}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
