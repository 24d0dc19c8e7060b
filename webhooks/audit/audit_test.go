package audit

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portcullis/portcullis/policies/engine"
)

func TestParseNamespaceLabels(t *testing.T) {
	got, err := ParseNamespaceLabels([]string{
		"shop=pod-security.kubernetes.io/enforce=baseline,team=payments",
		"dev=",
		"shop=tier=prod",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"shop": {"pod-security.kubernetes.io/enforce": "baseline", "team": "payments", "tier": "prod"},
		"dev":  {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for in, msg := range map[string]string{
		"shop":            `--namespace-labels "shop": want NAMESPACE=key=value[,key=value...]`,
		"=a=b":            `--namespace-labels "=a=b": want NAMESPACE=key=value[,key=value...]`,
		"Shop=a=b":        `--namespace-labels "Shop=a=b": namespace "Shop": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
		"shop=a":          `--namespace-labels "shop=a": "a" is not key=value`,
		"shop=a=b c":      `--namespace-labels "shop=a=b c": label value "b c": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
		"shop=/bad=value": `--namespace-labels "shop=/bad=value": label key "/bad": prefix part must be non-empty`,
	} {
		if _, err := ParseNamespaceLabels([]string{in}); err == nil || err.Error() != msg {
			t.Errorf("%q: err = %v\nwant %s", in, err, msg)
		}
	}
}

func FuzzParseNamespaceLabels(f *testing.F) {
	f.Add("shop=pod-security.kubernetes.io/enforce=baseline,team=payments")
	f.Add("dev=")
	f.Add("a=b=c=d,,")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseNamespaceLabels([]string{in})
		if err != nil {
			return
		}
		// Whatever parses renders back to labels that parse the same.
		for ns, labels := range got {
			again, err := ParseNamespaceLabels([]string{ns + "=" + FormatLabels(labels)})
			if err != nil || !reflect.DeepEqual(again[ns], labels) {
				t.Fatalf("%q: %v re-parsed as %v (%v)", in, labels, again[ns], err)
			}
		}
	})
}

func TestStaticLabels(t *testing.T) {
	s := &StaticLabels{Labels: map[string]map[string]string{"shop": {"a": "b"}}}
	if l, err := s.NamespaceLabels(context.Background(), "shop"); err != nil || !reflect.DeepEqual(l, map[string]string{"a": "b"}) {
		t.Errorf("shop: %v %v", l, err)
	}
	if l, err := s.NamespaceLabels(context.Background(), "other"); err != nil || l != nil {
		t.Errorf("other: %v %v", l, err)
	}
	s.Fallback = &StaticLabels{Labels: map[string]map[string]string{"other": {"c": "d"}}}
	if l, err := s.NamespaceLabels(context.Background(), "other"); err != nil || !reflect.DeepEqual(l, map[string]string{"c": "d"}) {
		t.Errorf("other with fallback: %v %v", l, err)
	}
}

const colourPolicy = `# METADATA
# title: colour
# custom:
#   kind: validating
#   resources: [pods, deployments, pods/ephemeralcontainers]
package portcullis.colour

deny contains {"msg": "red", "check": "red"} if input.request.object.metadata.labels.colour == "red"

deny contains {"msg": "orange", "severity": "critical"} if input.request.object.metadata.labels.colour == "orange"
`

const anyPolicy = `# METADATA
# title: any
# custom:
#   kind: validating
#   enforcement: warn
package portcullis.anything

deny contains "blue" if input.request.object.metadata.labels.colour == "blue"
`

func loadEngine(t *testing.T, files map[string]string, config string) *engine.Engine {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	src := engine.Source{Policies: fsys}
	if config != "" {
		src.Configs = [][]byte{[]byte(config)}
	}
	reg, err := engine.Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(reg, nil)
}

func TestResources(t *testing.T) {
	eng := loadEngine(t, map[string]string{"c.rego": colourPolicy, "a.rego": anyPolicy}, "")
	res, unscoped := Resources(eng.Registry())
	if !reflect.DeepEqual(res, []string{"deployments", "pods"}) || !reflect.DeepEqual(unscoped, []string{"anything"}) {
		t.Errorf("resources %q, unscoped %q", res, unscoped)
	}
}

var podTarget = Target{GVR: schema.GroupVersionResource{Version: "v1", Resource: "pods"}, Kind: "Pod", Namespaced: true}

func pod(name, colour string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": name, "namespace": "shop", "uid": "uid-" + name,
			"labels":        map[string]any{"colour": colour},
			"managedFields": []any{map[string]any{"manager": "kubectl"}},
		},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app:1"}}},
	}}
	return u
}

