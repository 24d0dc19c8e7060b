package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// Evaluator evaluates live objects through the engine.
type Evaluator struct {
	// Engine decides, with the policy set current at each call.
	Engine *engine.Engine
	// User is the requesting user of the reviews (default DefaultUser).
	User string
	// Timeout bounds each object's evaluation (0: none).
	Timeout time.Duration
	// Policies, when not empty, restricts evaluation to these IDs.
	Policies []string
}

// Evaluate builds the CREATE review of obj and evaluates the validating
// policies on it (the object as stored: the mutating policies already ran
// when it was admitted, and what runs is what is stored). An error means the
// object could not be evaluated at all.
func (e *Evaluator) Evaluate(ctx context.Context, t Target, obj *unstructured.Unstructured) (*Finding, error) {
	raw, err := objectJSON(obj)
	if err != nil {
		return nil, err
	}
	user := e.User
	if user == "" {
		user = DefaultUser
	}
	req := Request(t, obj.GetNamespace(), obj.GetName(), obj.GetUID(), raw, user)
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
