package policies_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"sort"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// podSecurityPolicy evaluates requests with the engine, loaded from the
// embedded policy set and restricted to the pod_security policy.
type podSecurityPolicy struct {
	engine *engine.Engine
}

// psViolation is one pod_security violation as the engine reports it.
type psViolation struct {
	Msg         string
	Check       string
	Level       string
	Enforcement engine.Enforcement
}

// psDecision is the engine's decision restricted to what the tests compare.
type psDecision struct {
	Allowed  bool
	Deny     []psViolation
	Warnings []string
}

// newPodSecurityPolicy loads the embedded policies with config.yaml and then
// overrideYAML (may be empty) merged over it, as --config does.
func newPodSecurityPolicy(tb testing.TB, overrideYAML string) *podSecurityPolicy {
	tb.Helper()
	defaults, err := fs.ReadFile(policies.FS, policies.ConfigFile)
	if err != nil {
		tb.Fatalf("read config: %v", err)
	}
	configs := [][]byte{defaults}
	if overrideYAML != "" {
		configs = append(configs, []byte(overrideYAML))
	}
	reg, err := engine.Load(context.Background(), engine.Source{Policies: policies.FS, Configs: configs})
	if err != nil {
		tb.Fatalf("load policies: %v", err)
	}
	if reg.Policy("pod_security") == nil {
		tb.Fatal("load policies: pod_security not loaded")
	}
	return &podSecurityPolicy{engine: engine.New(reg, nil)}
}

// request decodes an AdmissionReview built as a Go map into the typed
// request the engine takes (as the webhook's decoder would).
func request(tb testing.TB, review map[string]any) *admissionv1.AdmissionRequest {
	tb.Helper()
	raw, err := json.Marshal(review["request"])
	if err != nil {
		tb.Fatalf("encode request: %v", err)
	}
	var req admissionv1.AdmissionRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		tb.Fatalf("decode request: %v", err)
	}
	return &req
}

// evalRequest evaluates the validating phase with only pod_security.
func (p *podSecurityPolicy) evalRequest(tb testing.TB, req *admissionv1.AdmissionRequest) psDecision {
	tb.Helper()
	dec, err := p.engine.Evaluate(context.Background(), engine.Validating, req, engine.Options{Policies: []string{"pod_security"}})
	if err != nil {
		tb.Fatalf("evaluate: %v", err)
	}
	if len(dec.Errors) > 0 {
		tb.Fatalf("evaluate pod_security: %v", dec.Errors[0].Err)
	}
	d := psDecision{Allowed: dec.Allowed, Warnings: dec.Warnings}
	for _, v := range dec.Violations {
		if v.Policy != "pod_security" {
			tb.Fatalf("violation from policy %q", v.Policy)
		}
		check, _ := v.Details["check"].(string)
		level, _ := v.Details["level"].(string)
		d.Deny = append(d.Deny, psViolation{Msg: v.Message, Check: check, Level: level, Enforcement: v.Enforcement})
	}
	sort.Slice(d.Deny, func(i, j int) bool { return d.Deny[i].Check < d.Deny[j].Check })
	return d
}

// eval evaluates an AdmissionReview given as a Go map.
func (p *podSecurityPolicy) eval(tb testing.TB, review map[string]any) psDecision {
	tb.Helper()
	return p.evalRequest(tb, request(tb, review))
}

// workloadKinds maps a kind to its resource and how its object wraps a pod template.
var workloadKinds = map[string]struct {
	resource string
	wrap     func(template map[string]any) map[string]any
}{
	"Deployment":            {"deployments", specTemplate},
	"ReplicaSet":            {"replicasets", specTemplate},
	"StatefulSet":           {"statefulsets", specTemplate},
	"DaemonSet":             {"daemonsets", specTemplate},
	"Job":                   {"jobs", specTemplate},
	"ReplicationController": {"replicationcontrollers", specTemplate},
	"CronJob": {"cronjobs", func(t map[string]any) map[string]any {
		return map[string]any{"spec": map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{"template": t}}}}
	}},
	"PodTemplate": {"podtemplates", func(t map[string]any) map[string]any {
		return map[string]any{"template": t}
	}},
}

func specTemplate(t map[string]any) map[string]any {
	return map[string]any{"spec": map[string]any{"template": t}}
}

// admissionReview builds the AdmissionReview the apiserver sends for
// creating obj, of the given kind ("Pod" or a workload kind), in namespace.
func admissionReview(kind, namespace string, obj map[string]any) map[string]any {
	resource := "pods"
	if w, ok := workloadKinds[kind]; ok {
		resource = w.resource
	}
	group := ""
	switch kind {
	case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet":
		group = "apps"
	case "Job", "CronJob":
		group = "batch"
	}
	gvk := map[string]any{"group": group, "version": "v1", "kind": kind}
	return map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "705ab4f5-6393-11e8-b7cc-42010a800002",
			"kind":      gvk,
			"resource":  map[string]any{"group": group, "version": "v1", "resource": resource},
			"operation": "CREATE",
			"namespace": namespace,
			"userInfo":  map[string]any{"username": "alice"},
			"object":    obj,
		},
	}
}