// Evaluate builds the CREATE review of the object as stored (without its
// managedFields) and Results maps the violations to OpenReports results.
func TestEvaluateAndResults(t *testing.T) {
	eng := loadEngine(t, map[string]string{"c.rego": colourPolicy}, "policies:\n  colour:\n    enforcement: audit\n")
	ev := &Evaluator{Engine: eng, Build: testBuild, Timeout: time.Second}
	var findings []*Finding
	for _, p := range []*unstructured.Unstructured{pod("b", "orange"), pod("a", "red"), pod("c", "green")} {
		f, err := ev.Evaluate(context.Background(), podTarget, p)
		if err != nil {
			t.Fatal(err)
		}
		if f.Violating() != (p.GetName() != "c") {
			t.Errorf("%s: violating = %v", p.GetName(), f.Violating())
		}
		if f.Violating() {
			findings = append(findings, f)
		}
	}
	at := time.Unix(1700000000, 0)
	got := Results(findings, at)
	ref := func(name string) []corev1.ObjectReference {
		return []corev1.ObjectReference{{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: name, UID: types.UID("uid-" + name)}}
	}
	want := []orv1alpha1.ReportResult{
		{Source: "portcullis", Policy: "colour", Rule: "red", Severity: "low", Timestamp: metav1.Timestamp{Seconds: 1700000000}, Result: "warn", Subjects: ref("a"), Description: "red", Properties: map[string]string{"enforcement": "audit"}},
		{Source: "portcullis", Policy: "colour", Severity: "critical", Timestamp: metav1.Timestamp{Seconds: 1700000000}, Result: "warn", Subjects: ref("b"), Description: "orange", Properties: map[string]string{"enforcement": "audit"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results:\n got %+v\nwant %+v", got, want)
	}
	if s := Summary(got); s != (orv1alpha1.ReportSummary{Warn: 2}) {
		t.Errorf("summary %+v", s)
	}
	later := Results(findings, at.Add(time.Hour))
	if !sameResults(got, later) {
		t.Error("same findings at another time are not the same results")
	}
	keepTimestamps(later, got)
	if later[0].Timestamp.Seconds != 1700000000 {
		t.Errorf("timestamp not kept: %v", later[0].Timestamp)
	}
	if sameResults(got, got[:1]) {
		t.Error("fewer results compare equal")
	}

	// Deny enforcement: result fail, severity high.
	deny := loadEngine(t, map[string]string{"c.rego": colourPolicy}, "")
	f, err := (&Evaluator{Engine: deny, Build: testBuild}).Evaluate(context.Background(), podTarget, pod("a", "red"))
	if err != nil {
		t.Fatal(err)
	}
	r := Results([]*Finding{f}, at)
	if len(r) != 1 || r[0].Result != "fail" || r[0].Severity != "high" {
		t.Errorf("deny result %+v", r)
	}
}

// testBuild is a minimal request builder (the CLI and the server use
// validate's): CREATE of the object.
func testBuild(t Target, obj *unstructured.Unstructured, raw []byte) (*admissionv1.AdmissionRequest, error) {
	gvk := metav1.GroupVersionKind{Group: t.GVR.Group, Version: t.GVR.Version, Kind: t.Kind}
	return &admissionv1.AdmissionRequest{
		UID: "u", Kind: gvk, Name: obj.GetName(), Namespace: "overridden", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: raw},
	}, nil
}

// Evaluate sends the object without its managedFields, with the target's
// resource and the object's namespace whatever the builder guessed.
func TestEvaluateRequest(t *testing.T) {
	var got *admissionv1.AdmissionRequest
	ev := &Evaluator{Engine: loadEngine(t, map[string]string{"c.rego": colourPolicy}, ""), Build: func(tg Target, obj *unstructured.Unstructured, raw []byte) (*admissionv1.AdmissionRequest, error) {
		req, err := testBuild(tg, obj, raw)
		got = req
		return req, err
	}}
	if _, err := ev.Evaluate(context.Background(), podTarget, pod("a", "red")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got.Object.Raw), "managedFields") || !strings.Contains(string(got.Object.Raw), `"uid":"uid-a"`) {
		t.Errorf("object sent: %s", got.Object.Raw)
	}
	want := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	if got.Namespace != "shop" || got.Resource != want || *got.RequestResource != want {
		t.Errorf("namespace %q, resource %v, requestResource %v", got.Namespace, got.Resource, got.RequestResource)
	}
}
