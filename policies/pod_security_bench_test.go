package policies_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies"
)

// benchContainer is a container as a restricted-clean Deployment would
// have it after the security_context mutation: probes, ports, resources,
// env and mounts included, so the pod is of realistic size.
func benchContainer(name string) map[string]any {
	return map[string]any{
		"name":  name,
		"image": "registry.example/team/" + name + ":1.4.2",
		"ports": []any{map[string]any{"name": "http", "containerPort": 8080, "protocol": "TCP"}},
		"env": []any{
			map[string]any{"name": "LOG_LEVEL", "value": "info"},
			map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}},
		},
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
			"limits":   map[string]any{"memory": "256Mi"},
		},
		"livenessProbe":  map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": "http"}, "periodSeconds": 10},
		"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/ready", "port": "http"}},
		"volumeMounts":   []any{map[string]any{"name": "config", "mountPath": "/etc/app", "readOnly": true}},
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false,
			"readOnlyRootFilesystem":   true,
			"capabilities":             map[string]any{"drop": []any{"ALL"}},
		},
	}
}

func benchPod(n int) map[string]any {
	containers := make([]any, n)
	for i := range containers {
		containers[i] = benchContainer(fmt.Sprintf("app-%d", i))
	}
	return map[string]any{
		"metadata": map[string]any{
			"name":        "web-7d9f8b6c5d-x2x4q",
			"labels":      map[string]any{"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8b6c5d"},
			"annotations": map[string]any{"kubectl.kubernetes.io/default-container": "app-0"},
		},
		"spec": map[string]any{
			"serviceAccountName": "web",
			"securityContext": map[string]any{
				"runAsNonRoot":   true,
				"runAsUser":      10001,
				"fsGroup":        10001,
				"seccompProfile": map[string]any{"type": "RuntimeDefault"},
			},
			"containers": containers,
			"volumes":    []any{map[string]any{"name": "config", "configMap": map[string]any{"name": "web"}}},
		},
	}
}

// BenchmarkPodSecurity measures pod_security on a restricted-clean pod
// with one container (typical) and with 30 containers:
//   - engine: a whole validating Evaluate restricted to pod_security, as the
//     webhook runs it (request to Rego input conversion included);
//   - query: the policy's prepared query alone on an input converted once.
//
// cpu-ns/op is the process CPU time per evaluation: on a shared machine the
// wall time also counts waiting for a CPU.
func BenchmarkPodSecurity(b *testing.B) {
	p := newPodSecurityPolicy(b, "")
	query := preparePodSecurityQuery(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name       string
		containers int
	}{{"typical", 1}, {"30-containers", 30}} {
		review := admissionReview("Pod", "default", benchPod(bc.containers))
		req := request(b, review)
		if d := p.evalRequest(b, req); !d.Allowed || len(d.Deny)+len(d.Warnings) != 0 {
			b.Fatalf("benchmark pod is not restricted-clean: %+v", d)
		}
		b.Run(bc.name+"/engine", func(b *testing.B) {
			b.ReportAllocs()
			start := processCPU(b)
			for b.Loop() {
				p.evalRequest(b, req)
			}
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
		})
		b.Run(bc.name+"/query", func(b *testing.B) {
			input := toValue(b, review)
			b.ReportAllocs()
			start := processCPU(b)
			for b.Loop() {
				if _, err := query.Eval(ctx, rego.EvalParsedInput(input)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// preparePodSecurityQuery prepares pod_security's deny and warn the way the
// engine does.
func preparePodSecurityQuery(b *testing.B) rego.PreparedEvalQuery {
	return prepareBuiltinQuery(b, "deny := data.portcullis.pod_security.deny; warn := data.portcullis.pod_security.warn")
}

// prepareBuiltinQuery prepares query over the built-in policies the way the
// engine does (one compiler, the default config in a store read as AST).
func prepareBuiltinQuery(b *testing.B, query string) rego.PreparedEvalQuery {
	b.Helper()
	raw, err := fs.ReadFile(policies.FS, policies.ConfigFile)
	if err != nil {
		b.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		b.Fatal(err)
	}
	opts := []func(*rego.Rego){
		rego.Query(query),
		rego.Store(inmem.NewFromObjectWithOpts(map[string]any{"portcullis": map[string]any{"config": cfg}},
			inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))),
		rego.StoreReadAST(true),
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
		b.Fatal(err)
	}
	q, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// toValue converts a JSON-shaped Go value to an ast.Value through JSON.
func toValue(b *testing.B, v any) ast.Value {
	b.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	val, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	return val
}

// processCPU is the user and system CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
