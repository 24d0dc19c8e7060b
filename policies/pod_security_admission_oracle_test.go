package policies_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/pod-security-admission/admission"
	admissionapi "k8s.io/pod-security-admission/admission/api"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/metrics"
	"k8s.io/pod-security-admission/policy"
)

// TestPodSecurityOracleAdmission compares whole admission decisions with
// upstream's admission.Admission (the code behind the PodSecurity admission
// plugin and webhook), which owns what the check registry does not: which
// operations and subresources are evaluated, which Pod updates are skipped
// as unable to change the security posture, exemptions by namespace,
// username and runtime class, and the pod templates of workloads (which
// upstream only warns about and our policy denies by default).
//
// Requests upstream answers by design differently are not generated: Pod
// subresources outside upstream's ignored list other than
// ephemeralcontainers (upstream evaluates them, fail-safe; we ignore them,
// as no such subresource can change images or add containers) and updates
// without an old object (upstream errors; we evaluate).
func TestPodSecurityOracleAdmission(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 200
	}
	exemptions := admissionapi.PodSecurityExemptions{
		Namespaces:     []string{"exempt-ns"},
		Usernames:      []string{"system:serviceaccount:ci:deployer"},
		RuntimeClasses: []string{"kata"},
	}
	const exemptionsYAML = `
    exemptions:
      namespaces: [exempt-ns]
      usernames: ["system:serviceaccount:ci:deployer"]
      runtime_classes: [kata]
`
	g := &podGenerator{r: rand.New(rand.NewPCG(20260521, 1))}
	disagreements := 0
	// counts[category] = {allowed, denied} by upstream, to show coverage.
	counts := map[string][2]int{}
	for _, level := range []api.Level{api.LevelBaseline, api.LevelRestricted} {
		upstream := newUpstreamAdmission(t, level, exemptions)
		ours := newPodSecurityPolicy(t, fmt.Sprintf("policies:\n  pod_security:\n    level: %s\n%s", level, exemptionsYAML))
		for i := range n {
			sc := g.admissionScenario()
			want := upstreamDecision(t, upstream, level, sc)
			c := counts[sc.category]
			if want.allowed {
				c[0]++
			} else {
				c[1]++
			}
			counts[sc.category] = c
			got := ours.eval(t, sc.review)
			var gotDetail []string
			for _, v := range slices.SortedFunc(slices.Values(got.Deny), byUpstreamOrder) {
				gotDetail = append(gotDetail, v.Msg)
			}
			if got.Allowed == want.allowed && strings.Join(gotDetail, ", ") == want.detail && len(got.Warnings) == 0 {
				continue
			}
			disagreements++
			if disagreements <= 10 {
				raw, _ := json.Marshal(sc.review["request"])
				t.Errorf("scenario %d at %s (%s): disagreement\nrequest: %s\nupstream: allowed=%v %q\nours:     allowed=%v %q warnings=%q",
					i, level, sc.what, raw, want.allowed, want.detail, got.Allowed, strings.Join(gotDetail, ", "), got.Warnings)
			}
		}
	}
	for _, category := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("%-50s upstream allowed %4d, denied %4d", category, counts[category][0], counts[category][1])
	}
	if disagreements > 0 {
		t.Errorf("%d disagreements in %d scenarios", disagreements, 2*n)
	}
}

// byUpstreamOrder orders violations as upstream aggregates them: baseline
// checks, then restricted checks, each sorted by ID.
func byUpstreamOrder(a, b psViolation) int {
	if a.Level != b.Level {
		return strings.Compare(a.Level, b.Level) // "baseline" < "restricted"
	}
	return strings.Compare(a.Check, b.Check)
}

type admissionScenario struct {
	what     string
	category string
	review   map[string]any
	attrs    *api.AttributesRecord
}

type upstreamResult struct {
	allowed bool
	detail  string // the forbidden detail (denied pods) or would-violate detail (templates)
}

func newUpstreamAdmission(t *testing.T, level api.Level, exemptions admissionapi.PodSecurityExemptions) *admission.Admission {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &admission.Admission{
		Configuration: &admissionapi.PodSecurityConfiguration{
			Defaults: admissionapi.PodSecurityDefaults{
				Enforce: string(level), EnforceVersion: "latest",
				Audit: "privileged", AuditVersion: "latest",
				Warn: string(level), WarnVersion: "latest",
			},
			Exemptions: exemptions,
		},
		Evaluator:       evaluator,
		Metrics:         noopRecorder{},
		NamespaceGetter: namespaceGetter{},
		PodLister:       podLister{},
	}
	if err := a.CompleteConfiguration(); err != nil {
		t.Fatal(err)
	}
	if err := a.ValidateConfiguration(); err != nil {
		t.Fatal(err)
	}
	return a
}

