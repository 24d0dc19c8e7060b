package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing/fstest"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// PolicySourceOptions say where policies and configuration come from; serve,
// validate and test share them, and Load, so all three load the same set the
// same way.
type PolicySourceOptions struct {
	// NoBuiltin leaves the built-in policies out (--builtin=false). The
	// zero value loads them.
	NoBuiltin bool
	// PoliciesDirs are stacked over the built-in policies in order (see
	// engine.Layer): they add policies, and a policy whose ID is already
	// loaded replaces it.
	PoliciesDirs []string
	// ConfigFile is merged over the defaults when set.
	ConfigFile string
	// Print, set by the command (not a flag), receives the policies'
	// print() output (engine.Source.Print); nil compiles print out.
	Print engine.PrintFunc
	// Bundles, set by serve (not a flag), returns the OPA bundles' layers
	// now serving, stacked after the --policies directories.
	Bundles func() []engine.Layer
}

// AddFlags registers --builtin, --policies and --config.
func (o *PolicySourceOptions) AddFlags(fs *pflag.FlagSet) {
	fs.Var(&invertedBool{&o.NoBuiltin}, "builtin", "load the built-in policies (--builtin=false: only those of --policies)")
	fs.Lookup("builtin").NoOptDefVal = "true"
	fs.StringArrayVar(&o.PoliciesDirs, "policies", nil, "directory of Rego policies stacked over the built-in ones (repeatable; a policy with a built-in's ID replaces it)")
	fs.StringVar(&o.ConfigFile, "config", "", "YAML configuration merged over the defaults (policies/config.yaml)")
}

// Validate checks the paths exist.
func (o *PolicySourceOptions) Validate() error {
	for _, dir := range o.PoliciesDirs {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("--policies %s: not a directory", dir)
		}
	}
	if o.ConfigFile != "" {
		if _, err := os.Stat(o.ConfigFile); err != nil {
			return fmt.Errorf("--config: %w", err)
		}
	}
	return nil
}

// builtinLayerName names the embedded policies in notices and errors.
const builtinLayerName = "built-in policies"

// Source reads the configuration files now and returns the engine source:
// the built-in layer (the embedded policies and config.yaml), one layer per
// --policies directory (its config.yaml, if any, merged after the ones
// before), then --config. Without the built-in policies their settings are
// dropped too; the engine-wide defaults (exempt_namespaces) stay. The
// serving bundles' layers (Bundles) come after the directories.
func (o *PolicySourceOptions) Source() (engine.Source, error) {
	var bundles []engine.Layer
	if o.Bundles != nil {
		bundles = o.Bundles()
	}
	return o.SourceWith(bundles)
}

// SourceWith is Source with the given bundle layers after the directories
// (a bundle activation loads the set with its new layer).
func (o *PolicySourceOptions) SourceWith(bundles []engine.Layer) (engine.Source, error) {
	defaults, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		return engine.Source{}, fmt.Errorf("read embedded defaults: %w", err)
	}
	src := engine.Source{Print: o.Print}
	if o.NoBuiltin {
		engineDefaults, err := withoutPolicies(defaults)
		if err != nil {
			return engine.Source{}, fmt.Errorf("embedded defaults: %w", err)
		}
		// A layer without policies, so these defaults merge first.
		src.Layers = append(src.Layers, engine.Layer{Name: "built-in", FS: fstest.MapFS{}, Config: engineDefaults})
	} else {
		src.Layers = append(src.Layers, engine.Layer{Name: builtinLayerName, FS: policies.FS, Config: defaults})
	}
	for _, dir := range o.PoliciesDirs {
		l := engine.Layer{Name: dir, FS: os.DirFS(dir), Prefix: filepath.ToSlash(filepath.Clean(dir))}
		b, err := os.ReadFile(filepath.Join(dir, policies.ConfigFile))
		switch {
		case err == nil:
			l.Config = b
		case !errors.Is(err, fs.ErrNotExist):
			return engine.Source{}, fmt.Errorf("read policy directory config: %w", err)
		}
		src.Layers = append(src.Layers, l)
	}
	src.Layers = append(src.Layers, bundles...)
	if o.ConfigFile != "" {
		b, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			return engine.Source{}, fmt.Errorf("read --config: %w", err)
		}
		src.ConfigFiles = append(src.ConfigFiles, engine.ConfigFile{Name: o.ConfigFile, Data: b})
	}
	return src, nil
}

// stderrPrinter is the CLI's engine.PrintFunc: each print() line goes to
// w as "print: POLICY FILE:LINE: TEXT".
func stderrPrinter(w io.Writer) engine.PrintFunc {
	var mu sync.Mutex
	return func(policy, location, message string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "print: %s %s: %s\n", policy, location, message)
	}
}

// withoutPolicies returns the YAML document without its policies key.
func withoutPolicies(doc []byte) ([]byte, error) {
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	delete(m, "policies")
	return yaml.Marshal(m)
}

// Load builds a registry from the current files: the one loader of serve,
// validate and test.
func (o *PolicySourceOptions) Load(ctx context.Context) (*engine.Registry, error) {
	src, err := o.Source()
	if err != nil {
		return nil, err
	}
	return engine.Load(ctx, src)
}

// WatchPaths are the paths hot reload watches: every --policies directory
// and --config.
func (o *PolicySourceOptions) WatchPaths() []string {
	paths := append([]string(nil), o.PoliciesDirs...)
	if o.ConfigFile != "" {
		paths = append(paths, o.ConfigFile)
	}
	return paths
}

// invertedBool is a boolean flag stored negated, so the zero value of the
// options struct means the flag's default (true).
type invertedBool struct{ p *bool }

func (b *invertedBool) String() string {
	if b.p == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.p)
}

func (b *invertedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = !v
	return nil
}

func (b *invertedBool) Type() string     { return "bool" }
func (b *invertedBool) IsBoolFlag() bool { return true }
