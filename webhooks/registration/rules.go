// Package registration derives the rules of Portcullis' webhook
// configurations from the loaded policies, so that a policy for a new kind
// of object is sent to the server without hand edits: `portcullis webhooks`
// prints them, and `serve --sync-webhook-rules` adds what is missing to the
// server's own configurations.
//
// A policy's METADATA custom.resources names plural resources ("services",
// "pods/ephemeralcontainers"); the API group and version of each come from
// the Kubernetes types client-go knows (k8s.io/client-go/kubernetes/scheme),
// at the newest version, which is enough because the configurations use
// matchPolicy: Equivalent (the apiserver converts a request made at another
// version: https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#matching-requests-matchpolicy).
// A resource it does not know (a custom resource) is matched in every group
// and version. Operations are the policy's custom.operations, else CREATE
// and UPDATE, except that the mutating webhook asks for Pods on CREATE only:
// a Pod's spec is immutable once created, so there is nothing to default on
// an update.
package registration

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/portcullis/portcullis/policies/engine"
)

// Rules are the webhook rules the loaded policies need.
type Rules struct {
	// Validating are the rules of the ValidatingWebhookConfiguration's webhooks.
	Validating []admissionregistrationv1.RuleWithOperations
	// Mutating are the rules of the MutatingWebhookConfiguration's webhooks.
	Mutating []admissionregistrationv1.RuleWithOperations
	// Warnings name policies whose resources cannot be registered: a policy
	// with no custom.resources applies to everything the rules send, but
	// asks for nothing itself (registering every resource would send leases
	// and events to a fail-closed webhook).
	Warnings []string
}

// defaultOperations are registered for a policy without custom.operations.
var defaultOperations = []string{"CREATE", "UPDATE"}

// allScopes: a resource is namespaced or cluster-scoped, never both, so "*"
// is exact for every resource, including custom ones whose scope is unknown.
const allScopes = admissionregistrationv1.AllScopes

// Resolver maps a plural resource name to its API group and version.
type Resolver struct {
	byResource map[string][]schema.GroupVersion
}

// NewResolver indexes the types of s (client-go's scheme when nil).
func NewResolver(s *runtime.Scheme) *Resolver {
	if s == nil {
		s = scheme.Scheme
	}
	newest := map[schema.GroupResource]string{}
	for gvk := range s.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "List") || optionKinds[gvk.Kind] || removedGroups[gvk.Group] {
			continue
		}
		gvr, _ := meta.UnsafeGuessKindToResource(gvk)
		gr := gvr.GroupResource()
		if v, ok := newest[gr]; !ok || utilversion.CompareKubeAwareVersionStrings(gvk.Version, v) > 0 {
			newest[gr] = gvk.Version
		}
	}
	r := &Resolver{byResource: map[string][]schema.GroupVersion{}}
	for gr, v := range newest {
		r.byResource[gr.Resource] = append(r.byResource[gr.Resource], schema.GroupVersion{Group: gr.Group, Version: v})
	}
	for _, gvs := range r.byResource {
		sort.Slice(gvs, func(i, j int) bool { return gvs[i].Group < gvs[j].Group })
	}
	return r
}

// removedGroups are still in client-go's scheme but no longer served (the
// extensions group since Kubernetes 1.22); their resources live on in other
// groups, which matchPolicy: Equivalent also routes old-group requests to.
var removedGroups = map[string]bool{"extensions": true}

// optionKinds are registered in every group version but are not resources.
var optionKinds = map[string]bool{
	"WatchEvent": true, "DeleteOptions": true, "ListOptions": true, "GetOptions": true,
	"CreateOptions": true, "UpdateOptions": true, "PatchOptions": true, "ExportOptions": true,
	"Status": true, "APIVersions": true, "APIGroup": true, "APIResourceList": true,
}

// Lookup returns the group versions serving resource ("pods"; a subresource
// "pods/ephemeralcontainers" is looked up by its resource), or nil when the
// resource is not a built-in one.
func (r *Resolver) Lookup(resource string) []schema.GroupVersion {
	res, _, _ := strings.Cut(resource, "/")
	return r.byResource[res]
}

// tuple is one (group, version, resource, operation) the rules must match.
type tuple struct{ group, version, resource, op string }

// Derive computes the rules for policies (as engine.Registry.Policies
// returns them) with resolver r.
func (r *Resolver) Derive(policies []*engine.Policy) Rules {
	var out Rules
	want := map[engine.Kind]map[tuple]bool{engine.Validating: {}, engine.Mutating: {}}
	for _, p := range policies {
		if len(p.Resources) == 0 {
			out.Warnings = append(out.Warnings, fmt.Sprintf("policy %s (%s:%d) declares no custom.resources: it sees only what the other policies' rules send", p.ID, p.File, p.Row))
			continue
		}
		for _, res := range p.Resources {
			if res == "*" {
				out.Warnings = append(out.Warnings, fmt.Sprintf("policy %s (%s:%d) lists resource \"*\": not registered (every resource would go to the webhook); list the resources", p.ID, p.File, p.Row))
				continue
			}
			gvs := r.Lookup(res)
			if gvs == nil {
				gvs = []schema.GroupVersion{{Group: "*", Version: "*"}}
			}
			ops := p.Operations
			if len(ops) == 0 {
				ops = defaultOperations
				if p.Kind == engine.Mutating && res == "pods" {
					ops = []string{"CREATE"}
				}
			}
			for _, gv := range gvs {
				for _, op := range ops {
					want[p.Kind][tuple{gv.Group, gv.Version, res, op}] = true
				}
			}
		}
	}
	out.Validating = group(want[engine.Validating])
	out.Mutating = group(want[engine.Mutating])
	sort.Strings(out.Warnings)
	return out
}

