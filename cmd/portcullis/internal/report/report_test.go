package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"gomodules.xyz/jsonpatch/v2"

	"github.com/portcullis/portcullis/policies/engine"
)

// sample is a report with one of each kind of finding.
func sample() *Report {
	item := 1
	r := &Report{
		Results: []Result{
			{Source: "deploy/app.yaml", Index: 0, Line: 3, Kind: "Pod", Namespace: "shop", Name: "web"},
			{Source: "deploy/app.yaml", Index: 1, Line: 20, Kind: "Deployment", Namespace: "shop", Name: "api, v2", Schema: []string{`unknown field "spec.replica"`}},
			{Source: "dir with space/list.json", Index: 0, Item: &item, Line: 9, Kind: "ConfigMap", Namespace: "kube-system", Name: "cfg"},
			{Source: "deploy/app.yaml", Index: 2, Line: 40, Kind: "Pod", Namespace: "shop", Name: "slow"},
		},
		Problems: []Problem{
			{Source: "chart/Chart.yaml", Line: 1, Error: "not a Kubernetes object: no apiVersion or kind", Skipped: true},
			{Source: "bad.yaml", Line: 4, Error: "invalid YAML: yaml: line 4: mapping values are not allowed in this context"},
		},
	}
	r.Results[0].Decision(&engine.Decision{Allowed: false,
		Violations: []engine.Violation{
			{Policy: "labels", Enforcement: engine.EnforceWarn, Message: "missing label app"},
			{Policy: "no_privileged", Enforcement: engine.EnforceDeny, Message: "container \"app\" is privileged\n100% sure: yes"},
			{Policy: "audit_images", Enforcement: engine.EnforceAudit, Message: "image not pinned"},
		},
		Warnings: []string{"labels: missing label app", "other: deprecated field"},
	})
	r.Results[1].Decision(&engine.Decision{Allowed: true})
	r.Results[2].Decision(&engine.Decision{Allowed: true, Exempt: true})
	r.Results[3].Decision(&engine.Decision{Allowed: false,
		Errors:     []engine.PolicyError{{Policy: "runaway", FailureMode: engine.FailDeny, TimedOut: true, Code: engine.CodeTimeout, Message: "the deadline passed during evaluation", File: "runaway/runaway.rego", Row: 7}},
		Violations: []engine.Violation{{Policy: "runaway", Enforcement: engine.EnforceDeny, Message: "policy timed out; denied by its failure mode (deny)"}},
	})
	r.Summarize()
	return r
}

