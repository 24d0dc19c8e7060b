package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portcullis/portcullis/policies/engine"
)

// Finding is the audit of one object: the validating decision on the
// request creating it.
type Finding struct {
	Target    Target
	Namespace string
	Name      string
	UID       types.UID
	// Decision is the engine's validating decision (never modified).
	Decision *engine.Decision
}

// Violating reports whether the object has violations or failed policies.
func (f *Finding) Violating() bool {
	return len(f.Decision.Violations) > 0 || len(f.Decision.Errors) > 0
}

// BuildFunc builds the AdmissionRequest creating a live object of t; raw is
// the object's JSON without managedFields. The CLI and the server pass the
// request builder `portcullis validate` uses (cmd/portcullis/internal/review).
type BuildFunc func(t Target, obj *unstructured.Unstructured, raw []byte) (*admissionv1.AdmissionRequest, error)

// Evaluator evaluates live objects through the engine.
type Evaluator struct {
	// Engine decides, with the policy set current at each call.
	Engine *engine.Engine
	// Build builds each object's request (required).
	Build BuildFunc
	// Timeout bounds each object's evaluation (0: none).
	Timeout time.Duration
	// Policies, when not empty, restricts evaluation to these IDs.
	Policies []string
}

// ObjectJSON is obj as JSON without metadata.managedFields.
func ObjectJSON(obj *unstructured.Unstructured) ([]byte, error) { return objectJSON(obj) }

// Evaluate builds the CREATE review of obj and evaluates the validating
// policies on it (the object as stored: the mutating policies already ran
// when it was admitted, and what runs is what is stored). An error means the
// object could not be evaluated at all.
func (e *Evaluator) Evaluate(ctx context.Context, t Target, obj *unstructured.Unstructured) (*Finding, error) {
	raw, err := objectJSON(obj)
	if err != nil {
		return nil, err
	}
	req, err := e.Build(t, obj, raw)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", t, obj.GetNamespace(), obj.GetName(), err)
	}
	// The cluster knows the resource and scope better than any guess from
	// the kind (custom resources, irregular plurals).
	gvr := metav1.GroupVersionResource{Group: t.GVR.Group, Version: t.GVR.Version, Resource: t.GVR.Resource}
	req.Resource, req.RequestResource, req.Namespace = gvr, &gvr, obj.GetNamespace()
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	dec, err := e.Engine.Evaluate(ctx, engine.Validating, req, engine.Options{Policies: e.Policies, NoCache: true})
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", t, obj.GetNamespace(), obj.GetName(), err)
	}
	return &Finding{Target: t, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(), Decision: dec}, nil
}

// objectJSON encodes the object without metadata.managedFields (bookkeeping
// no policy reads, often half of a small object).
func objectJSON(obj *unstructured.Unstructured) ([]byte, error) {
	content := obj.UnstructuredContent()
	if md, ok := content["metadata"].(map[string]any); ok {
		if _, has := md["managedFields"]; has {
			shallow := make(map[string]any, len(content))
			for k, v := range content {
				shallow[k] = v
			}
			mdCopy := make(map[string]any, len(md))
			for k, v := range md {
				if k != "managedFields" {
					mdCopy[k] = v
				}
			}
			shallow["metadata"] = mdCopy
			content = shallow
		}
	}
	b, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return b, nil
}

// StripManagedFields is an informer transform dropping
// metadata.managedFields before objects enter the cache (memory).
func StripManagedFields(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
	}
	return obj, nil
}
