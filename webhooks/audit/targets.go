package audit

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/portcullis/portcullis/policies/engine"
)

// Target is one resource kind to audit.
type Target struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
}

// String is the resource as kubectl names it (pods, deployments.apps).
func (t Target) String() string {
	if t.GVR.Group == "" {
		return t.GVR.Resource
	}
	return t.GVR.Resource + "." + t.GVR.Group
}

// GVK is the target's group, version and kind.
func (t Target) GVK() schema.GroupVersionKind {
	return t.GVR.GroupVersion().WithKind(t.Kind)
}

// Resources returns the resources the registry's validating policies declare
// (custom.resources, subresources dropped: the audit reads whole objects),
// sorted, and the IDs of the validating policies that declare none (they
// apply to every resource, which an audit cannot list: they are skipped).
func Resources(reg *engine.Registry) (resources []string, unscoped []string) {
	seen := map[string]bool{}
	for _, p := range reg.Policies() {
		if p.Kind != engine.Validating {
			continue
		}
		if len(p.Resources) == 0 || slices.Contains(p.Resources, "*") {
			unscoped = append(unscoped, p.ID)
			continue
		}
		for _, r := range p.Resources {
			r, _, _ = strings.Cut(r, "/")
			if !seen[r] {
				seen[r] = true
				resources = append(resources, r)
			}
		}
	}
	sort.Strings(resources)
	return resources, unscoped
}

// ResolveTargets maps resource names (plural, as policies declare them; an
// optional ".group" suffix picks a group) to the API's preferred version of
// each, through discovery. A name served by several groups resolves to the
// core group, else to the first group in discovery order. Names the API does
// not serve, or that cannot be listed and watched, are returned in missing.
func ResolveTargets(dc discovery.DiscoveryInterface, resources []string) (targets []Target, missing []string, err error) {
	lists, err := dc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, nil, fmt.Errorf("discover API resources: %w", err)
	}
	// A partial discovery failure (one aggregated API down) still resolves
	// the rest; resources of the failed group are reported missing.
	for _, name := range resources {
		plural, group, hasGroup := strings.Cut(name, ".")
		var found *Target
		for _, l := range lists {
			gv, perr := schema.ParseGroupVersion(l.GroupVersion)
			if perr != nil || (hasGroup && gv.Group != group) {
				continue
			}
			for _, r := range l.APIResources {
				if r.Name != plural || !listable(r) {
					continue
				}
				t := Target{GVR: gv.WithResource(r.Name), Kind: r.Kind, Namespaced: r.Namespaced}
				if found == nil || (gv.Group == "" && found.GVR.Group != "") {
					found = &t
				}
			}
		}
		if found == nil {
			missing = append(missing, name)
			continue
		}
		targets = append(targets, *found)
	}
	return targets, missing, nil
}

func listable(r metav1.APIResource) bool {
	return slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch")
}
