package report

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"

	"github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/portcullis/portcullis/policies/engine"
)

// Rule IDs of findings that are not a policy's.
const (
	RuleSchema = "schema"
	RuleInput  = "input"
)

// writeSARIF writes a SARIF 2.1.0 log (as GitHub code scanning reads it):
// one rule per policy (plus "schema" and "input"), one result per
// violation, warning, evaluation error, schema error and input error, each
// located at the object's file and line. Levels: deny and errors "error",
// warnings "warning" ("error" with --fail-on-warn), audit "note". Skipped
// files and exempt objects are not findings.
func writeSARIF(w io.Writer, r *Report, o Options) error {
	log, err := sarif.New(sarif.Version210)
	if err != nil {
		return fmt.Errorf("sarif: %w", err)
	}
	run := sarif.NewRunWithInformationURI("portcullis", "https://github.com/portcullis/portcullis")
	type finding struct {
		rule, level, msg, source, object string
		line                             int
	}
	var findings []finding
	warnLevel := "warning"
	if o.FailOnWarn {
		warnLevel = "error"
	}
	for _, res := range r.Results {
		addAt := func(line int, rule, level, msg string) {
			if line == 0 {
				line = res.Line
			}
			findings = append(findings, finding{rule, level, res.Object() + ": " + msg, res.Source, res.Object(), line})
		}
		add := func(rule, level, msg string) { addAt(0, rule, level, msg) }
		for _, s := range res.Schema {
			add(RuleSchema, "error", s)
		}
		for _, e := range res.Errors {
			add(e.Policy, "error", "evaluation error: "+e.String())
		}
		for _, v := range res.Violations {
			switch {
			case v.Error != nil:
			case v.Enforcement == engine.EnforceDeny:
				addAt(v.Line, v.Policy, "error", v.Message)
			case v.Enforcement == engine.EnforceWarn:
				addAt(v.Line, v.Policy, warnLevel, v.Message)
			default:
				addAt(v.Line, v.Policy, "note", v.Message)
			}
		}
		for _, wn := range res.ownWarnings() {
			p := warningPolicy(wn)
			if p == "" || res.hasError(p) {
				continue
			}
			add(p, warnLevel, wn)
		}
	}
	for _, p := range r.Problems {
		if !p.Skipped {
			findings = append(findings, finding{RuleInput, "error", p.Error, p.Source, "", p.Line})
		}
	}
	ids := map[string]bool{}
	for _, f := range findings {
		ids[f.rule] = true
	}
	var sorted []string
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	index := map[string]int{}
	for i, id := range sorted {
		desc := "Portcullis policy " + id
		switch id {
		case RuleSchema:
			desc = "The object does not match its Kubernetes API schema"
		case RuleInput:
			desc = "The input could not be read as Kubernetes objects"
		}
		run.AddRule(id).WithDescription(desc)
		index[id] = i
	}
	for _, f := range findings {
		pl := sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(sarifURI(f.source)))
		if f.line > 0 {
			pl = pl.WithRegion(sarif.NewRegion().WithStartLine(f.line))
		}
		loc := sarif.NewLocationWithPhysicalLocation(pl)
		if f.object != "" {
			loc.AddLogicalLocations(sarif.NewLogicalLocation().WithFullyQualifiedName(f.object).WithKind("object"))
		}
		res := run.CreateResultForRule(f.rule).WithLevel(f.level).WithRuleIndex(index[f.rule]).WithMessage(sarif.NewTextMessage(f.msg))
		res.AddLocation(loc)
	}
	log.AddRun(run)
	if err := log.PrettyWrite(w); err != nil {
		return fmt.Errorf("sarif: %w", err)
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// sarifURI makes a relative URI reference of a file path.
func sarifURI(path string) string {
	return (&url.URL{Path: filepath.ToSlash(path)}).String()
}
