package bundles

import (
	"bytes"
	"context"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// TestBuiltinBundle: the built-in policies staged as `make bundle` stages
// them (policies/*/*.rego without tests, config.yaml as
// portcullis/config/data.yaml) and built by OPA's compile package, the code
// of `opa build -b`, load as a layer on their own into the same policies and
// the same configuration as the embedded set.
func TestBuiltinBundle(t *testing.T) {
	stage := fstest.MapFS{}
	rego, err := fs.Glob(policies.FS, "*/*.rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range rego {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		b, err := policies.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		stage[name] = &fstest.MapFile{Data: b}
	}
	cfg, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	stage["portcullis/config/data.yaml"] = &fstest.MapFile{Data: cfg}
	var tarball bytes.Buffer
	if err := compile.New().WithFS(stage).WithPaths(".").WithAsBundle(true).WithRevision("v-test").WithOutput(&tarball).Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.NewReader(&tarball).Read()
	if err != nil {
		t.Fatal(err)
	}
	l, err := Layer("builtin", &b)
	if err != nil {
		t.Fatal(err)
	}
	fromBundle, err := engine.Load(context.Background(), engine.Source{Layers: []engine.Layer{l}})
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := engine.Load(context.Background(), engine.Source{Layers: []engine.Layer{{Name: "built-in", FS: policies.FS, Config: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(r *engine.Registry) (out []string) {
		for _, p := range r.Policies() {
			out = append(out, p.ID)
		}
		return out
	}
	if got, want := ids(fromBundle), ids(embedded); !reflect.DeepEqual(got, want) {
		t.Errorf("policies from the bundle %v, embedded %v", got, want)
	}
	if !reflect.DeepEqual(fromBundle.Config(), embedded.Config()) {
		t.Errorf("configuration differs:\nbundle   %v\nembedded %v", fromBundle.Config(), embedded.Config())
	}
	if got, want := fromBundle.Policy("pod_security").File, "builtin/pod_security/pod_security.rego"; got != want {
		t.Errorf("pod_security file = %q, want %q", got, want)
	}
}
