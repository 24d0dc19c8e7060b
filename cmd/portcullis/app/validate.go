package app

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies/engine"
)

// Output formats of validate.
const (
	OutputText  = "text"
	OutputJSON  = "json"
	OutputJUnit = "junit"
	OutputYAML  = "yaml"
)

// ValidateOptions configure `portcullis validate`.
type ValidateOptions struct {
	Source    PolicySourceOptions
	Files     []string
	Namespace string
	Policies  []string
	Output    string
	NoMutate  bool
	ShowPatch bool
}

// NewValidateOptions returns the defaults.
func NewValidateOptions() *ValidateOptions {
	return &ValidateOptions{Namespace: "default", Output: OutputText}
}

// AddFlags registers the validate flags.
func (o *ValidateOptions) AddFlags(fs *pflag.FlagSet) {
	o.Source.AddFlags(fs)
	fs.StringArrayVarP(&o.Files, "filename", "f", nil, "manifest file, directory (recursive) or - for stdin; repeatable")
	fs.StringVarP(&o.Namespace, "namespace", "n", o.Namespace, "namespace for objects that name none")
	fs.StringArrayVar(&o.Policies, "policy", nil, "run only this policy ID (repeatable; mutating or validating)")
	fs.StringVarP(&o.Output, "output", "o", o.Output, "text, json, junit, or yaml (the mutated manifests)")
	fs.BoolVar(&o.NoMutate, "no-mutate", false, "validate the manifests as written, without the mutating policies")
	fs.BoolVar(&o.ShowPatch, "show-patch", false, "include the JSON patch the server would return (json) or a diff (text)")
}

// Validate checks the flags.
func (o *ValidateOptions) Validate() error {
	if err := o.Source.Validate(); err != nil {
		return err
	}
	if len(o.Files) == 0 {
		return errors.New("no input: give -f FILE, -f DIR or -f -")
	}
	switch o.Output {
	case OutputText, OutputJSON, OutputJUnit, OutputYAML:
	default:
		return fmt.Errorf("--output %q: must be text, json, junit or yaml", o.Output)
	}
	return nil
}

