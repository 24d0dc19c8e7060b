// Package report holds the results of running objects through the policies
// and writes them as text, JSON, JUnit, SARIF, GitHub workflow commands or
// the mutated YAML. It does not care where the objects came from: files
// (validate) or anything else that fills a Result per object.
package report

import (
	"fmt"
	"sort"
	"strings"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/portcullis/portcullis/policies/engine"
)

// Status is the verdict on one object, the most severe that applies.
type Status string

// Statuses, from least to most severe.
const (
	// StatusAdmitted: admitted without warnings.
	StatusAdmitted Status = "admitted"
	// StatusExempt: the namespace is exempt, nothing was evaluated.
	StatusExempt Status = "exempt"
	// StatusWarned: admitted with warnings.
	StatusWarned Status = "warned"
	// StatusInvalid: the object does not match its Kubernetes schema (the
	// apiserver would refuse it before admission).
	StatusInvalid Status = "invalid"
	// StatusDenied: a deny-enforced policy refused it.
	StatusDenied Status = "denied"
	// StatusError: a policy could not be evaluated (error, timeout, not
	// evaluated because the deadline had passed). Never counted as denied.
	StatusError Status = "error"
)

// Result is the verdict on one object: the JSON output's contract.
type Result struct {
	// Source, Index (document), Item (within a List) and Line say where
	// the object is; Line is 0 when unknown.
	Source string `json:"source"`
	Index  int    `json:"index"`
	Item   *int   `json:"item,omitempty"`
	Line   int    `json:"line"`

	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`

	Status Status `json:"status"`
	// Allowed is the webhooks' answer (false also when a policy's failure
	// mode denied after an error).
	Allowed bool `json:"allowed"`
	// Exempt names why nothing was evaluated, e.g. "namespace kube-system".
	Exempt string `json:"exempt,omitempty"`
	// Schema lists schema errors; nil when the object matches its schema
	// or was not checked.
	Schema []string `json:"schemaErrors,omitempty"`
	// Violations: denials first, then warn- and audit-enforced ones.
	Violations []Violation `json:"violations"`
	// Warnings go back to the client (AdmissionResponse.warnings).
	Warnings []string `json:"warnings"`
	// Errors are the policies that could not be evaluated.
	Errors []EvalError `json:"errors,omitempty"`
	// Explain lists the deny and warn rule bodies that fired (validate
	// --explain); nil otherwise.
	Explain []Explanation `json:"explain,omitempty"`
	// Patch is the mutating webhook's JSON patch (shown with --show-patch).
	Patch []jsonpatch.Operation `json:"patch,omitempty"`

	// Original is the object as read, for -o yaml.
	Original *Original `json:"-"`
}

// Explanation is one deny or warn rule body that fired: the policy, the
// rule, where it is and the message it produced.
type Explanation struct {
	Policy  string `json:"policy"`
	Rule    string `json:"rule"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// Original is an object as the user wrote it.
type Original struct {
	// JSON is the object as JSON (always set).
	JSON []byte
	// Text is the document as written (nil when there is none, e.g.
	// rendered by kustomize or read from a cluster); JSONText says it is
	// JSON; Item is the object's index in a List document, or -1.
	Text     []byte
	JSONText bool
	Item     int
	// TextLine is the line of Text's first byte in its source.
	TextLine int
}

// Violation is one deny entry of a policy.
type Violation struct {
	Policy      string             `json:"policy"`
	Enforcement engine.Enforcement `json:"enforcement"`
	Message     string             `json:"message"`
	Check       string             `json:"check,omitempty"`
	// Field is the field the policy names (its entry's "field"), and Line
	// that field's line in the source when it is there as written.
	Field string `json:"field,omitempty"`
	Line  int    `json:"line,omitempty"`
	// Error is set when this violation is a policy's failure mode after
	// an evaluation error.
	Error *EvalError `json:"error,omitempty"`
}

// EvalError is a policy that could not be evaluated. It never carries
// object contents.
type EvalError struct {
	Policy      string `json:"policy"`
	FailureMode string `json:"failureMode"`
	// Code is OPA's error code (e.g. eval_conflict_error), or timeout /
	// not_evaluated for deadlines.
	Code string `json:"code"`
	// Message says what happened.
	Message string `json:"message"`
	// Location is the policy file:line where evaluation failed, if known.
	Location string `json:"location,omitempty"`
}

// String is "code: message (location)".
func (e EvalError) String() string {
	s := e.Code + ": " + e.Message
	if e.Location != "" {
		s += " (" + e.Location + ")"
	}
	return s
}

// Problem is input that is not an object: an entry of the report.
type Problem struct {
	Source string `json:"source"`
	Index  *int   `json:"index,omitempty"`
	Line   int    `json:"line"`
	Error  string `json:"error"`
	// Skipped: found by walking a directory and skipped (not an error).
	Skipped bool `json:"skipped"`
}

// Report is everything one run found.
type Report struct {
	Results  []Result  `json:"results"`
	Problems []Problem `json:"problems"`
	Summary  Summary   `json:"summary"`
}

// Summary counts results; an object counts in every class that applies
// (a denied object that also warned is denied and warned). Admitted counts
// objects evaluated and admitted, with or without warnings; exempt ones
// are not evaluated and count only as exempt.
type Summary struct {
	Objects     int `json:"objects"`
	Admitted    int `json:"admitted"`
	Denied      int `json:"denied"`
	Warned      int `json:"warned"`
	Exempt      int `json:"exempt"`
	Invalid     int `json:"invalid"`
	Errors      int `json:"errors"`
	InputErrors int `json:"inputErrors"`
	Skipped     int `json:"skipped"`
	// Policies counts per policy ID.
	Policies map[string]*PolicyCount `json:"policies"`
}

// PolicyCount is how many objects a policy denied, warned, audited or
// failed on.
type PolicyCount struct {
	Denied  int `json:"denied"`
	Warned  int `json:"warned"`
	Audited int `json:"audited"`
	Errors  int `json:"errors"`
}

// Decision fills the verdict part of r from the webhooks' decisions
// (mutating first, nil ones skipped) and sets Status.
func (r *Result) Decision(decisions ...*engine.Decision) {
	r.Allowed = true
	r.Violations, r.Warnings = []Violation{}, []string{}
	exempt := len(decisions) > 0
	for _, d := range decisions {
		if d == nil {
			continue
		}
		exempt = exempt && d.Exempt
		r.Allowed = r.Allowed && d.Allowed
		failed := map[string]*EvalError{}
		for _, pe := range d.Errors {
			e := evalError(pe)
			r.Errors = append(r.Errors, e)
			failed[pe.Policy] = &r.Errors[len(r.Errors)-1]
		}
		for _, v := range d.Violations {
			check, _ := v.Details["check"].(string)
			field, _ := v.Details["field"].(string)
			rv := Violation{Policy: v.Policy, Enforcement: v.Enforcement, Message: v.Message, Check: check, Field: field}
			if e := failed[v.Policy]; e != nil {
				// A failed policy records no entries of its own: this is
				// its failure mode.
				c := *e
				rv.Error = &c
			}
			r.Violations = append(r.Violations, rv)
		}
		r.Warnings = append(r.Warnings, d.Warnings...)
		if len(d.Patch) > 0 {
			r.Patch = d.Patch
		}
	}
	if exempt && r.Namespace != "" {
		r.Exempt = "namespace " + r.Namespace
	}
	sort.SliceStable(r.Violations, func(i, j int) bool {
		return rank(r.Violations[i].Enforcement) < rank(r.Violations[j].Enforcement)
	})
	r.locateFields()
	r.SetStatus()
}

func rank(e engine.Enforcement) int {
	switch e {
	case engine.EnforceDeny:
		return 0
	case engine.EnforceWarn:
		return 1
	}
	return 2
}

// evalError is the engine's description of a policy error: OPA's code, a
// message with no object contents, and the policy location.
func evalError(pe engine.PolicyError) EvalError {
	return EvalError{Policy: pe.Policy, FailureMode: string(pe.FailureMode), Code: pe.Code, Message: pe.Message, Location: pe.Location()}
}

// SetStatus derives Status from the result's contents.
func (r *Result) SetStatus() {
	switch {
	case len(r.Errors) > 0:
		r.Status = StatusError
	case r.denied():
		r.Status = StatusDenied
	case len(r.Schema) > 0:
		r.Status = StatusInvalid
	case len(r.Warnings) > 0 || r.has(engine.EnforceWarn):
		r.Status = StatusWarned
	case r.Exempt != "":
		r.Status = StatusExempt
	default:
		r.Status = StatusAdmitted
	}
}

// denied reports a denial by a policy that was evaluated (failure modes
// after errors are errors, not denials).
func (r *Result) denied() bool {
	for _, v := range r.Violations {
		if v.Enforcement == engine.EnforceDeny && v.Error == nil {
			return true
		}
	}
	return false
}

func (r *Result) has(e engine.Enforcement) bool {
	for _, v := range r.Violations {
		if v.Enforcement == e {
			return true
		}
	}
	return false
}

// Location is "source:line" (or "source" when the line is unknown),
// followed by the document index: "deploy/app.yaml:12 #1".
func (r Result) Location() string {
	loc := r.Source
	if r.Line > 0 {
		loc += fmt.Sprintf(":%d", r.Line)
	}
	loc += fmt.Sprintf(" #%d", r.Index)
	if r.Item != nil {
		loc += fmt.Sprintf(".items[%d]", *r.Item)
	}
	return loc
}

// Object is "Kind namespace/name" or "Kind name".
func (r Result) Object() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// fromViolation reports whether warning w only repeats a warn-enforced
// violation (the engine sends those as warnings too).
func (r Result) fromViolation(w string) bool {
	for _, v := range r.Violations {
		if v.Enforcement == engine.EnforceWarn && w == v.Policy+": "+v.Message {
			return true
		}
	}
	return false
}

// ownWarnings are the warnings that do not repeat a violation.
func (r Result) ownWarnings() []string {
	var out []string
	for _, w := range r.Warnings {
		if !r.fromViolation(w) {
			out = append(out, w)
		}
	}
	return out
}

// warningPolicy is the policy ID a warning starts with ("id: message").
func warningPolicy(w string) string {
	if i := strings.Index(w, ": "); i > 0 {
		return w[:i]
	}
	return ""
}

// Summarize computes r.Summary from the results and problems.
func (r *Report) Summarize() {
	if r.Results == nil {
		r.Results = []Result{}
	}
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	s := Summary{Policies: map[string]*PolicyCount{}}
	count := func(id string) *PolicyCount {
		c := s.Policies[id]
		if c == nil {
			c = &PolicyCount{}
			s.Policies[id] = c
		}
		return c
	}
	for _, res := range r.Results {
		s.Objects++
		denied, warned := res.denied(), len(res.Warnings) > 0 || res.has(engine.EnforceWarn)
		if denied {
			s.Denied++
		}
		if warned {
			s.Warned++
		}
		if res.Exempt != "" {
			s.Exempt++
		}
		if len(res.Schema) > 0 {
			s.Invalid++
		}
		if len(res.Errors) > 0 {
			s.Errors++
		}
		if res.Allowed && res.Exempt == "" && len(res.Errors) == 0 && len(res.Schema) == 0 {
			s.Admitted++
		}
		seen := map[string]bool{}
		once := func(key string) bool {
			if seen[key] {
				return false
			}
			seen[key] = true
			return true
		}
		for _, v := range res.Violations {
			switch {
			case v.Error != nil:
			case v.Enforcement == engine.EnforceDeny && once("d"+v.Policy):
				count(v.Policy).Denied++
			case v.Enforcement == engine.EnforceWarn && once("w"+v.Policy):
				count(v.Policy).Warned++
			case v.Enforcement == engine.EnforceAudit && once("a"+v.Policy):
				count(v.Policy).Audited++
			}
		}
		for _, e := range res.Errors {
			if once("e" + e.Policy) {
				count(e.Policy).Errors++
			}
		}
		for _, w := range res.ownWarnings() {
			if id := warningPolicy(w); id != "" && !seen["e"+id] && once("w"+id) {
				count(id).Warned++
			}
		}
	}
	for _, p := range r.Problems {
		if p.Skipped {
			s.Skipped++
		} else {
			s.InputErrors++
		}
	}
	r.Summary = s
}
