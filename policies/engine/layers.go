package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Layer is one source of policies. A Source stacks its layers in order (the
// built-in policies first, then each --policies directory, then bundles):
//
//   - a policy (package portcullis.<id>, with its other files and its tests,
//     package portcullis.<id>_test) defined in a later layer replaces every
//     module of that ID in the earlier layers;
//   - any other module (lib/ helpers) whose path inside its layer equals an
//     earlier layer's replaces that module, so a copy of the whole built-in
//     tree given as a layer is the built-in set again, not a conflict;
//   - everything else adds up: lib/ packages are shared by all layers.
//
// Each replacement is reported in Registry.Notices.
type Layer struct {
	// Name says where the layer comes from in notices ("built-in", a
	// directory, a bundle).
	Name string
	// FS holds the layer's Rego modules (walked recursively; hidden and
	// testdata directories skipped).
	FS fs.FS
	// Prefix is prepended to the file names of the layer's modules, so
	// errors, explanations and coverage name the path the user gave (a
	// directory); "" keeps names relative to FS.
	Prefix string
	// Config, when not nil, is the layer's own configuration (its
	// config.yaml), merged over the documents of the layers before it.
	Config []byte
}

// ConfigFile is one named configuration document (a --config file).
type ConfigFile struct {
	// Name is how load errors name the document (its path).
	Name string
	// Data is the YAML or JSON document.
	Data []byte
}

// layers returns the source's layers in stacking order: the legacy
// Policies file system first, then Layers.
func (s Source) layers() []Layer {
	var out []Layer
	if s.Policies != nil {
		out = append(out, Layer{Name: "policies", FS: s.Policies})
	}
	return append(out, s.Layers...)
}

// configFiles returns every configuration document in merge order: the
// unnamed Configs, then each layer's Config, then ConfigFiles.
func (s Source) configFiles() []ConfigFile {
	var out []ConfigFile
	for i, c := range s.Configs {
		out = append(out, ConfigFile{Name: fmt.Sprintf("config document %d", i), Data: c})
	}
	for _, l := range s.layers() {
		if l.Config != nil {
			out = append(out, ConfigFile{Name: layerFile(l, "config.yaml"), Data: l.Config})
		}
	}
	return append(out, s.ConfigFiles...)
}

func layerFile(l Layer, name string) string {
	if l.Prefix == "" {
		if l.Name != "" && l.Name != "policies" {
			return l.Name + " " + name
		}
		return name
	}
	return path.Join(l.Prefix, name)
}

// Modules returns the Rego modules of src after stacking its layers, as Load
// compiles them; tests(i) says whether the *_test.rego modules of layer i
// (in Source order: Policies first, then Layers) are included. `portcullis
// test` uses it to compile a layer's tests against exactly what the server
// would load. The notices say which modules replaced which.
func Modules(src Source, tests func(layer int) bool) (map[string]*ast.Module, []string, error) {
	layers := src.layers()
	if len(layers) == 0 {
		return nil, nil, fmt.Errorf("no policy source")
	}
	type owned struct {
		layer int
		rel   string
		root  string // policy ID the module belongs to, "" for lib and others
	}
	modules := map[string]*ast.Module{}
	owners := map[string]owned{}
	idLayer := map[string]int{} // policy ID → the layer that defines it
	var notices []string
	for i, l := range layers {
		withTests := tests != nil && tests(i)
		mods, err := parseModulesPrefixed(l.FS, withTests, l.Prefix)
		if err != nil {
			return nil, nil, err // file names already say where
		}
		names := make([]string, 0, len(mods))
		for name := range mods {
			names = append(names, name)
		}
		sort.Strings(names)
		roots := map[string]bool{}
		for _, name := range names {
			if r := policyRoot(mods[name].Package.Path); r != "" {
				roots[r] = true
			}
		}
		for _, id := range sortedKeys(roots) {
			prev, ok := idLayer[id]
			if ok && prev != i {
				for name, o := range owners {
					if o.root == id && o.layer < i {
						delete(modules, name)
						delete(owners, name)
					}
				}
				notices = append(notices, fmt.Sprintf("policy %q from %s replaces the one from %s", id, l.Name, layers[prev].Name))
			}
			idLayer[id] = i
		}
		for _, name := range names {
			m := mods[name]
			rel := strings.TrimPrefix(strings.TrimPrefix(name, l.Prefix), "/")
			root := policyRoot(m.Package.Path)
			if root == "" {
				for other, o := range owners {
					if o.rel == rel && o.layer < i {
						delete(modules, other)
						delete(owners, other)
						notices = append(notices, fmt.Sprintf("%s from %s replaces the one from %s", rel, l.Name, layers[o.layer].Name))
					}
				}
			}
			modules[name] = m
			owners[name] = owned{layer: i, rel: rel, root: root}
		}
	}
	sort.Strings(notices)
	return modules, notices, nil
}

// policyRoot returns the policy ID a package belongs to: <id> for
// portcullis.<id>, its sub-packages and its tests (portcullis.<id>_test);
// "" for lib and anything outside portcullis.
func policyRoot(pkg ast.Ref) string {
	if len(pkg) < 3 || !pkg[0].Equal(ast.DefaultRootDocument) {
		return ""
	}
	root, ok1 := pkg[1].Value.(ast.String)
	id, ok2 := pkg[2].Value.(ast.String)
	if !ok1 || !ok2 || string(root) != rootPackage {
		return ""
	}
	s := strings.TrimSuffix(string(id), "_test")
	if s == libPackage || s == configKey {
		return ""
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hashing returns src with every layer read through a hashingFS, and those,
// in layer order, for the policy set hash.
func (s Source) hashing() (Source, []*hashingFS) {
	var hashers []*hashingFS
	if s.Policies != nil {
		h := &hashingFS{FS: s.Policies}
		s.Policies = h
		hashers = append(hashers, h)
	}
	layers := make([]Layer, len(s.Layers))
	for i, l := range s.Layers {
		h := &hashingFS{FS: l.FS}
		l.FS = h
		layers[i] = l
		hashers = append(hashers, h)
	}
	s.Layers = layers
	return s, hashers
}

// setDigest is the policy set hash over every layer's files and the merged
// configuration; one layer hashes as its hashingFS alone.
func setDigest(hashers []*hashingFS, cfg map[string]any) (string, error) {
	if len(hashers) == 1 {
		return hashers[0].digest(cfg)
	}
	d := sha256.New()
	for _, h := range hashers {
		sum, err := h.digest(cfg)
		if err != nil {
			return "", err
		}
		writeField(d, []byte(sum))
	}
	return hex.EncodeToString(d.Sum(nil)), nil
}
