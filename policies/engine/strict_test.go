package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// canary is an input value that must never appear in a message, a
// warning, an error field or the decision's JSON.
const canary = "CANARY-7f3e-secret-value"

// A built-in error anywhere in a policy is an evaluation error of that
// policy: its failure mode applies, and the decision names OPA's code, the
// location and a message without the operand (the input value).
func TestBuiltinErrorsAreEvaluationErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body     string
		code     string
		row      int
		message  string
		extraCfg string
		allowed  bool
		warnings []string
	}{
		"to_number of a string in deny": {
			body:    "deny contains {\"msg\": \"too many\"} if {\n\tto_number(input.request.object.metadata.name) > 3\n}",
			code:    "eval_builtin_error",
			row:     8,
			message: `to_number: strconv.ParseFloat: parsing "…": invalid syntax`,
		},
		"division by zero in deny": {
			body:    "deny contains {\"msg\": \"ratio\"} if {\n\tn := count(object.get(input.request.object.metadata, \"labels\", {}))\n\t1 / n > 0\n}",
			code:    "eval_builtin_error",
			row:     9,
			message: "div: divide by zero",
		},
		"builtin error in a helper rule": {
			body:    "big if to_number(input.request.object.metadata.name) > 3\n\ndeny contains {\"msg\": \"big\"} if big",
			code:    "eval_builtin_error",
			row:     7,
			message: `to_number: strconv.ParseFloat: parsing "…": invalid syntax`,
		},
		"json.unmarshal of input": {
			body:    "deny contains {\"msg\": \"x\"} if {\n\tjson.unmarshal(input.request.object.metadata.name).x\n}",
			code:    "eval_builtin_error",
			row:     8,
			message: `json.unmarshal: invalid character '…' looking for beginning of value`,
		},
		"regex from input": {
			body:    "deny contains {\"msg\": \"x\"} if {\n\tregex.match(concat(\"\", [\"(\", input.request.object.metadata.name]), \"a\")\n}",
			code:    "eval_builtin_error",
			row:     8,
			message: "regex.match: error parsing regexp: missing closing ): `…`",
		},
		"warn policy that fails admits with a warning by default": {
			body:     "deny contains {\"msg\": \"too many\"} if {\n\tto_number(input.request.object.metadata.name) > 3\n}",
			extraCfg: "policies:\n  bad:\n    enforcement: warn\n",
			code:     "eval_builtin_error",
			row:      8,
			message:  `to_number: strconv.ParseFloat: parsing "…": invalid syntax`,
			allowed:  true,
			warnings: []string{`bad: policy could not be evaluated: eval_builtin_error at bad/bad.rego:8: to_number: strconv.ParseFloat: parsing "…": invalid syntax; admitted by its failure mode (allow)`},
		},
		"audit policy that fails denies when its failure mode says so": {
			body:     "deny contains {\"msg\": \"too many\"} if {\n\tto_number(input.request.object.metadata.name) > 3\n}",
			extraCfg: "policies:\n  bad:\n    enforcement: audit\n    failure_mode: deny\n",
			code:     "eval_builtin_error",
			row:      8,
			message:  `to_number: strconv.ParseFloat: parsing "…": invalid syntax`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// A second, healthy policy makes the two evaluate together in
			// one query first (policySet), as in the server.
			fsys := mapFS(map[string]string{
				"bad/bad.rego": validating("bad", tc.body),
				"ok/ok.rego":   validating("ok", `deny contains {"msg": "never"} if false`),
			})
			var cfgs []string
			if tc.extraCfg != "" {
				cfgs = append(cfgs, tc.extraCfg)
			}
			for _, oneByOne := range []bool{false, true} {
				reg := mustLoad(t, fsys, cfgs...)
				reg.oneByOne = oneByOne
				rec := &recorder{}
				p := pod(nil)
				p["metadata"].(map[string]any)["name"] = canary
				dec, err := New(reg, rec).Evaluate(t.Context(), Validating, podRequest(t, "default", p), Options{})
				if err != nil {
					t.Fatal(err)
				}
				if dec.Allowed != tc.allowed {
					t.Errorf("oneByOne=%v: Allowed = %v, want %v", oneByOne, dec.Allowed, tc.allowed)
				}
				if len(dec.Errors) != 1 {
					t.Fatalf("oneByOne=%v: errors = %+v, want one", oneByOne, dec.Errors)
				}
				got := dec.Errors[0]
				got.Err = nil
				want := PolicyError{Policy: "bad", FailureMode: reg.Policy("bad").FailureMode, Code: tc.code, Message: tc.message, File: "bad/bad.rego", Row: tc.row}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("oneByOne=%v: error = %+v\nwant %+v", oneByOne, got, want)
				}
				var wantViolations []Violation
				if !tc.allowed {
					wantViolations = []Violation{{Policy: "bad", Enforcement: EnforceDeny, Message: "policy could not be evaluated: " + tc.code + " at bad/bad.rego:" + itoa(tc.row) + ": " + tc.message + "; denied by its failure mode (deny)"}}
				}
				if !reflect.DeepEqual(dec.Violations, wantViolations) {
					t.Errorf("oneByOne=%v: violations = %+v\nwant %+v", oneByOne, dec.Violations, wantViolations)
				}
				if !reflect.DeepEqual(dec.Warnings, tc.warnings) {
					t.Errorf("oneByOne=%v: warnings = %q\nwant %q", oneByOne, dec.Warnings, tc.warnings)
				}
				if want := []string{"validating/bad/error", "validating/ok/allowed"}; !reflect.DeepEqual(rec.seen, want) {
					t.Errorf("oneByOne=%v: observed %q, want %q", oneByOne, rec.seen, want)
				}
				b, err := json.Marshal(dec)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), canary[:10]) || strings.Contains(dec.Message(), canary[:10]) {
					t.Errorf("oneByOne=%v: the input value leaked: %s", oneByOne, b)
				}
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestErrorMessageStripsOperands(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`to_number: strconv.ParseFloat: parsing "web": invalid syntax`: `to_number: strconv.ParseFloat: parsing "…": invalid syntax`,
		`x: parsing "a\"b": bad`:                                                                             `x: parsing "…": bad`,
		"regex.match: error parsing regexp: `(abc`":                                                          "regex.match: error parsing regexp: `…`",
		"base64.decode: illegal base64 data at input byte 3":                                                 "base64.decode: illegal base64 data at input byte 3",
		"units.parse: 123456789012345678901234567890 too big":                                                "units.parse: … too big",
		"rule data.portcullis.pod_security.containers_by_name produced conflicting values:\n  1 at a.rego:3": "rule data.portcullis.pod_security.containers_by_name produced conflicting values",
		strings.Repeat("a ", 200):                                                                            strings.Repeat("a ", 100) + "…",
	} {
		if got := errorMessage(in); got != want {
			t.Errorf("errorMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