func TestStatusesAndOrder(t *testing.T) {
	r := sample()
	var got []string
	for _, res := range r.Results {
		got = append(got, string(res.Status))
	}
	if want := "denied invalid exempt error"; strings.Join(got, " ") != want {
		t.Errorf("statuses %q, want %q", strings.Join(got, " "), want)
	}
	var order []string
	for _, v := range r.Results[0].Violations {
		order = append(order, string(v.Enforcement))
	}
	if want := "deny warn audit"; strings.Join(order, " ") != want {
		t.Errorf("violations ordered %q, want %q (denial before warnings)", strings.Join(order, " "), want)
	}
	if r.Results[3].Violations[0].Error == nil || r.Results[3].Violations[0].Error.Location != "runaway/runaway.rego:7" {
		t.Errorf("failure-mode violation carries no error: %+v", r.Results[3].Violations[0])
	}
	s := r.Summary
	if s.Objects != 4 || s.Denied != 1 || s.Warned != 1 || s.Exempt != 1 || s.Invalid != 1 || s.Errors != 1 || s.Admitted != 0 || s.InputErrors != 1 || s.Skipped != 1 {
		t.Errorf("summary %+v", s)
	}
	if c := s.Policies["runaway"]; c == nil || c.Errors != 1 || c.Denied != 0 {
		t.Errorf("runaway counted %+v: an error, not a denial", c)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sample(), Options{Format: FormatText}); err != nil {
		t.Fatal(err)
	}
	want := `FAIL Pod shop/web (deploy/app.yaml:3 #0)
  deny [no_privileged] container "app" is privileged
100% sure: yes
  warn [labels] missing label app
  audit [audit_images] image not pinned
  warning: other: deprecated field
INVALID Deployment shop/api, v2 (deploy/app.yaml:20 #1)
  schema: unknown field "spec.replica"
EXEMPT (namespace kube-system) ConfigMap kube-system/cfg (dir with space/list.json:9 #0.items[1])
ERROR Pod shop/slow (deploy/app.yaml:40 #2)
  error [runaway] timeout: the deadline passed during evaluation (runaway/runaway.rego:7); failure mode deny
SKIP chart/Chart.yaml:1: not a Kubernetes object: no apiVersion or kind
ERROR bad.yaml:4: invalid YAML: yaml: line 4: mapping values are not allowed in this context
4 objects: 0 admitted, 1 denied, 1 warned, 1 exempt, 1 invalid, 1 error; 1 input error, 1 skipped
  audit_images: 1 audited
  labels: 1 warned
  no_privileged: 1 denied
  other: 1 warned
  runaway: 1 error
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteGitHubEscapes(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sample(), Options{Format: FormatGitHub}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	want := []string{
		`::error file=deploy/app.yaml,line=3,title=portcullis no_privileged::Pod shop/web: container "app" is privileged%0A100%25 sure: yes`,
		`::warning file=deploy/app.yaml,line=3,title=portcullis labels::Pod shop/web: missing label app`,
		`::notice file=deploy/app.yaml,line=3,title=portcullis audit_images::Pod shop/web: image not pinned`,
		`::warning file=deploy/app.yaml,line=3,title=portcullis other::Pod shop/web: other: deprecated field`,
		`::error file=deploy/app.yaml,line=20,title=portcullis schema::Deployment shop/api, v2: unknown field "spec.replica"`,
		`::error file=deploy/app.yaml,line=40,title=portcullis runaway::Pod shop/slow: timeout: the deadline passed during evaluation (runaway/runaway.rego:7)`,
		`::error file=bad.yaml,line=4,title=portcullis input::invalid YAML: yaml: line 4: mapping values are not allowed in this context`,
	}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], w)
		}
	}
	if got := escapeProperty("a:b,c%d\ne"); got != "a%3Ab%2Cc%25d%0Ae" {
		t.Errorf("escapeProperty = %q", got)
	}
}

func TestWriteJSONErrorsOnViolation(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sample(), Options{Format: FormatJSON}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Results []struct {
			Violations []struct {
				Error *EvalError `json:"error"`
			} `json:"violations"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	e := got.Results[3].Violations[0].Error
	want := EvalError{Policy: "runaway", FailureMode: "deny", Code: "timeout", Message: "the deadline passed during evaluation", Location: "runaway/runaway.rego:7"}
	if e == nil || *e != want {
		t.Errorf("error = %+v, want %+v", e, want)
	}
}

