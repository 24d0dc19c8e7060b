package engine

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/agnivade/levenshtein"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes/scheme"
)

// builtinResources are the plural resource names of every kind client-go's
// scheme registers (the built-in Kubernetes API), as the apiserver puts them
// in AdmissionRequest.resource.resource: "pods", "deployments". Computed
// once, on first use.
var builtinResources = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	for gvk := range scheme.Scheme.AllKnownTypes() {
		k := gvk.Kind
		if strings.HasSuffix(k, "List") || strings.HasSuffix(k, "Options") || k == "WatchEvent" || k == "Status" || k == "APIGroup" || k == "APIVersions" || k == "APIResourceList" || k == "APIGroupList" {
			continue
		}
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		out[plural.Resource] = true
	}
	return out
})

// resourceWarnings checks the names in METADATA custom.resources: a name
// that is not a built-in resource means the policy never runs for the kind
// the author meant (`Service` is never the request's resource; `services`
// is), so it is reported with the closest built-in name. Custom resources
// are allowed: the warning says so.
func (p *Policy) resourceWarnings() []string {
	var out []string
	for _, r := range p.Resources {
		if r == "*" {
			continue
		}
		res, sub, _ := strings.Cut(r, "/")
		known := builtinResources()
		var problem string
		switch {
		case known[res] && (sub == "" || sub == strings.ToLower(sub)):
			continue
		case known[res]:
			problem = fmt.Sprintf("subresource %q is not lowercase", sub)
		case res != strings.ToLower(res):
			problem = "resource names are plural and lowercase, as in the request's resource.resource"
		default:
			problem = "not a built-in Kubernetes resource (fine for a custom resource's plural name)"
		}
		if s := closestResource(res); s != "" && s != res {
			if sub != "" {
				s += "/" + strings.ToLower(sub)
			}
			problem += fmt.Sprintf(": did you mean %q?", s)
		}
		out = append(out, fmt.Sprintf("%s:%d: policy %q: METADATA custom.resources %q: %s", p.File, p.Row, p.ID, r, problem))
	}
	return out
}

// closestResource returns the built-in resource a misspelt name most likely
// means: its lowercase plural ("Service" → "services"), else the nearest
// name by edit distance, if near enough.
func closestResource(name string) string {
	known := builtinResources()
	lower := strings.ToLower(name)
	for _, guess := range []string{lower, lower + "s", lower + "es", strings.TrimSuffix(lower, "y") + "ies"} {
		if known[guess] {
			return guess
		}
	}
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	return closest(lower, names)
}

// closest returns the candidate nearest to s by Levenshtein distance when
// it is near enough to be a typo (at most 2 edits, or a third of the
// length for long names), else "". Ties go to the first candidate.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein.ComputeDistance(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, (len(s)+2)/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// didYouMean is closest as a message suffix: ` (did you mean "x"?)` or "".
func didYouMean(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}