func upstreamDecision(t *testing.T, a *admission.Admission, level api.Level, sc admissionScenario) upstreamResult {
	t.Helper()
	resp := a.Validate(context.Background(), sc.attrs)
	prefix := fmt.Sprintf("violates PodSecurity %q: ", string(level)+":latest")
	if !resp.Allowed {
		msg := resp.Result.Message
		i := strings.Index(msg, prefix)
		if i < 0 {
			t.Fatalf("%s: upstream denied with %q", sc.what, msg)
		}
		return upstreamResult{allowed: false, detail: msg[i+len(prefix):]}
	}
	if sc.attrs.Resource.Resource == "pods" {
		if len(resp.Warnings) > 0 {
			t.Fatalf("%s: upstream warned on an allowed pod: %q", sc.what, resp.Warnings)
		}
		return upstreamResult{allowed: true}
	}
	// Workloads: upstream admits and warns; our policy denies by default.
	switch len(resp.Warnings) {
	case 0:
		return upstreamResult{allowed: true}
	case 1:
		warnPrefix := fmt.Sprintf("would violate PodSecurity %q: ", string(level)+":latest")
		if !strings.HasPrefix(resp.Warnings[0], warnPrefix) {
			t.Fatalf("%s: upstream warned %q", sc.what, resp.Warnings[0])
		}
		return upstreamResult{allowed: false, detail: strings.TrimPrefix(resp.Warnings[0], warnPrefix)}
	default:
		t.Fatalf("%s: upstream warnings %q", sc.what, resp.Warnings)
		return upstreamResult{}
	}
}

// workloadTypes are the typed objects upstream decodes each kind into.
var workloadTypes = map[string]func() runtime.Object{
	"Deployment":            func() runtime.Object { return &appsv1.Deployment{} },
	"ReplicaSet":            func() runtime.Object { return &appsv1.ReplicaSet{} },
	"StatefulSet":           func() runtime.Object { return &appsv1.StatefulSet{} },
	"DaemonSet":             func() runtime.Object { return &appsv1.DaemonSet{} },
	"Job":                   func() runtime.Object { return &batchv1.Job{} },
	"CronJob":               func() runtime.Object { return &batchv1.CronJob{} },
	"ReplicationController": func() runtime.Object { return &corev1.ReplicationController{} },
	"PodTemplate":           func() runtime.Object { return &corev1.PodTemplate{} },
	"Pod":                   func() runtime.Object { return &corev1.Pod{} },
}

// admissionScenario generates one request: a Pod (create, update with or
// without image changes, ephemeral containers, ignored subresources) or a
// workload, in a namespace, by a user, with a runtime class, some exempt.
func (g *podGenerator) admissionScenario() admissionScenario {
	pod := g.pod()
	spec := pod["spec"].(map[string]any)
	switch g.r.IntN(6) {
	case 0:
		spec["runtimeClassName"] = "kata"
	case 1:
		spec["runtimeClassName"] = "gvisor"
	}
	namespace, username := "default", "alice"
	if g.chance(0.08) {
		namespace = "exempt-ns"
	}
	if g.chance(0.08) {
		username = "system:serviceaccount:ci:deployer"
	}

	kind := "Pod"
	if g.chance(0.3) {
		kinds := slices.Sorted(maps.Keys(workloadKinds))
		kind = kinds[g.r.IntN(len(kinds))]
	}
	operation, subresource := "CREATE", ""
	var oldPod map[string]any
	what := kind
	if g.chance(0.5) {
		operation = "UPDATE"
		if kind == "Pod" {
			oldPod, what = g.oldPod(pod)
			switch x := g.r.IntN(10); {
			case x < 2:
				subresource = "ephemeralcontainers"
			case x < 3:
				subresource = g.oneOf("status", "binding", "eviction", "exec", "attach", "log", "portforward", "proxy").(string)
			}
		} else {
			oldPod = pod
			if g.chance(0.2) {
				subresource = g.oneOf("status", "scale").(string)
			}
		}
	}
	category := fmt.Sprintf("%s %s", operation, what)
	if kind != "Pod" {
		category = operation + " workload"
	}
	switch subresource {
	case "":
	case "ephemeralcontainers":
		category += " /ephemeralcontainers"
	default:
		category += " /ignored-subresource"
	}
	if namespace == "exempt-ns" || username != "alice" || spec["runtimeClassName"] == "kata" {
		category += " (exempt)"
	}
	what = fmt.Sprintf("%s %s/%s ns=%s user=%s", operation, what, subresource, namespace, username)

	obj, old := pod, oldPod
	if kind != "Pod" {
		obj = workloadKinds[kind].wrap(pod)
		if old != nil {
			old = workloadKinds[kind].wrap(oldPod)
		}
	}
	obj = withMeta(obj, kind, namespace)
	review := admissionReview(kind, namespace, obj)
	req := review["request"].(map[string]any)
	req["operation"], req["userInfo"] = operation, map[string]any{"username": username}
	if subresource != "" {
		req["subResource"] = subresource
	}
	if old != nil {
		req["oldObject"] = withMeta(old, kind, namespace)
	}

	resource := req["resource"].(map[string]any)
	gvk := req["kind"].(map[string]any)
	attrs := &api.AttributesRecord{
		Name:        "generated",
		Namespace:   namespace,
		Kind:        schema.GroupVersionKind{Group: gvk["group"].(string), Version: "v1", Kind: kind},
		Resource:    schema.GroupVersionResource{Group: resource["group"].(string), Version: "v1", Resource: resource["resource"].(string)},
		Subresource: subresource,
		Operation:   admissionv1.Operation(operation),
		Object:      decodeTyped(kind, obj),
		Username:    username,
	}
	if old != nil {
		attrs.OldObject = decodeTyped(kind, req["oldObject"].(map[string]any))
	}
	return admissionScenario{what: what, category: category, review: review, attrs: attrs}
}