func newValidateCommand(streams IO) *cobra.Command {
	o := NewValidateOptions()
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR|- [-f ...]",
		Short: "Dry-run manifests through the policies, as the webhooks would decide",
		Long: `Validate reads manifests and sends each through the same engine the server
uses, as the apiserver would on create: mutating policies first, then the
validating policies on the mutated object.

Exit codes: 0 everything admitted (warnings allowed), 1 something denied,
2 usage, input or policy load errors.`,
		Args: cobra.NoArgs,
		RunE: runE(o, streams),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// Result is the decision for one manifest: the JSON output's contract.
type Result struct {
	Source     string                `json:"source"`
	Index      int                   `json:"index"`
	Item       *int                  `json:"item,omitempty"`
	Kind       string                `json:"kind"`
	Namespace  string                `json:"namespace"`
	Name       string                `json:"name"`
	Allowed    bool                  `json:"allowed"`
	Violations []ResultViolation     `json:"violations"`
	Warnings   []string              `json:"warnings"`
	Patch      []jsonpatch.Operation `json:"patch,omitempty"`

	mutated []byte
}

// ResultViolation is one violation in the JSON output.
type ResultViolation struct {
	Policy      string             `json:"policy"`
	Enforcement engine.Enforcement `json:"enforcement"`
	Message     string             `json:"message"`
	Check       string             `json:"check,omitempty"`
}

// Report is the JSON output.
type Report struct {
	Results []Result `json:"results"`
	Summary Summary  `json:"summary"`
}

// Summary counts results.
type Summary struct {
	Objects int `json:"objects"`
	Denied  int `json:"denied"`
}

// Run reads the manifests, decides each, writes the report and returns an
// exitError for denials (1) or input errors (2).
func (o *ValidateOptions) Run(ctx context.Context, streams IO) error {
	manifests, err := ReadManifests(o.Files, streams.In)
	if err != nil {
		return usageError(err)
	}
	reg, err := o.Source.Load(ctx)
	if err != nil {
		return usageError(err)
	}
	for _, id := range o.Policies {
		if reg.Policy(id) == nil {
			return usageError(fmt.Errorf("--policy %q: no such policy (loaded: %s)", id, strings.Join(policyIDs(reg), ", ")))
		}
	}
	eng := engine.New(reg, nil)
	report := Report{Results: []Result{}}
	for _, m := range manifests {
		res, err := o.decide(ctx, eng, m)
		if err != nil {
			return usageError(&InputError{Source: m.Source, Index: m.Index, Err: err})
		}
		report.Results = append(report.Results, res)
		report.Summary.Objects++
		if !res.Allowed {
			report.Summary.Denied++
		}
	}
	if err := o.write(streams.Out, report); err != nil {
		return err
	}
	if report.Summary.Denied > 0 {
		return &exitError{code: ExitDenied}
	}
	return nil
}

// decide runs one manifest the way the apiserver would: mutating webhook,
// then validating webhook on the mutated object. Both calls are the
// engine's, exactly as the server makes them.
func (o *ValidateOptions) decide(ctx context.Context, eng *engine.Engine, m Manifest) (Result, error) {
	req := ReviewRequest(m, o.Namespace)
	res := Result{Source: m.Source, Index: m.Index, Kind: m.GVK.Kind, Namespace: req.Namespace, Name: m.Name,
		Violations: []ResultViolation{}, Warnings: []string{}}
	if m.Item >= 0 {
		item := m.Item
		res.Item = &item
	}
	opts := engine.Options{Policies: o.Policies}
	var decisions []*engine.Decision
	if !o.NoMutate {
		mut, err := eng.Evaluate(ctx, engine.Mutating, req, opts)
		if err != nil {
			return res, err
		}
		decisions = append(decisions, mut)
		if mut.Object != nil {
			res.Patch = mut.Patch
			res.mutated = mut.Object
			req.Object.Raw = mut.Object
		}
	}
	val, err := eng.Evaluate(ctx, engine.Validating, req, opts)
	if err != nil {
		return res, err
	}
	decisions = append(decisions, val)
	res.Allowed = true
	for _, d := range decisions {
		res.Allowed = res.Allowed && d.Allowed
		for _, v := range d.Violations {
			check, _ := v.Details["check"].(string)
			res.Violations = append(res.Violations, ResultViolation{Policy: v.Policy, Enforcement: v.Enforcement, Message: v.Message, Check: check})
		}
		res.Warnings = append(res.Warnings, d.Warnings...)
	}
	if res.mutated == nil {
		res.mutated = m.Object
	}
	return res, nil
}

func (o *ValidateOptions) write(w io.Writer, r Report) error {
	switch o.Output {
	case OutputJSON:
		if !o.ShowPatch {
			for i := range r.Results {
				r.Results[i].Patch = nil
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case OutputJUnit:
		return writeJUnit(w, r)
	case OutputYAML:
		return writeYAML(w, r)
	}
	return o.writeText(w, r)
}

// fromViolation reports whether warning w only repeats a warn-enforced violation.
func (r Result) fromViolation(w string) bool {
	for _, v := range r.Violations {
		if v.Enforcement == engine.EnforceWarn && w == v.Policy+": "+v.Message {
			return true
		}
	}
	return false
}

func (r Result) location() string {
	loc := fmt.Sprintf("%s#%d", r.Source, r.Index)
	if r.Item != nil {
		loc += fmt.Sprintf(".items[%d]", *r.Item)
	}
	return loc
}

func (r Result) object() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func (o *ValidateOptions) writeText(w io.Writer, r Report) error {
	var b strings.Builder
	for _, res := range r.Results {
		status := "PASS"
		if !res.Allowed {
			status = "FAIL"
		}
		fmt.Fprintf(&b, "%s %s (%s)\n", status, res.object(), res.location())
		for _, v := range res.Violations {
			fmt.Fprintf(&b, "  %s [%s] %s\n", v.Enforcement, v.Policy, v.Message)
		}
		for _, wn := range res.Warnings {
			if !res.fromViolation(wn) {
				fmt.Fprintf(&b, "  warning: %s\n", wn)
			}
		}
		if o.ShowPatch {
			for _, op := range res.Patch {
				val := ""
				if op.Operation != "remove" {
					js, _ := json.Marshal(op.Value)
					val = " " + string(js)
				}
				fmt.Fprintf(&b, "  patch: %s %s%s\n", op.Operation, op.Path, val)
			}
		}
	}
	fmt.Fprintf(&b, "%d %s, %d denied\n", r.Summary.Objects, plural(r.Summary.Objects, "object", "objects"), r.Summary.Denied)
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func writeYAML(w io.Writer, r Report) error {
	for i, res := range r.Results {
		out, err := yaml.JSONToYAML(res.mutated)
		if err != nil {
			return fmt.Errorf("%s: encode YAML: %w", res.location(), err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func writeJUnit(w io.Writer, r Report) error {
	suite := junitSuite{Name: "portcullis validate", Tests: r.Summary.Objects, Failures: r.Summary.Denied}
	for _, res := range r.Results {
		c := junitCase{Name: res.object(), ClassName: res.location()}
		var lines []string
		for _, v := range res.Violations {
			lines = append(lines, fmt.Sprintf("%s [%s] %s", v.Enforcement, v.Policy, v.Message))
		}
		for _, wn := range res.Warnings {
			if !res.fromViolation(wn) {
				lines = append(lines, "warning: "+wn)
			}
		}
		if !res.Allowed {
			var denied []string
			for _, v := range res.Violations {
				if v.Enforcement == engine.EnforceDeny {
					denied = append(denied, v.Policy)
				}
			}
			c.Failure = &junitFailure{Message: "denied by " + strings.Join(dedupeStrings(denied), ", "), Type: "denied", Text: strings.Join(lines, "\n")}
		} else if len(lines) > 0 {
			c.SystemOut = strings.Join(lines, "\n")
		}
		suite.Cases = append(suite.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{suite}}); err != nil {
		return fmt.Errorf("encode JUnit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func dedupeStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
