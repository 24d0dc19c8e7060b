// Package manifests renders Portcullis' kustomize manifests (the base and the
// two certificate-mode overlays in this directory) with the kustomize Go
// library, so the rendering the tests check is the one users apply.
package manifests

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Overlays returns the names of the deployable overlays, which live in
// overlays/<name> and render to rendered/<name>.yaml.
func Overlays() []string {
	return []string{"cert-manager", "self-signed"}
}

// Render builds the kustomization in dir (a path on disk) and returns the
// resulting objects as a multi-document YAML stream, as `kustomize build`
// prints it.
func Render(dir string) ([]byte, error) {
	opts := krusty.MakeDefaultOptions()
	// The order comes from each kustomization's sortOptions (legacy when
	// absent), as with `kustomize build`, not from a CLI-style default.
	opts.Reorder = krusty.ReorderOptionUnspecified
	k := krusty.MakeKustomizer(opts)
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := resources.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("encode %s as YAML: %w", dir, err)
	}
	return out, nil
}
