package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// PolicySourceOptions say where policies and configuration come from; serve,
// validate and test share them so all three load the same set the same way.
type PolicySourceOptions struct {
	// PoliciesDir replaces the embedded policy set when set.
	PoliciesDir string
	// ConfigFile is merged over the defaults when set.
	ConfigFile string
}

// AddFlags registers --policies and --config.
func (o *PolicySourceOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.PoliciesDir, "policies", "", "directory of Rego policies (default: the built-in set)")
	fs.StringVar(&o.ConfigFile, "config", "", "YAML configuration merged over the defaults (policies/config.yaml)")
}

// Validate checks the paths exist.
func (o *PolicySourceOptions) Validate() error {
	if o.PoliciesDir != "" {
		fi, err := os.Stat(o.PoliciesDir)
		if err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("--policies %s: not a directory", o.PoliciesDir)
		}
	}
	if o.ConfigFile != "" {
		if _, err := os.Stat(o.ConfigFile); err != nil {
			return fmt.Errorf("--config: %w", err)
		}
	}
	return nil
}

// FS returns the policy file system.
func (o *PolicySourceOptions) FS() fs.FS {
	if o.PoliciesDir == "" {
		return policies.FS
	}
	return os.DirFS(o.PoliciesDir)
}

// Source reads the configuration files now and returns the engine source:
// embedded defaults, then the policy directory's own config.yaml if any, then
// --config.
func (o *PolicySourceOptions) Source() (engine.Source, error) {
	defaults, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		return engine.Source{}, fmt.Errorf("read embedded defaults: %w", err)
	}
	configs := [][]byte{defaults}
	if o.PoliciesDir != "" {
		b, err := os.ReadFile(filepath.Join(o.PoliciesDir, policies.ConfigFile))
		switch {
		case err == nil:
			configs = append(configs, b)
		case !errors.Is(err, fs.ErrNotExist):
			return engine.Source{}, fmt.Errorf("read policy directory config: %w", err)
		}
	}
	if o.ConfigFile != "" {
		b, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			return engine.Source{}, fmt.Errorf("read --config: %w", err)
		}
		configs = append(configs, b)
	}
	return engine.Source{Policies: o.FS(), Configs: configs}, nil
}

// Load builds a registry from the current files.
func (o *PolicySourceOptions) Load(ctx context.Context) (*engine.Registry, error) {
	src, err := o.Source()
	if err != nil {
		return nil, err
	}
	return engine.Load(ctx, src)
}

// WatchPaths are the paths hot reload watches.
func (o *PolicySourceOptions) WatchPaths() []string {
	var paths []string
	if o.PoliciesDir != "" {
		paths = append(paths, o.PoliciesDir)
	}
	if o.ConfigFile != "" {
		paths = append(paths, o.ConfigFile)
	}
	return paths
}
