package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/topdown/print"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
)

// print() output reaches Source.Print tagged with the policy evaluated and
// the call's file:line, never the decision; without Print the calls are
// compiled out and the decision is the same.
func TestPrintOutput(t *testing.T) {
	t.Parallel()
	files := mapFS(map[string]string{
		"a.rego": validating("a", `deny contains "a denies" if {
	print("a sees", input.request.object.metadata.name)
	true
}`),
		"b.rego": validating("b", `deny contains "never" if false

warn contains "b warns" if {
	print("b sees", count(input.request.object.spec.containers))
}`),
	})
	var mu sync.Mutex
	var got []string
	src := Source{Policies: files, Print: func(policy, location, message string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s %s %s", policy, location, message))
	}}
	reg, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if !reg.oneByOne {
		t.Error("policies that print are evaluated in a combined query: print output would not name its policy")
	}
	req := podRequest(t, "shop", pod(nil, container("app", "nginx:1", false)))
	dec, err := New(reg, nil).Evaluate(context.Background(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`a a.rego:8 a sees web`, `b b.rego:10 b sees 1`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("printed %q\nwant %q", got, want)
	}
	plain, err := Load(context.Background(), Source{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	plainDec, err := New(plain, nil).Evaluate(context.Background(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec.Violations, plainDec.Violations) || !reflect.DeepEqual(dec.Warnings, plainDec.Warnings) || len(dec.Violations) != 1 {
		t.Errorf("with print: %+v %q\nwithout: %+v %q", dec.Violations, dec.Warnings, plainDec.Violations, plainDec.Warnings)
	}
}

// Print set on policies that never call print() changes nothing: print stays
// compiled out and the policies keep their combined queries.
func TestPrintUnusedKeepsCombinedQueries(t *testing.T) {
	t.Parallel()
	files := mapFS(map[string]string{
		"a.rego": validating("a", `deny contains "a" if false`),
		"b.rego": validating("b", `deny contains "b" if false`),
	})
	reg, err := Load(context.Background(), Source{Policies: files, Print: func(string, string, string) { t.Error("printed") }})
	if err != nil {
		t.Fatal(err)
	}
	if reg.oneByOne {
		t.Error("no print() call, yet policies are evaluated one by one")
	}
}

// print() output never carries a Secret's data, an env value, an
// annotation value or a userInfo.extra value of the request, in plain or
// base64 form, on either evaluation path (decision and --explain); values
// shorter than minRedacted and everything else are printed as they are.
func TestPrintRedactsSensitiveValues(t *testing.T) {
	t.Parallel()
	files := mapFS(map[string]string{
		"p.rego": validating("p", `deny contains "seen" if {
	print("object", input.request.object)
	print("encoded", base64.encode(object.get(input.request.object, ["spec", "containers", 0, "env", 0, "value"], "none")))
	print("extra", input.request.userInfo.extra)
}`),
	})
	var mu sync.Mutex
	var got []string
	reg, err := Load(context.Background(), Source{Policies: files, Print: func(_, _, message string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, message)
	}})
	if err != nil {
		t.Fatal(err)
	}
	const (
		envValue   = "hunter2-env-canary"
		annotation = "s3cr3t-annotation-token"
		secretText = "plain-secret-canary"
		stringData = "string-data-canary"
		extra      = "credential-id-canary"
	)
	withEnv := pod(nil, container("app", "nginx:1", false))
	c := withEnv["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	c["env"] = []any{map[string]any{"name": "PASSWORD", "value": envValue}, map[string]any{"name": "DEBUG", "value": "on"}}
	withEnv["metadata"].(map[string]any)["annotations"] = map[string]any{"example.com/token": annotation}
	podReq := podRequest(t, "shop", withEnv)
	podReq.UserInfo.Extra = map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/credential-id": {extra}}
	secret := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "db", "namespace": "shop"},
		"data": map[string]any{"password": base64.StdEncoding.EncodeToString([]byte(secretText))}, "stringData": map[string]any{"token": stringData}}
	secretReq := request(t, "Secret", "secrets", "", "shop", "db", "CREATE", secret)

	for _, tc := range []struct {
		name string
		req  *admissionv1.AdmissionRequest
		want []string
	}{
		{"pod", podReq, []string{
			`object {"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {"example.com/token": "[REDACTED]"}, "name": "web", "namespace": "default"}, "spec": {"containers": [{"env": [{"name": "PASSWORD", "value": "[REDACTED]"}, {"name": "DEBUG", "value": "on"}], "image": "nginx:1", "name": "app"}]}}`,
			`encoded [REDACTED]`,
			`extra {"authentication.kubernetes.io/credential-id": ["[REDACTED]"]}`,
		}},
		{"secret", secretReq, []string{
			`object {"apiVersion": "v1", "data": {"password": "[REDACTED]"}, "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "stringData": {"token": "[REDACTED]"}}`,
			`encoded bm9uZQ==`,
			`extra <undefined>`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			eng := New(reg, nil)
			if _, err := eng.Evaluate(context.Background(), Validating, tc.req, Options{}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			decision := slices.Clone(got)
			got = nil
			mu.Unlock()
			if !reflect.DeepEqual(decision, tc.want) {
				t.Errorf("printed\n%s\nwant\n%s", strings.Join(decision, "\n"), strings.Join(tc.want, "\n"))
			}
			if _, _, err := eng.Explain(context.Background(), tc.req, "p"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			explained := slices.Clone(got)
			mu.Unlock()
			if !reflect.DeepEqual(explained, tc.want) {
				t.Errorf("explain printed\n%s\nwant\n%s", strings.Join(explained, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// The hook bound when a query is prepared has no request to redact
// against: if an evaluation ever ran without its own, nothing printed
// would get through.
func TestPrintWithoutInputWithheld(t *testing.T) {
	t.Parallel()
	var got []string
	p := &policyPrinter{id: "p", fn: func(_, _, message string) { got = append(got, message) }}
	if err := p.Print(print.Context{}, "anything"); err != nil {
		t.Fatal(err)
	}
	want := []string{"[print output withheld: no request to redact it against]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("printed %q, want %q", got, want)
	}
}

// A policy cannot hand a Secret's content, or a userInfo.extra value, to
// whoever reads its messages (the requester, audit Reports, CI logs):
// messages, details, warnings and --explain's messages carry [REDACTED]
// instead, in plain, quoted and base64 form; values shorter than 4 bytes
// stay.
func TestMessagesRedactSecretValues(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"leak.rego": validating("leak", `deny contains {"msg": sprintf("password is %s (%s)", [base64.decode(input.request.object.data.password), input.request.object.data.password]), "value": [input.request.object.stringData.token]} if {
	input.request.object.kind == "Secret"
}

warn contains sprintf("pin %s, extra %v", [input.request.object.stringData.pin, input.request.userInfo.extra]) if {
	input.request.object.kind == "Secret"
}

warn contains sprintf("stringData %v", [input.request.object.stringData]) if {
	input.request.object.kind == "Secret"
}

warn contains sprintf("quoted twice %v", [[sprintf("%v", [[input.request.object.stringData.config]])]]) if {
	input.request.object.kind == "Secret"
}`)}))
	secret := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "db", "namespace": "shop"},
		"data": map[string]any{"password": base64.StdEncoding.EncodeToString([]byte("correct-horse-battery"))},
		// The password is as short as real ones ("root", "123456"); config
		// is quoted with its newline escaped when printed inside an object.
		"stringData": map[string]any{"token": "tok-0123456789", "pin": "123", "password": "root", "config": "password: apassword\nusername: ausername"}}
	req := request(t, "Secret", "secrets", "", "shop", "db", "CREATE", secret)
	req.UserInfo.Extra = map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/credential-id": {"JTI=4f6c7a2e-credential"}}
	eng := New(reg, nil)
	dec, err := eng.Evaluate(context.Background(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Violation{{Policy: "leak", Enforcement: EnforceDeny, Message: "password is [REDACTED] ([REDACTED])", Details: map[string]any{"value": []any{"[REDACTED]"}}}}
	if !reflect.DeepEqual(dec.Violations, want) {
		t.Errorf("violations %+v\nwant %+v", dec.Violations, want)
	}
	wantWarn := []string{
		`leak: pin 123, extra {"authentication.kubernetes.io/credential-id": ["[REDACTED]"]}`,
		`leak: quoted twice ["[\"[REDACTED]\"]"]`,
		`leak: stringData {"config": "[REDACTED]", "password": "[REDACTED]", "pin": "123", "token": "[REDACTED]"}`,
	}
	if !reflect.DeepEqual(dec.Warnings, wantWarn) {
		t.Errorf("warnings %q\nwant %q", dec.Warnings, wantWarn)
	}
	firings, _, err := eng.Explain(context.Background(), req, "leak")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, f := range firings {
		msgs = append(msgs, f.Message)
	}
	wantMsgs := []string{"password is [REDACTED] ([REDACTED])", wantWarn[0][len("leak: "):], wantWarn[2][len("leak: "):], wantWarn[1][len("leak: "):]}
	if !reflect.DeepEqual(msgs, wantMsgs) {
		t.Errorf("explain messages %q\nwant %q", msgs, wantMsgs)
	}
}
