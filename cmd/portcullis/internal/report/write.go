package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/portcullis/portcullis/policies/engine"
)

// Output formats.
const (
	FormatText   = "text"
	FormatJSON   = "json"
	FormatJUnit  = "junit"
	FormatSARIF  = "sarif"
	FormatGitHub = "github"
	FormatYAML   = "yaml"
)

// Formats lists every format, for flag help and validation.
var Formats = []string{FormatText, FormatJSON, FormatJUnit, FormatSARIF, FormatGitHub, FormatYAML}

// Options shape the output.
type Options struct {
	// Format is one of Formats.
	Format string
	// Quiet prints only objects with failures or warnings (text).
	Quiet bool
	// ShowPatch includes the JSON patch (json) or its operations (text).
	ShowPatch bool
	// FailOnWarn makes warnings failures (junit, github levels).
	FailOnWarn bool
	// Tool names the command in SARIF and JUnit ("portcullis validate").
	Tool string
}

// Write writes r (summarized) in the chosen format.
func Write(w io.Writer, r *Report, o Options) error {
	if o.Tool == "" {
		o.Tool = "portcullis validate"
	}
	switch o.Format {
	case FormatJSON:
		return writeJSON(w, r, o)
	case FormatJUnit:
		return writeJUnit(w, r, o)
	case FormatSARIF:
		return writeSARIF(w, r, o)
	case FormatGitHub:
		return writeGitHub(w, r, o)
	case FormatYAML:
		return writeYAML(w, r)
	case FormatText, "":
		return writeText(w, r, o)
	}
	return fmt.Errorf("output format %q: must be one of %s", o.Format, strings.Join(Formats, ", "))
}

func writeJSON(w io.Writer, r *Report, o Options) error {
	out := *r
	if !o.ShowPatch {
		out.Results = make([]Result, len(r.Results))
		for i, res := range r.Results {
			res.Patch = nil
			out.Results[i] = res
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// statusWord is the text output's first word for a result.
func statusWord(res Result) string {
	switch res.Status {
	case StatusDenied:
		return "FAIL"
	case StatusError:
		return "ERROR"
	case StatusInvalid:
		return "INVALID"
	case StatusWarned:
		return "WARN"
	case StatusExempt:
		return "EXEMPT (" + res.Exempt + ")"
	}
	return "PASS"
}

// lines are the detail lines of a result, most severe first: schema
// errors, evaluation errors, denials, warn and audit violations, warnings.
func (res Result) lines(showPatch bool) []string {
	var out []string
	for _, s := range res.Schema {
		out = append(out, "schema: "+s)
	}
	for _, e := range res.Errors {
		out = append(out, fmt.Sprintf("error [%s] %s; failure mode %s", e.Policy, e, e.FailureMode))
	}
	for _, v := range res.Violations {
		if v.Error == nil {
			out = append(out, fmt.Sprintf("%s [%s] %s", v.Enforcement, v.Policy, v.Message))
		}
	}
	for _, wn := range res.ownWarnings() {
		out = append(out, "warning: "+wn)
	}
	if showPatch {
		for _, op := range res.Patch {
			val := ""
			if op.Operation != "remove" {
				js, _ := json.Marshal(op.Value)
				val = " " + string(js)
			}
			out = append(out, fmt.Sprintf("patch: %s %s%s", op.Operation, op.Path, val))
		}
	}
	return out
}

func writeText(w io.Writer, r *Report, o Options) error {
	var b strings.Builder
	for _, res := range r.Results {
		if o.Quiet && (res.Status == StatusAdmitted || res.Status == StatusExempt) {
			continue
		}
		fmt.Fprintf(&b, "%s %s (%s)\n", statusWord(res), res.Object(), res.Location())
		for _, l := range res.lines(o.ShowPatch) {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		for _, e := range res.Explain {
			fmt.Fprintf(&b, "  explain [%s] %s at %s:%d: %s\n", e.Policy, e.Rule, e.File, e.Line, e.Message)
		}
	}
	// Input problems come after all results.
	for _, p := range r.Problems {
		if p.Skipped && o.Quiet {
			continue
		}
		word := "ERROR"
		if p.Skipped {
			word = "SKIP"
		}
		fmt.Fprintf(&b, "%s %s: %s\n", word, p.location(), p.Error)
	}
	b.WriteString(r.Summary.Text())
	_, err := io.WriteString(w, b.String())
	return err
}

func (p Problem) location() string {
	loc := p.Source
	if p.Line > 0 {
		loc += fmt.Sprintf(":%d", p.Line)
	}
	return loc
}

// Text is the summary as printed after the text output: a line of totals
// and one line per policy that denied, warned, audited or failed.
func (s Summary) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %d admitted, %d denied, %d warned, %d exempt, %d invalid, %d %s",
		s.Objects, plural(s.Objects, "object", "objects"), s.Admitted, s.Denied, s.Warned, s.Exempt, s.Invalid, s.Errors, plural(s.Errors, "error", "errors"))
	if s.InputErrors > 0 || s.Skipped > 0 {
		fmt.Fprintf(&b, "; %d input %s, %d skipped", s.InputErrors, plural(s.InputErrors, "error", "errors"), s.Skipped)
	}
	b.WriteString("\n")
	ids := make([]string, 0, len(s.Policies))
	for id := range s.Policies {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := s.Policies[id]
		var parts []string
		for _, p := range []struct {
			n    int
			what string
		}{{c.Denied, "denied"}, {c.Warned, "warned"}, {c.Audited, "audited"}, {c.Errors, plural(c.Errors, "error", "errors")}} {
			if p.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
			}
		}
		fmt.Fprintf(&b, "  %s: %s\n", id, strings.Join(parts, ", "))
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// deniedBy lists the policies that denied res, sorted and unique.
func (res Result) deniedBy() []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range res.Violations {
		if v.Enforcement == engine.EnforceDeny && v.Error == nil && !seen[v.Policy] {
			seen[v.Policy] = true
			out = append(out, v.Policy)
		}
	}
	sort.Strings(out)
	return out
}
