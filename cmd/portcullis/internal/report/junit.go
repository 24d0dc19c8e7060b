package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

type junitSuites struct {
	XMLName  xml.Name      `xml:"testsuites"`
	Name     string        `xml:"name,attr"`
	Tests    int           `xml:"tests,attr"`
	Failures int           `xml:"failures,attr"`
	Errors   int           `xml:"errors,attr"`
	Skipped  int           `xml:"skipped,attr"`
	Suites   []*junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// writeJUnit writes one testsuite per source file and one testcase per
// object (and per input problem). Jenkins splits a classname at its last
// dot into package and class, so the classname is "portcullis.<Kind>"
// (package portcullis, class Pod) and the name carries the object and its
// position: "tools/root (deploy/pods.yaml:12 #1)". GitLab shows both.
func writeJUnit(w io.Writer, r *Report, o Options) error {
	all := junitSuites{Name: o.Tool}
	bySource := map[string]*junitSuite{}
	suite := func(source string) *junitSuite {
		s := bySource[source]
		if s == nil {
			s = &junitSuite{Name: source}
			bySource[source] = s
			all.Suites = append(all.Suites, s)
		}
		return s
	}
	for _, res := range r.Results {
		s := suite(res.Source)
		name := res.Name
		if res.Namespace != "" {
			name = res.Namespace + "/" + res.Name
		}
		c := junitCase{Name: fmt.Sprintf("%s (%s)", name, res.Location()), ClassName: "portcullis." + res.Kind, File: res.Source, Line: res.Line}
		text := strings.Join(res.lines(false), "\n")
		switch {
		case res.Status == StatusError:
			var ids []string
			for _, e := range res.Errors {
				ids = append(ids, e.Policy)
			}
			c.Error = &junitMessage{Message: "evaluation error in " + strings.Join(dedupe(ids), ", "), Type: "evaluation-error", Text: text}
		case res.Status == StatusDenied:
			c.Failure = &junitMessage{Message: "denied by " + strings.Join(res.deniedBy(), ", "), Type: "denied", Text: text}
		case res.Status == StatusInvalid:
			c.Failure = &junitMessage{Message: "invalid: " + res.Schema[0], Type: "schema", Text: text}
		case res.Status == StatusWarned && o.FailOnWarn:
			c.Failure = &junitMessage{Message: "warnings (--fail-on-warn)", Type: "warned", Text: text}
		case res.Status == StatusExempt:
			c.Skipped = &junitMessage{Message: "exempt (" + res.Exempt + ")"}
		default:
			c.SystemOut = text
		}
		s.add(c)
	}
	for _, p := range r.Problems {
		s := suite(p.Source)
		c := junitCase{Name: "input " + p.location(), ClassName: "portcullis.input", File: p.Source, Line: p.Line}
		if p.Skipped {
			c.Skipped = &junitMessage{Message: p.Error}
		} else {
			c.Error = &junitMessage{Message: p.Error, Type: "input-error"}
		}
		s.add(c)
	}
	for _, s := range all.Suites {
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("encode JUnit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func (s *junitSuite) add(c junitCase) {
	s.Tests++
	switch {
	case c.Failure != nil:
		s.Failures++
	case c.Error != nil:
		s.Errors++
	case c.Skipped != nil:
		s.Skipped++
	}
	s.Cases = append(s.Cases, c)
}

func dedupe(in []string) []string {
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