// TestSARIFMatchesSchema validates the SARIF output against the SARIF
// 2.1.0 JSON schema (testdata), with OPA's json.match_schema.
func TestSARIFMatchesSchema(t *testing.T) {
	schema, err := os.ReadFile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, failOnWarn := range []bool{false, true} {
		var b bytes.Buffer
		if err := Write(&b, sample(), Options{Format: FormatSARIF, FailOnWarn: failOnWarn}); err != nil {
			t.Fatal(err)
		}
		checkSARIF(t, schema, b.Bytes())
		var log struct {
			Runs []struct {
				Results []struct {
					RuleID string `json:"ruleId"`
					Level  string `json:"level"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(b.Bytes(), &log); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range log.Runs[0].Results {
			got = append(got, r.RuleID+"="+r.Level)
		}
		want := "no_privileged=error labels=warning audit_images=note other=warning schema=error runaway=error input=error"
		if failOnWarn {
			want = "no_privileged=error labels=error audit_images=note other=error schema=error runaway=error input=error"
		}
		if strings.Join(got, " ") != want {
			t.Errorf("results %q, want %q", strings.Join(got, " "), want)
		}
	}
}

// checkSARIF fails t when doc does not match the SARIF schema.
func checkSARIF(t *testing.T, schema, doc []byte) {
	t.Helper()
	var s, d any
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(rego.Query("x := json.match_schema(input.doc, input.schema)"),
		rego.Input(map[string]any{"doc": d, "schema": s})).Eval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := rs[0].Bindings["x"].([]any)
	if res[0] != true {
		t.Fatalf("SARIF output does not match the schema: %v\n%s", res[1], doc)
	}
}

func TestSARIFSchemaCheckRejects(t *testing.T) {
	// The check is real: a log without runs' tool driver name fails it.
	schema, err := os.ReadFile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	var s, d any
	_ = json.Unmarshal(schema, &s)
	_ = json.Unmarshal([]byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`), &d)
	rs, err := rego.New(rego.Query("x := json.match_schema(input.doc, input.schema)"),
		rego.Input(map[string]any{"doc": d, "schema": s})).Eval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Bindings["x"].([]any)[0] != false {
		t.Fatal("a driver without a name passed the schema")
	}
}

func TestYAMLKeepsWhatTheUserWrote(t *testing.T) {
	text := "# the app\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web # keep me\n  labels: {b: x, a: y}\nspec:\n  containers:\n    - name: app\n      image: nginx\n"
	tests := []struct {
		name  string
		patch []jsonpatch.Operation
		want  string
	}{
		{"unchanged: byte for byte", nil, text},
		{"patched: comments and order kept, keys added last", []jsonpatch.Operation{
			{Operation: "add", Path: "/metadata/labels/team", Value: "unassigned"},
			{Operation: "add", Path: "/spec/containers/0/securityContext", Value: map[string]any{"runAsNonRoot": true}},
			{Operation: "replace", Path: "/spec/containers/0/image", Value: "nginx:1.27"},
		}, "# the app\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web # keep me\n  labels: {b: x, a: y, team: unassigned}\nspec:\n  containers:\n    - name: app\n      image: nginx:1.27\n      securityContext:\n        runAsNonRoot: true\n"},
		{"removal and sequence insert", []jsonpatch.Operation{
			{Operation: "remove", Path: "/metadata/labels/b"},
			{Operation: "add", Path: "/spec/containers/0", Value: map[string]any{"name": "init", "image": "busybox:1"}},
		}, "# the app\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web # keep me\n  labels: {a: y}\nspec:\n  containers:\n    - image: busybox:1\n      name: init\n    - name: app\n      image: nginx\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Result{Patch: tt.patch, Original: &Original{Text: []byte(text), Item: -1, JSON: []byte(`{}`)}}
			got, err := mutatedYAML(res)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestViolationFieldLines(t *testing.T) {
	text := "kind: List\napiVersion: v1\nitems:\n  - kind: Pod\n    metadata:\n      annotations:\n        a.b/c: x\n    spec:\n      containers:\n        - name: a\n          image: one\n        - name: b\n          image: two\n"
	res := Result{Original: &Original{Text: []byte(text), Item: 0, TextLine: 10}}
	res.Decision(&engine.Decision{Allowed: false, Violations: []engine.Violation{
		{Policy: "p", Enforcement: engine.EnforceDeny, Message: "m1", Details: map[string]any{"field": "spec.containers[1].image"}},
		{Policy: "p", Enforcement: engine.EnforceDeny, Message: "m2", Details: map[string]any{"field": `metadata.annotations["a.b/c"]`}},
		{Policy: "p", Enforcement: engine.EnforceDeny, Message: "m3", Details: map[string]any{"field": "spec.securityContext"}},
		{Policy: "p", Enforcement: engine.EnforceDeny, Message: "m4", Details: map[string]any{"field": "spec.containers[x"}},
	}})
	var got []int
	for _, v := range res.Violations {
		got = append(got, v.Line)
	}
	// Source lines: the text starts at line 10; absent or malformed fields get none.
	if want := []int{22, 16, 0, 0}; !equalInts(got, want) {
		t.Errorf("lines %v, want %v", got, want)
	}
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"spec.containers[0].env[2].value", "spec containers 0 env 2 value", true},
		{`metadata.annotations["x.io/y"].z`, "metadata annotations x.io/y z", true},
		{`a["unterminated`, "", false},
		{"a[1x]", "", false},
	} {
		got, ok := parseFieldPath(tt.in)
		if ok != tt.ok || strings.Join(got, " ") != tt.want {
			t.Errorf("parseFieldPath(%q) = %q, %v", tt.in, got, ok)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
