// Package review turns objects read from files (or from anywhere else) into
// the AdmissionRequests the apiserver would send, and runs them through the
// engine the way the apiserver calls the webhooks: the mutating policies,
// then the validating policies on the mutated object.
package review

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/input"
)

// DefaultUser is the username of requests when none is given.
const DefaultUser = "portcullis-validate"

// ErrNoOld is returned for an UPDATE whose old object is not in --old.
var ErrNoOld = errors.New("no old object")

// Key identifies an object: group, kind, namespace and name.
type Key struct {
	Group, Kind, Namespace, Name string
}

// String is "Kind.group namespace/name" ("Kind name" for core cluster-scoped kinds).
func (k Key) String() string {
	gk := k.Kind
	if k.Group != "" {
		gk += "." + k.Group
	}
	if k.Namespace == "" {
		return gk + " " + k.Name
	}
	return gk + " " + k.Namespace + "/" + k.Name
}

// Builder builds AdmissionRequests for objects.
type Builder struct {
	// Operation is CREATE (the default), UPDATE or DELETE.
	Operation admissionv1.Operation
	// User and Groups are the requesting user (DefaultUser when empty).
	User   string
	Groups []string
	// Namespace is given to namespaced objects that name none, as the
	// apiserver does from the request path (kubectl's -n).
	Namespace string

	old     map[Key]input.Object
	crds    map[schema.GroupKind]crdInfo
	matched map[Key]bool
}

type crdInfo struct {
	plural  string
	cluster bool
}

// Learn records what the CustomResourceDefinitions among objs say about
// their kinds (scope and plural), so custom resources in the same input get
// the namespace and resource name the apiserver would give them.
func (b *Builder) Learn(objs []input.Object) {
	for _, o := range objs {
		if o.GVK.Group != "apiextensions.k8s.io" || o.GVK.Kind != "CustomResourceDefinition" {
			continue
		}
		var crd struct {
			Spec struct {
				Group string `json:"group"`
				Scope string `json:"scope"`
				Names struct {
					Plural string `json:"plural"`
					Kind   string `json:"kind"`
				} `json:"names"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.JSON, &crd) != nil || crd.Spec.Names.Kind == "" {
			continue
		}
		if b.crds == nil {
			b.crds = map[schema.GroupKind]crdInfo{}
		}
		b.crds[schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}] = crdInfo{plural: crd.Spec.Names.Plural, cluster: crd.Spec.Scope == "Cluster"}
	}
}

// SetOld gives the old objects of UPDATE requests (--old), matched by
// group, kind, namespace and name. Two old objects with the same key are an
// error.
func (b *Builder) SetOld(objs []input.Object) error {
	b.old = map[Key]input.Object{}
	b.matched = map[Key]bool{}
	for _, o := range objs {
		k := b.Key(o)
		if prev, dup := b.old[k]; dup {
			return fmt.Errorf("--old: %s given twice (%s:%d and %s:%d)", k, prev.Source, prev.Line, o.Source, o.Line)
		}
		b.old[k] = o
	}
	return nil
}

// Unmatched lists the old objects no request used, in input order.
func (b *Builder) Unmatched() []input.Object {
	var out []input.Object
	for k, o := range b.old {
		if !b.matched[k] {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		if out[i].Doc != out[j].Doc {
			return out[i].Doc < out[j].Doc
		}
		return out[i].Item < out[j].Item
	})
	return out
}

// ClusterScoped reports whether objects of gk have no namespace: the
// built-in cluster-scoped kinds, and custom kinds whose CRD (in the input)
// says so. Other kinds are namespaced.
func (b *Builder) ClusterScoped(gk schema.GroupKind) bool {
	if c, ok := b.crds[gk]; ok {
		return c.cluster
	}
	return clusterScoped[gk]
}

// Key returns the object's key with the namespace the request would have.
func (b *Builder) Key(o input.Object) Key {
	return Key{Group: o.GVK.Group, Kind: o.GVK.Kind, Namespace: b.namespace(o), Name: o.Name}
}

func (b *Builder) namespace(o input.Object) string {
	if b.ClusterScoped(o.GVK.GroupKind()) {
		return ""
	}
	if o.Namespace != "" {
		return o.Namespace
	}
	if b.Namespace == "" {
		return "default"
	}
	return b.Namespace
}

// Request builds the AdmissionRequest the apiserver would send for o. The
// object is sent with the namespace of the request (the apiserver fills
// metadata.namespace from the path); o itself is not changed.
func (b *Builder) Request(o input.Object) (*admissionv1.AdmissionRequest, error) {
	gk := o.GVK.GroupKind()
	ns := b.namespace(o)
	resource, _ := meta.UnsafeGuessKindToResource(o.GVK)
	if c, ok := b.crds[gk]; ok && c.plural != "" {
		resource.Resource = c.plural
	}
	gvk := metav1.GroupVersionKind{Group: o.GVK.Group, Version: o.GVK.Version, Kind: o.GVK.Kind}
	gvr := metav1.GroupVersionResource{Group: resource.Group, Version: resource.Version, Resource: resource.Resource}
	obj := o.JSON
	if ns != "" && o.Namespace == "" {
		obj = withNamespace(obj, ns)
	}
	op := b.Operation
	if op == "" {
		op = admissionv1.Create
	}
	user := b.User
	if user == "" {
		user = DefaultUser
	}
	dryRun := true
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d", o.Source, o.Doc, o.Item)))
	req := &admissionv1.AdmissionRequest{
		UID:             types.UID("portcullis-validate-" + hex.EncodeToString(sum[:8])),
		Kind:            gvk,
		Resource:        gvr,
		RequestKind:     &gvk,
		RequestResource: &gvr,
		Name:            o.Name,
		Namespace:       ns,
		Operation:       op,
		UserInfo:        authnv1.UserInfo{Username: user, Groups: b.Groups},
		DryRun:          &dryRun,
	}
	switch op {
	case admissionv1.Create:
		req.Object = runtime.RawExtension{Raw: obj}
		req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)}
	case admissionv1.Update:
		k := b.Key(o)
		old, ok := b.old[k]
		if !ok {
			return nil, fmt.Errorf("%w for %s in --old", ErrNoOld, k)
		}
		b.matched[k] = true
		oldObj := old.JSON
		if ns != "" && old.Namespace == "" {
			oldObj = withNamespace(oldObj, ns)
		}
		req.Object = runtime.RawExtension{Raw: obj}
		req.OldObject = runtime.RawExtension{Raw: oldObj}
		req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}`)}
	case admissionv1.Delete:
		// The apiserver sends the object being deleted as oldObject and
		// no object.
		req.OldObject = runtime.RawExtension{Raw: obj}
		req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"DeleteOptions","apiVersion":"meta.k8s.io/v1"}`)}
	default:
		return nil, fmt.Errorf("operation %q: must be CREATE, UPDATE or DELETE", op)
	}
	return req, nil
}

// ParseOperation accepts CREATE, UPDATE, DELETE in any case.
func ParseOperation(s string) (admissionv1.Operation, error) {
	switch op := admissionv1.Operation(strings.ToUpper(s)); op {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete:
		return op, nil
	}
	return "", fmt.Errorf("--operation %q: must be CREATE, UPDATE or DELETE", s)
}

func withNamespace(raw []byte, ns string) []byte {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return raw
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	md["namespace"] = ns
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}