// oldPod derives the pod before an update: identical, or with the security
// settings changed but the same images (not significant to upstream), or
// with an image, a container or an ephemeral container changed.
func (g *podGenerator) oldPod(pod map[string]any) (map[string]any, string) {
	var old map[string]any
	raw, _ := json.Marshal(pod)
	_ = json.Unmarshal(raw, &old)
	spec := old["spec"].(map[string]any)
	lists := func(field string) []any { l, _ := spec[field].([]any); return l }
	switch g.r.IntN(6) {
	case 0:
		return old, "update unchanged"
	case 1:
		delete(spec, "securityContext")
		for _, f := range []string{"initContainers", "containers", "ephemeralContainers"} {
			for _, c := range lists(f) {
				delete(c.(map[string]any), "securityContext")
			}
		}
		return old, "update same images"
	case 2:
		if l := lists("containers"); len(l) > 0 {
			l[g.r.IntN(len(l))].(map[string]any)["image"] = "registry.example/app:0"
		}
		return old, "update image changed"
	case 3:
		if l := lists("initContainers"); len(l) > 0 {
			spec["initContainers"] = l[:len(l)-1]
		} else {
			spec["containers"] = append(lists("containers"), map[string]any{"name": "removed", "image": "x"})
		}
		return old, "update container count changed"
	case 4:
		if l := lists("ephemeralContainers"); len(l) > 0 {
			spec["ephemeralContainers"] = l[:len(l)-1]
		}
		return old, "update ephemeral container added"
	default:
		if l := lists("ephemeralContainers"); len(l) > 0 {
			l[0].(map[string]any)["image"] = "registry.example/debug:0"
		}
		return old, "update ephemeral image changed"
	}
}

func withMeta(obj map[string]any, kind, namespace string) map[string]any {
	out := maps.Clone(obj)
	meta := map[string]any{"name": "generated", "namespace": namespace}
	if m, ok := obj["metadata"].(map[string]any); ok {
		meta = maps.Clone(m)
		meta["name"], meta["namespace"] = "generated", namespace
	}
	out["metadata"] = meta
	out["apiVersion"], out["kind"] = "v1", kind
	return out
}

func decodeTyped(kind string, obj map[string]any) runtime.Object {
	raw, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	typed := workloadTypes[kind]()
	if err := json.Unmarshal(raw, typed); err != nil {
		panic(fmt.Sprintf("decode %s: %v", kind, err))
	}
	return typed
}

type noopRecorder struct{}

func (noopRecorder) RecordEvaluation(metrics.Decision, api.LevelVersion, metrics.Mode, api.Attributes) {
}
func (noopRecorder) RecordExemption(api.Attributes)   {}
func (noopRecorder) RecordError(bool, api.Attributes) {}

type namespaceGetter struct{}

// GetNamespace returns an unlabelled namespace, so the configured defaults apply.
func (namespaceGetter) GetNamespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
}

type podLister struct{}

func (podLister) ListPods(context.Context, string) ([]*corev1.Pod, error) { return nil, nil }
