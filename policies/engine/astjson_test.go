package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// jsonSeeds are documents whose decoding must equal ast.ValueFromReader's.
var jsonSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `12345678901234567890123`,
	`1.5`, `-0.25e-3`, `1E10`, `2e+2`, `1e400`, `""`, `"a"`, `" spaced "`,
	`"esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00"`, `"lone \ud800 surrogate"`,
	"\"utf8 é ✓ 😀\"", "\"bad \xff utf8\"", "\"\xc3\"",
	`{"a":1,"b":[1,2,{"c":null}],"d":{"e":"f"}}`,
	`{"dup":1,"dup":2}`, `{"dup":{"x":1},"other":true,"dup":[3]}`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"a":18}`,
	` { "ws" : [ 1 , 2 ] } `, "\n\t[\r\n]\n",
	`[[[[[[[[[[]]]]]]]]]]`, `{"":""}`, `["", {}, [], 0, false]`,
}

func fromReader(t testing.TB, doc []byte) ast.Value {
	t.Helper()
	v, err := ast.ValueFromReader(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("ValueFromReader(%q): %v", doc, err)
	}
	return v
}

func TestParseJSONValueMatchesValueFromReader(t *testing.T) {
	docs := append([]string(nil), jsonSeeds...)
	for _, name := range benchBodies {
		b, err := os.ReadFile(filepath.Join("..", "..", "webhooks", "testdata", "bench", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	for _, doc := range docs {
		if !json.Valid([]byte(doc)) {
			t.Fatalf("seed %q is not valid JSON", doc)
		}
		want, err := ast.ValueFromReader(strings.NewReader(doc))
		got, gerr := parseJSONValue([]byte(doc))
		if err != nil {
			// ValueFromReader refuses some valid JSON (numbers out of range):
			// so must we.
			if gerr == nil {
				t.Errorf("parseJSONValue(%.60q) = %v; ValueFromReader failed with %v", doc, got, err)
			}
			continue
		}
		if gerr != nil {
			t.Errorf("parseJSONValue(%.60q): %v", doc, gerr)
			continue
		}
		if got.Compare(want) != 0 {
			t.Errorf("parseJSONValue(%.60q) = %v, want %v", doc, got, want)
		}
	}
}

func TestParseJSONValueRejects(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{``, "invalid JSON at byte 0: unexpected end of input"},
		{`   `, "invalid JSON at byte 3: unexpected end of input"},
		{`{`, "invalid JSON at byte 1: expected a string key in object"},
		{`{"a"}`, "invalid JSON at byte 4: expected : after object key"},
		{`{"a":1,}`, "invalid JSON at byte 7: expected a string key in object"},
		{`{"a":1 "b":2}`, "invalid JSON at byte 7: expected , or } in object"},
		{`[1,]`, "invalid JSON at byte 3: unexpected character ']'"},
		{`[1 2]`, "invalid JSON at byte 3: expected , or ] in array"},
		{`[1`, "invalid JSON at byte 2: unterminated array"},
		{`{"a":1`, "invalid JSON at byte 6: unterminated object"},
		{`"abc`, "invalid JSON at byte 4: unterminated string"},
		{"\"a\nb\"", "invalid JSON at byte 2: control character in string"},
		{`"\x"`, "invalid JSON at byte 0: invalid string"},
		{`tru`, "invalid JSON at byte 0: invalid literal"},
		{`nul`, "invalid JSON at byte 0: invalid literal"},
		{`01`, "invalid JSON at byte 1: data after the value"},
		{`-`, "invalid JSON at byte 1: invalid number"},
		{`1.`, "invalid JSON at byte 2: invalid number"},
		{`1e`, "invalid JSON at byte 2: invalid number"},
		{`+1`, "invalid JSON at byte 0: unexpected character '+'"},
		{`{} {}`, "invalid JSON at byte 3: data after the value"},
		{`1e999999999999`, "invalid JSON at byte 0: number out of range"},
		{`"secret-value`, "invalid JSON at byte 13: unterminated string"},
	} {
		_, err := parseJSONValue([]byte(tc.doc))
		if err == nil || err.Error() != tc.want {
			t.Errorf("parseJSONValue(%q) error = %v, want %q", tc.doc, err, tc.want)
		}
		if err != nil && !errors.Is(err, errJSON) {
			t.Errorf("parseJSONValue(%q) error %v is not errJSON", tc.doc, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret-value") {
			t.Errorf("error quotes the input: %v", err)
		}
	}
}

func TestParseJSONValueLimits(t *testing.T) {
	ok := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	if _, err := parseJSONValue([]byte(ok)); err != nil {
		t.Errorf("depth %d: %v", maxJSONDepth, err)
	}
	deep := "[" + ok + "]"
	if _, err := parseJSONValue([]byte(deep)); err == nil || !strings.Contains(err.Error(), "nesting deeper than 10000") {
		t.Errorf("depth %d: error = %v", maxJSONDepth+1, err)
	}
	// encoding/json refuses the same depth.
	var x any
	if err := json.Unmarshal([]byte(deep), &x); err == nil {
		t.Errorf("encoding/json accepts depth %d; the limits should agree", maxJSONDepth+1)
	}
	big := make([]byte, maxJSONBytes+1)
	if _, err := parseJSONValue(big); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized document: error = %v", err)
	}
}

func FuzzParseJSONValue(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"a":[1,2,{"b":"\u0041"}],"c":-1.5e3}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := parseJSONValue(doc)
		if !json.Valid(doc) {
			if err == nil {
				t.Fatalf("accepted invalid JSON %q as %v", doc, got)
			}
			return
		}
		want, werr := ast.ValueFromReader(bytes.NewReader(doc))
		if werr != nil {
			if err == nil {
				t.Fatalf("accepted %q (%v) that ValueFromReader refuses: %v", doc, got, werr)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused valid JSON %q: %v", doc, err)
		}
		if got.Compare(want) != 0 {
			t.Fatalf("parseJSONValue(%q) = %v, want %v", doc, got, want)
		}
	})
}

