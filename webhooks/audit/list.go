package audit

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// DefaultPageSize is how many objects one list call returns.
const DefaultPageSize = 500

// List calls fn for every object of t in namespace ("" all namespaces; for
// a cluster-scoped t, namespace is ignored), in pages of pageSize (the
// apiserver's limit/continue: memory stays bounded by one page).
func List(ctx context.Context, dyn dynamic.Interface, t Target, namespace string, pageSize int64, fn func(*unstructured.Unstructured) error) error {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	var ri dynamic.ResourceInterface = dyn.Resource(t.GVR)
	if t.Namespaced && namespace != "" {
		ri = dyn.Resource(t.GVR).Namespace(namespace)
	}
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		page, err := ri.List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		for i := range page.Items {
			if err := fn(&page.Items[i]); err != nil {
				return err
			}
		}
		if page.GetContinue() == "" {
			return nil
		}
		opts.Continue = page.GetContinue()
	}
}
