package app

import (
	"encoding/json"
	"fmt"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/input"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/review"
	"github.com/portcullis/portcullis/webhooks/audit"
)

// reviewBuild returns the audit's request builder: validate's
// review.Builder (CREATE, the given user), taught each audited kind's scope
// and plural as the cluster serves them (what it learns from CRDs in
// validate's input), so `audit`, the background audit and `validate` build
// requests the same way.
func reviewBuild(user string) audit.BuildFunc {
	var mu sync.Mutex
	b := &review.Builder{Operation: admissionv1.Create, User: user}
	learned := map[schema.GroupVersionResource]bool{}
	return func(t audit.Target, obj *unstructured.Unstructured, raw []byte) (*admissionv1.AdmissionRequest, error) {
		mu.Lock()
		defer mu.Unlock()
		if !learned[t.GVR] {
			scope := "Namespaced"
			if !t.Namespaced {
				scope = "Cluster"
			}
			crd, err := json.Marshal(map[string]any{"spec": map[string]any{
				"group": t.GVR.Group, "scope": scope, "names": map[string]any{"plural": t.GVR.Resource, "kind": t.Kind},
			}})
			if err != nil {
				return nil, fmt.Errorf("describe %s: %w", t, err)
			}
			b.Learn([]input.Object{{
				Position: input.Position{Item: -1},
				GVK:      schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"},
				JSON:     crd,
			}})
			learned[t.GVR] = true
		}
		return b.Request(input.Object{
			Position:  input.Position{Source: t.String() + "/" + obj.GetNamespace() + "/" + obj.GetName() + "/" + string(obj.GetUID()), Item: -1},
			GVK:       t.GVK(),
			Name:      obj.GetName(),
			Namespace: obj.GetNamespace(),
			JSON:      raw,
		})
	}
}