// reviewEnvelope is how the input was built before toInput decoded the raw
// members directly: the whole review through encoding/json, then
// ast.ValueFromReader. toInput must build the same value.
type reviewEnvelope struct {
	APIVersion string                        `json:"apiVersion"`
	Kind       string                        `json:"kind"`
	Request    *admissionv1.AdmissionRequest `json:"request"`
}

func referenceInput(t *testing.T, req *admissionv1.AdmissionRequest) ast.Value {
	t.Helper()
	b, err := json.Marshal(reviewEnvelope{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Request: req})
	if err != nil {
		t.Fatal(err)
	}
	return fromReader(t, b)
}

func TestToInputMatchesReference(t *testing.T) {
	dry := true
	gvk := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	gvr := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	reqs := map[string]*admissionv1.AdmissionRequest{
		"minimal": {UID: "u1"},
		"full": {
			UID: "u2", Kind: gvk, Resource: gvr, SubResource: "ephemeralcontainers",
			RequestKind: &gvk, RequestResource: &gvr, RequestSubResource: "ephemeralcontainers",
			Name: "p", Namespace: "ns", Operation: admissionv1.Update,
			UserInfo: authnv1.UserInfo{Username: "alice", UID: "a-1", Groups: []string{"g1", "g2"},
				Extra: map[string]authnv1.ExtraValue{"scopes": {"a", "b"}, "empty": {}}},
			Object:    runtime.RawExtension{Raw: []byte(` {"kind":"Pod", "spec": {"containers": [{"name":"a","image":"x:1"}]}, "n": 1.50} `)},
			OldObject: runtime.RawExtension{Raw: []byte(`{"kind":"Pod","metadata":{"labels":{"a":"b"}}}`)},
			DryRun:    &dry,
			Options:   runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		},
		"delete, no object":  {UID: "u3", Operation: admissionv1.Delete, OldObject: runtime.RawExtension{Raw: []byte(`{"kind":"Pod"}`)}},
		"object as Go value": {UID: "u4", Object: runtime.RawExtension{Object: &metav1.Status{Message: "go object"}}},
	}
	for _, name := range benchBodies {
		req, _ := benchRequest(t, name)
		reqs["bench "+name] = req
	}
	for name, req := range reqs {
		got, err := toInput(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := referenceInput(t, req); got.Compare(want) != 0 {
			t.Errorf("%s: toInput =\n%v\nwant\n%v", name, got, want)
		}
	}
}

func TestToInputBadObject(t *testing.T) {
	req := &admissionv1.AdmissionRequest{UID: "u", Object: runtime.RawExtension{Raw: []byte(`{"env":"s3cret`)}}
	_, err := toInput(req)
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("error = %v, want ErrBadRequest", err)
	}
	if want := "bad admission request: convert request.object: invalid JSON at byte 14: unterminated string"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestWithObject(t *testing.T) {
	req := &admissionv1.AdmissionRequest{UID: "u", Namespace: "ns", Object: runtime.RawExtension{Raw: []byte(`{"a":1}`)}}
	in, err := toInput(req)
	if err != nil {
		t.Fatal(err)
	}
	out := withObject(in, ast.MustParseTerm(`{"a":2}`).Value)
	req.Object.Raw = []byte(`{"a":2}`)
	if want := referenceInput(t, req); out.Compare(want) != 0 {
		t.Errorf("withObject = %v, want %v", out, want)
	}
	if in.Compare(out) == 0 {
		t.Error("withObject modified its input")
	}
}

// Object keys are interned in the table every decode shares; values never
// are, so no request's data (an env value, a password) outlives it there.
func TestSharedInternTableHoldsKeysOnly(t *testing.T) {
	const secret = "hunter2-not-kept"
	doc := []byte(`{"env":[{"name":"PASSWORD","value":"` + secret + `"}],"kind":"Pod"}`)
	v1, err := parseJSONValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := parseJSONValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Compare(v2) != 0 {
		t.Fatalf("decodes differ: %v, %v", v1, v2)
	}
	for _, key := range []string{"env", "name", "value", "kind"} {
		if p := sharedStrings.slots[sharedSlot(key)].Load(); p == nil || string((*p).(ast.String)) != key {
			t.Errorf("key %q not interned", key)
		}
	}
	for i := range sharedStrings.slots {
		if p := sharedStrings.slots[i].Load(); p != nil {
			if s := string((*p).(ast.String)); s == secret || s == "PASSWORD" || s == "Pod" {
				t.Errorf("value %q kept in the shared table", s)
			}
		}
	}
}

func sharedSlot(s string) uint64 {
	return maphash.Bytes(sharedStrings.seed, []byte(s)) & (internSlots - 1)
}

// The shared table is used by concurrent decodes (one per request).
func TestSharedInternTableConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				doc := fmt.Appendf(nil, `{"k%d":{"name":"x","k%d":[1,2]}}`, (g*2000+i)%(3*internSlots), i%50)
				if _, err := parseJSONValue(doc); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
