package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	admissionv1 "k8s.io/api/admission/v1"
)

// The bodies are AdmissionReviews of the stated sizes; every request has its
// own UID; unique mode changes the object, cached mode does not.
func TestBodies(t *testing.T) {
	bs, err := bodies()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string][2]int{"typical pod": {2 << 10, 5 << 10}, "large pod": {45 << 10, 55 << 10}, "deployment": {4 << 10, 8 << 10}}
	for _, b := range bs {
		want, ok := sizes[b.name]
		if !ok {
			t.Fatalf("unexpected body %q", b.name)
		}
		decode := func(raw []byte) *admissionv1.AdmissionRequest {
			var r admissionv1.AdmissionReview
			if err := json.Unmarshal(raw, &r); err != nil || r.Request == nil {
				t.Fatalf("%s: not an AdmissionReview: %v", b.name, err)
			}
			return r.Request
		}
		u1, u2 := decode(b.render(true)), decode(b.render(true))
		c1, c2 := decode(b.render(false)), decode(b.render(false))
		if n := len(b.render(true)); n < want[0] || n > want[1] {
			t.Errorf("%s: %d bytes, want %d-%d", b.name, n, want[0], want[1])
		}
		if u1.UID == u2.UID || c1.UID == c2.UID {
			t.Errorf("%s: UIDs repeat", b.name)
		}
		if bytes.Equal(u1.Object.Raw, u2.Object.Raw) {
			t.Errorf("%s: unique mode repeats the object", b.name)
		}
		if !bytes.Equal(c1.Object.Raw, c2.Object.Raw) {
			t.Errorf("%s: cached mode changes the object", b.name)
		}
	}
}

// The stock-OPA bundle's system.main answers an AdmissionReview with the
// same verdict as Portcullis for an admitted and a refused pod.
func TestOPABundle(t *testing.T) {
	dir := t.TempDir()
	if err := writeOPABundle(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	var opts []func(*rego.Rego)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".rego" {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		opts = append(opts, rego.Module(path, string(src)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	bs, err := bodies()
	if err != nil {
		t.Fatal(err)
	}
	admitted := bs[0].render(true)
	refused := bytes.Replace(admitted, []byte(`registry.example.com/team-a/api:1.4.2`), []byte(`nginx:latest`), 1)
	for name, tc := range map[string]struct {
		body    []byte
		allowed bool
	}{"admitted": {admitted, true}, "latest tag": {refused, false}} {
		input, err := ast.ValueFromReader(bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		r := rego.New(append(opts, rego.Query("data.system.main"), rego.Store(inmemStore(doc)), rego.ParsedInput(input))...)
		rs, err := r.Eval(context.Background())
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: %v %v", name, rs, err)
		}
		resp := rs[0].Expressions[0].Value.(map[string]any)["response"].(map[string]any)
		if resp["allowed"] != tc.allowed {
			t.Errorf("%s: response %v", name, resp)
		}
	}
}

func inmemStore(doc map[string]any) storage.Store { return inmem.NewFromObject(doc) }
