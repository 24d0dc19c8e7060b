package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/portcullis/portcullis/policies/engine"
)

// writeGitHub writes GitHub Actions workflow commands, one annotation per
// finding (https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions):
// "::error file=F,line=L,title=T::message". Denials, schema, evaluation and
// input errors are errors; warnings are warnings (errors with
// --fail-on-warn); audit-enforced violations are notices. The summary
// follows as plain lines.
func writeGitHub(w io.Writer, r *Report, o Options) error {
	var b strings.Builder
	warnLevel := "warning"
	if o.FailOnWarn {
		warnLevel = "error"
	}
	for _, res := range r.Results {
		annAt := func(line int, level, title, msg string) {
			if line == 0 {
				line = res.Line
			}
			b.WriteString(annotation(level, res.Source, line, title, res.Object()+": "+msg))
		}
		ann := func(level, title, msg string) { annAt(0, level, title, msg) }
		for _, s := range res.Schema {
			ann("error", "schema", s)
		}
		for _, e := range res.Errors {
			ann("error", e.Policy, e.String())
		}
		for _, v := range res.Violations {
			switch {
			case v.Error != nil:
			case v.Enforcement == engine.EnforceDeny:
				annAt(v.Line, "error", v.Policy, v.Message)
			case v.Enforcement == engine.EnforceWarn:
				annAt(v.Line, warnLevel, v.Policy, v.Message)
			default:
				annAt(v.Line, "notice", v.Policy, v.Message)
			}
		}
		for _, wn := range res.ownWarnings() {
			if p := warningPolicy(wn); p != "" && res.hasError(p) {
				continue // the error annotation says it
			}
			ann(warnLevel, warningPolicy(wn), wn)
		}
	}
	for _, p := range r.Problems {
		if p.Skipped {
			continue
		}
		b.WriteString(annotation("error", p.Source, p.Line, "input", p.Error))
	}
	b.WriteString(r.Summary.Text())
	_, err := io.WriteString(w, b.String())
	return err
}

func (res Result) hasError(policy string) bool {
	for _, e := range res.Errors {
		if e.Policy == policy {
			return true
		}
	}
	return false
}

func annotation(level, file string, line int, title, msg string) string {
	props := "file=" + escapeProperty(file)
	if line > 0 {
		props += fmt.Sprintf(",line=%d", line)
	}
	if title != "" {
		props += ",title=" + escapeProperty("portcullis "+title)
	}
	return "::" + level + " " + props + "::" + escapeData(msg) + "\n"
}

// escapeData and escapeProperty follow the runner's escaping
// (actions/toolkit, packages/core/src/command.ts): % \r \n in data, and
// also : and , in properties.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
