package review

import (
	"errors"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/input"
)

func parse(t *testing.T, text string) []input.Object {
	t.Helper()
	objs, probs := input.Parse("x.yaml", []byte(text))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	return objs
}

func TestRequestNamespaceAndResource(t *testing.T) {
	objs := parse(t, `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Gadget, plural: gadgetries}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r, namespace: ignored}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: ca}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i, namespace: web}
`)
	b := &Builder{Namespace: "team"}
	b.Learn(objs)
	want := []struct{ ns, resource string }{
		{"", "customresourcedefinitions"},
		{"", "gadgetries"},
		{"team", "widgets"},
		{"", "clusterroles"},
		{"team", "pods"},
		{"", "clusterissuers"},
		{"web", "ingresses"},
	}
	for i, o := range objs {
		req, err := b.Request(o)
		if err != nil {
			t.Fatal(err)
		}
		if req.Namespace != want[i].ns || req.Resource.Resource != want[i].resource {
			t.Errorf("%s: namespace %q resource %q, want %q %q", o.GVK.Kind, req.Namespace, req.Resource.Resource, want[i].ns, want[i].resource)
		}
		if req.Operation != admissionv1.Create || req.UserInfo.Username != DefaultUser || req.OldObject.Raw != nil {
			t.Errorf("%s: not a default CREATE: %+v", o.GVK.Kind, req)
		}
	}
	// The object is sent with the namespace of the request, as the
	// apiserver fills it in; o itself is unchanged.
	req, _ := b.Request(objs[4])
	if string(req.Object.Raw) != `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team"}}` {
		t.Errorf("object %s", req.Object.Raw)
	}
	if string(objs[4].JSON) != `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}` {
		t.Errorf("input object changed: %s", objs[4].JSON)
	}
}

func TestRequestUpdateAndDelete(t *testing.T) {
	old := parse(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {v: '1'}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: other}\n")
	cur := parse(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {v: '2'}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\n")
	b := &Builder{Operation: admissionv1.Update, User: "alice", Groups: []string{"dev"}}
	if err := b.SetOld(old); err != nil {
		t.Fatal(err)
	}
	req, err := b.Request(cur[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(req.OldObject.Raw) != `{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"v":"1"},"name":"p","namespace":"default"}}` ||
		string(req.Options.Raw) != `{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}` || req.UserInfo.Username != "alice" || req.UserInfo.Groups[0] != "dev" {
		t.Errorf("update request: old %s options %s user %+v", req.OldObject.Raw, req.Options.Raw, req.UserInfo)
	}
	// q is in namespace default now, other before: not the same object.
	if _, err := b.Request(cur[1]); !errors.Is(err, ErrNoOld) || err.Error() != "no old object for Pod default/q in --old" {
		t.Errorf("err = %v", err)
	}
	if got := b.Unmatched(); len(got) != 1 || b.Key(got[0]).String() != "Pod other/q" {
		t.Errorf("unmatched %v", got)
	}
	if err := b.SetOld(append(old, old[0])); err == nil || err.Error() != "--old: Pod default/p given twice (x.yaml:1 and x.yaml:1)" {
		t.Errorf("duplicate old: %v", err)
	}

	d := &Builder{Operation: admissionv1.Delete}
	req, err = d.Request(cur[0])
	if err != nil {
		t.Fatal(err)
	}
	if req.Object.Raw != nil || req.OldObject.Raw == nil || string(req.Options.Raw) != `{"kind":"DeleteOptions","apiVersion":"meta.k8s.io/v1"}` {
		t.Errorf("delete request: object %s old %s", req.Object.Raw, req.OldObject.Raw)
	}
}

func TestParseOperation(t *testing.T) {
	for in, want := range map[string]string{"create": "CREATE", "Update": "UPDATE", "DELETE": "DELETE", "EXPLODE": "", "CONNECT": ""} {
		op, err := ParseOperation(in)
		if string(op) != want || (want == "") != (err != nil) {
			t.Errorf("ParseOperation(%q) = %q, %v", in, op, err)
		}
	}
}
