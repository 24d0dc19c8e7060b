package policies_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies"
)

// podSecurityPolicy evaluates the pod_security policy from the embedded
// policy set, prepared once, straight through OPA's rego package (what the
// engine does, without the engine).
type podSecurityPolicy struct {
	query rego.PreparedEvalQuery
}

// psViolation is one entry of pod_security's deny or warn set.
type psViolation struct {
	Msg   string `json:"msg"`
	Check string `json:"check"`
	Level string `json:"level"`
}

// psDecision is what pod_security returned for one request.
type psDecision struct {
	Deny []psViolation
	Warn []psViolation
}

// newPodSecurityPolicy compiles every non-test module of policies.FS, with
// config.yaml merged with override (objects merge key by key, as --config
// does) visible as data.portcullis.config.
func newPodSecurityPolicy(tb testing.TB, override map[string]any) *podSecurityPolicy {
	tb.Helper()
	raw, err := fs.ReadFile(policies.FS, policies.ConfigFile)
	if err != nil {
		tb.Fatalf("read config: %v", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		tb.Fatalf("parse config: %v", err)
	}
	cfg = mergeConfig(cfg, override)

	opts := []func(*rego.Rego){
		rego.Query(`result := {"deny": data.portcullis.pod_security.deny, "warn": data.portcullis.pod_security.warn}`),
		rego.Store(inmem.NewFromObject(map[string]any{"portcullis": map[string]any{"config": cfg}})),
	}
	err = fs.WalkDir(policies.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(policies.FS, path)
		if err != nil {
			return err
		}
		opts = append(opts, rego.Module(path, string(src)))
		return nil
	})
	if err != nil {
		tb.Fatalf("load policies: %v", err)
	}
	query, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatalf("prepare pod_security: %v", err)
	}
	return &podSecurityPolicy{query: query}
}

// mergeConfig merges over into base: objects key by key, anything else replaced.
func mergeConfig(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = mergeConfig(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// evalValue evaluates the policy on an AdmissionReview already converted to
// an ast.Value.
func (p *podSecurityPolicy) evalValue(tb testing.TB, review ast.Value) psDecision {
	tb.Helper()
	rs, err := p.query.Eval(context.Background(), rego.EvalParsedInput(review))
	if err != nil {
		tb.Fatalf("evaluate pod_security: %v", err)
	}
	if len(rs) != 1 {
		tb.Fatalf("evaluate pod_security: %d results, want 1", len(rs))
	}
	raw, err := json.Marshal(rs[0].Bindings["result"])
	if err != nil {
		tb.Fatalf("encode result: %v", err)
	}
	var d psDecision
	if err := json.Unmarshal(raw, &d); err != nil {
		tb.Fatalf("decode result %s: %v", raw, err)
	}
	for _, list := range [][]psViolation{d.Deny, d.Warn} {
		sort.Slice(list, func(i, j int) bool { return list[i].Check < list[j].Check })
	}
	return d
}

// eval evaluates the policy on an AdmissionReview given as a Go value
// (map[string]any trees or anything encoding/json accepts).
func (p *podSecurityPolicy) eval(tb testing.TB, review any) psDecision {
	tb.Helper()
	return p.evalValue(tb, toValue(tb, review))
}

// toValue converts a JSON-shaped Go value to an ast.Value through its JSON
// encoding, so Go structs are seen exactly as the apiserver would send them.
func toValue(tb testing.TB, v any) ast.Value {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("encode input: %v", err)
	}
	val, err := ast.ValueFromReader(strings.NewReader(string(raw)))
	if err != nil {
		tb.Fatalf("convert input: %v", err)
	}
	return val
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

// admissionReview builds the AdmissionReview the apiserver sends for obj of
// the given kind ("Pod" or a workload kind) in namespace.
func admissionReview(kind, namespace string, obj map[string]any) map[string]any {
	resource := "pods"
	if w, ok := workloadKinds[kind]; ok {
		resource = w.resource
	}
	return map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "0a1b2c",
			"kind":      map[string]any{"group": "", "version": "v1", "kind": kind},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": resource},
			"operation": "CREATE",
			"namespace": namespace,
			"userInfo":  map[string]any{"username": "alice"},
			"object":    obj,
		},
	}
}
