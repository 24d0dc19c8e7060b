package bundles

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/portcullis/portcullis/policies/engine"
)

// ErrInvalidBundle marks a bundle that OPA read but Portcullis cannot serve:
// a delta bundle, Wasm or plan modules, data outside portcullis.config, two
// modules with one path.
var ErrInvalidBundle = errors.New("invalid bundle")

// configPath is where a bundle carries its Portcullis configuration: data
// under portcullis.config (a portcullis/config/data.json or data.yaml file in
// the bundle), what a --policies directory's config.yaml is.
var configPath = []string{"portcullis", "config"}

// Layer turns a bundle read by OPA into a policy layer named name: its Rego
// modules under their paths in the bundle (so errors name NAME/path:line),
// and data.portcullis.config as the layer's configuration. Policies in
// Portcullis read no other data document, so other data is refused rather
// than silently dropped.
func Layer(name string, b *bundle.Bundle) (engine.Layer, error) {
	if b == nil {
		return engine.Layer{}, fmt.Errorf("%w: no bundle", ErrInvalidBundle)
	}
	if b.Type() == bundle.DeltaBundleType {
		return engine.Layer{}, fmt.Errorf("%w: delta bundles are not supported (serve a snapshot bundle)", ErrInvalidBundle)
	}
	if len(b.WasmModules) > 0 || len(b.Wasm) > 0 || len(b.PlanModules) > 0 {
		return engine.Layer{}, fmt.Errorf("%w: Wasm and plan modules are not supported (build the bundle from Rego: opa build -b DIR)", ErrInvalidBundle)
	}
	files := fstest.MapFS{}
	for _, m := range b.Modules {
		p := strings.TrimPrefix(m.Path, "/")
		if !fs.ValidPath(p) || p == "." {
			return engine.Layer{}, fmt.Errorf("%w: module path %q", ErrInvalidBundle, m.Path)
		}
		if _, dup := files[p]; dup {
			return engine.Layer{}, fmt.Errorf("%w: two modules at %s", ErrInvalidBundle, p)
		}
		files[p] = &fstest.MapFile{Data: m.Raw, Mode: 0o444}
	}
	l := engine.Layer{Name: "bundle " + name, FS: files, Prefix: name}
	cfg, rest, err := splitData(b.Data)
	if err != nil {
		return engine.Layer{}, err
	}
	if len(rest) > 0 {
		return engine.Layer{}, fmt.Errorf("%w: data outside portcullis.config is not read by any policy: %s", ErrInvalidBundle, strings.Join(rest, ", "))
	}
	if cfg != nil {
		doc, err := json.Marshal(cfg)
		if err != nil {
			return engine.Layer{}, fmt.Errorf("%w: portcullis.config: %w", ErrInvalidBundle, err)
		}
		l.Config = doc
	}
	return l, nil
}

// splitData returns the data at configPath and the dotted paths of any other
// data leaf (empty objects, which OPA creates for the manifest's roots, are
// not data).
func splitData(data map[string]any) (cfg any, rest []string, err error) {
	var walk func(prefix []string, v any)
	walk = func(prefix []string, v any) {
		if len(prefix) == len(configPath) && prefix[0] == configPath[0] && prefix[1] == configPath[1] {
			cfg = v
			return
		}
		obj, ok := v.(map[string]any)
		if !ok {
			rest = append(rest, strings.Join(prefix, "."))
			return
		}
		for k, child := range obj {
			walk(append(append([]string(nil), prefix...), k), child)
		}
	}
	for k, v := range data {
		walk([]string{k}, v)
	}
	if cfg != nil {
		if _, ok := cfg.(map[string]any); !ok {
			return nil, nil, fmt.Errorf("%w: portcullis.config must be an object", ErrInvalidBundle)
		}
	}
	sort.Strings(rest)
	return cfg, rest, nil
}