// group folds tuples into as few rules as the webhook API allows: one rule
// per group, version and set of operations, listing its resources.
func group(tuples map[tuple]bool) []admissionregistrationv1.RuleWithOperations {
	type gvr struct{ group, version, resource string }
	ops := map[gvr][]string{}
	for t := range tuples {
		k := gvr{t.group, t.version, t.resource}
		ops[k] = append(ops[k], t.op)
	}
	type key struct{ group, version, ops string }
	resources := map[key][]string{}
	for k, o := range ops {
		slices.SortFunc(o, compareOperations)
		rk := key{k.group, k.version, strings.Join(o, ",")}
		resources[rk] = append(resources[rk], k.resource)
	}
	keys := make([]key, 0, len(resources))
	for k := range resources {
		keys = append(keys, k)
	}
	// Core group first, then by group, version, operations; "*" last.
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if (a.group == "*") != (b.group == "*") {
			return b.group == "*"
		}
		if a.group != b.group {
			return a.group < b.group
		}
		if a.version != b.version {
			return a.version < b.version
		}
		return a.ops < b.ops
	})
	rules := make([]admissionregistrationv1.RuleWithOperations, 0, len(keys))
	for _, k := range keys {
		res := resources[k]
		sort.Strings(res)
		var operations []admissionregistrationv1.OperationType
		for _, o := range strings.Split(k.ops, ",") {
			operations = append(operations, admissionregistrationv1.OperationType(o))
		}
		scope := allScopes
		rules = append(rules, admissionregistrationv1.RuleWithOperations{
			Operations: operations,
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{k.group},
				APIVersions: []string{k.version},
				Resources:   res,
				Scope:       &scope,
			},
		})
	}
	return rules
}

// operationOrder is the order operations are listed in.
var operationOrder = map[string]int{"CREATE": 0, "UPDATE": 1, "DELETE": 2, "CONNECT": 3, "*": 4}

func compareOperations(a, b string) int { return operationOrder[a] - operationOrder[b] }

// Covers reports whether rules already send every (group, version,
// resource, operation) of want, including through wildcards ("*" groups,
// versions, operations; "*" and "*/*" resources, "pods/*" subresources).
func Covers(rules, want []admissionregistrationv1.RuleWithOperations) bool {
	return len(Missing(rules, want)) == 0
}

// Missing returns the rules of want that rules do not cover, as new rules.
func Missing(rules, want []admissionregistrationv1.RuleWithOperations) []admissionregistrationv1.RuleWithOperations {
	missing := map[tuple]bool{}
	for _, w := range want {
		for _, t := range tuples(w) {
			if !covered(rules, t) {
				missing[t] = true
			}
		}
	}
	return group(missing)
}

func tuples(r admissionregistrationv1.RuleWithOperations) []tuple {
	var out []tuple
	for _, g := range r.APIGroups {
		for _, v := range r.APIVersions {
			for _, res := range r.Resources {
				for _, op := range r.Operations {
					out = append(out, tuple{g, v, res, string(op)})
				}
			}
		}
	}
	return out
}

func covered(rules []admissionregistrationv1.RuleWithOperations, t tuple) bool {
	for _, r := range rules {
		if matches(r.APIGroups, t.group) && matches(r.APIVersions, t.version) &&
			matchesOperation(r.Operations, t.op) && matchesResource(r.Resources, t.resource) {
			return true
		}
	}
	return false
}

func matches(list []string, v string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, v)
}

func matchesOperation(list []admissionregistrationv1.OperationType, op string) bool {
	return slices.Contains(list, admissionregistrationv1.OperationAll) || slices.Contains(list, admissionregistrationv1.OperationType(op))
}

// matchesResource follows the Rule.Resources semantics: "*" is every
// resource, "*/*" every resource and subresource, "pods/*" every pods
// subresource, "*/scale" the scale subresource of every resource.
func matchesResource(list []string, resource string) bool {
	res, sub, hasSub := strings.Cut(resource, "/")
	for _, r := range list {
		rr, rs, rHasSub := strings.Cut(r, "/")
		switch {
		case r == resource || r == "*/*":
			return true
		case !hasSub && r == "*":
			return true
		case hasSub && rHasSub && (rr == "*" || rr == res) && (rs == "*" || rs == sub):
			return true
		}
	}
	return false
}
