package app

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis/portcullis/webhooks/audit"
)

// The audit's requests come from validate's builder, taught the cluster's
// scope and plural: a cluster-scoped custom kind gets no namespace (the
// builder would otherwise default it to "default"), an irregular plural is
// the served one, every object its own UID, the user the one given.
func TestReviewBuild(t *testing.T) {
	build := reviewBuild("auditor")
	widget := audit.Target{GVR: schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgetz"}, Kind: "Widget"}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w1", "uid": "u1"}}}
	raw := []byte(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","uid":"u1"}}`)
	req, err := build(widget, obj, raw)
	if err != nil {
		t.Fatal(err)
	}
	if req.Namespace != "" || string(req.Object.Raw) != string(raw) || req.Resource.Resource != "widgetz" || req.UserInfo.Username != "auditor" || req.Operation != "CREATE" {
		t.Errorf("cluster-scoped widget: namespace %q, resource %q, user %q, operation %s, object %s", req.Namespace, req.Resource.Resource, req.UserInfo.Username, req.Operation, req.Object.Raw)
	}
	pods := audit.Target{GVR: schema.GroupVersionResource{Version: "v1", Resource: "pods"}, Kind: "Pod", Namespaced: true}
	p := func(name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": name, "namespace": "shop", "uid": "uid-" + name}}}
	}
	a, err := build(pods, p("a"), []byte(`{"metadata":{"name":"a","namespace":"shop"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(pods, p("b"), []byte(`{"metadata":{"name":"b","namespace":"shop"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Namespace != "shop" || a.UID == b.UID || a.Kind.Kind != "Pod" || a.Resource.Resource != "pods" {
		t.Errorf("pods: %+v / %+v", a, b)
	}
}
