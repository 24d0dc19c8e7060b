package app

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/tester"
)

// testEntry is one Rego unit test or one suite case in `portcullis test -o
// json|junit`.
type testEntry struct {
	// Kind is "rego" (a *_test.rego rule) or "suite" (a *_suite.yaml case).
	Kind string `json:"kind"`
	// Name is the test rule (data.<package>.<rule>) or the case's name.
	Name string `json:"name"`
	// File is the test's .rego file or the suite's file.
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Pass bool   `json:"pass"`
	// Skipped: a todo_ test.
	Skipped bool `json:"skipped,omitempty"`
	// Failures are the reasons a test or case failed.
	Failures []string `json:"failures,omitempty"`
	// Output is the test's print() output.
	Output     string        `json:"output,omitempty"`
	DurationMS float64       `json:"duration_ms"`
	duration   time.Duration `json:"-"`
}

// testEntries lists the unit tests' results, then the suites' cases.
func testEntries(results []*tester.Result, cases []suiteResult) []testEntry {
	out := make([]testEntry, 0, len(results)+len(cases))
	for _, r := range results {
		e := testEntry{Kind: "rego", Name: r.Package + "." + r.Name, Pass: r.Pass(), Skipped: r.Skip, Output: string(r.Output), duration: r.Duration}
		if r.Location != nil {
			e.File, e.Line = r.Location.File, r.Location.Row
		}
		switch {
		case r.Error != nil:
			e.Failures = []string{r.Error.Error()}
		case r.Fail && r.FailedAt != nil && r.FailedAt.Location != nil:
			e.Failures = []string{fmt.Sprintf("%s:%d: failed at %s", r.FailedAt.Location.File, r.FailedAt.Location.Row, r.FailedAt.String())}
		case r.Fail:
			e.Failures = []string{"test failed"}
		}
		out = append(out, e)
	}
	for _, c := range cases {
		out = append(out, testEntry{Kind: "suite", Name: c.Case, File: c.Suite, Pass: len(c.Failures) == 0, Failures: c.Failures, duration: c.Duration})
	}
	for i := range out {
		out[i].DurationMS = float64(out[i].duration.Microseconds()) / 1000
	}
	return out
}

// testJSON is the document of `portcullis test -o json`.
type testJSON struct {
	Tests   []testEntry `json:"tests"`
	Summary struct {
		Total   int `json:"total"`
		Passed  int `json:"passed"`
		Failed  int `json:"failed"`
		Skipped int `json:"skipped"`
	} `json:"summary"`
}

func writeTestJSON(w io.Writer, entries []testEntry) error {
	doc := testJSON{Tests: entries}
	for _, e := range entries {
		doc.Summary.Total++
		switch {
		case e.Skipped:
			doc.Summary.Skipped++
		case e.Pass:
			doc.Summary.Passed++
		default:
			doc.Summary.Failed++
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// The JUnit document: report's junit types are built from a validate Report,
// so test writes its own (the same element and attribute names).
type testJUnitSuites struct {
	XMLName  xml.Name          `xml:"testsuites"`
	Name     string            `xml:"name,attr"`
	Tests    int               `xml:"tests,attr"`
	Failures int               `xml:"failures,attr"`
	Skipped  int               `xml:"skipped,attr"`
	Time     string            `xml:"time,attr"`
	Suites   []*testJUnitSuite `xml:"testsuite"`
}

type testJUnitSuite struct {
	Name     string          `xml:"name,attr"`
	Tests    int             `xml:"tests,attr"`
	Failures int             `xml:"failures,attr"`
	Skipped  int             `xml:"skipped,attr"`
	Time     string          `xml:"time,attr"`
	Cases    []testJUnitCase `xml:"testcase"`
	duration time.Duration
}

type testJUnitCase struct {
	Name      string            `xml:"name,attr"`
	ClassName string            `xml:"classname,attr"`
	File      string            `xml:"file,attr,omitempty"`
	Line      int               `xml:"line,attr,omitempty"`
	Time      string            `xml:"time,attr"`
	Failure   *testJUnitMessage `xml:"failure,omitempty"`
	Skipped   *testJUnitMessage `xml:"skipped,omitempty"`
	SystemOut string            `xml:"system-out,omitempty"`
}

type testJUnitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func junitSeconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// writeTestJUnit writes one testsuite per file (a *_test.rego or a
// *_suite.yaml) and one testcase per unit test or suite case.
func writeTestJUnit(w io.Writer, entries []testEntry) error {
	all := testJUnitSuites{Name: "portcullis test"}
	byFile := map[string]*testJUnitSuite{}
	var total time.Duration
	for _, e := range entries {
		s := byFile[e.File]
		if s == nil {
			s = &testJUnitSuite{Name: e.File}
			byFile[e.File] = s
			all.Suites = append(all.Suites, s)
		}
		class := "portcullis.suite"
		if e.Kind == "rego" {
			class = strings.TrimSuffix(e.Name, "."+e.Name[strings.LastIndex(e.Name, ".")+1:])
		}
		c := testJUnitCase{Name: e.Name, ClassName: class, File: e.File, Line: e.Line, Time: junitSeconds(e.duration), SystemOut: e.Output}
		s.Tests++
		all.Tests++
		switch {
		case e.Skipped:
			c.Skipped = &testJUnitMessage{Message: "skipped"}
			s.Skipped++
			all.Skipped++
		case !e.Pass:
			msg := "failed"
			if len(e.Failures) > 0 {
				msg = e.Failures[0]
			}
			c.Failure = &testJUnitMessage{Message: msg, Text: strings.Join(e.Failures, "\n")}
			s.Failures++
			all.Failures++
		}
		s.duration += e.duration
		total += e.duration
		s.Cases = append(s.Cases, c)
	}
	for _, s := range all.Suites {
		s.Time = junitSeconds(s.duration)
	}
	all.Time = junitSeconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
