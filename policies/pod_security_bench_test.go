package policies_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
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

// BenchmarkPodSecurity measures one evaluation of pod_security (deny and
// warn, restricted) on an input already converted to an ast.Value, the way
// the engine prepares queries once and converts each request once.
func BenchmarkPodSecurity(b *testing.B) {
	p := newPodSecurityPolicy(b, nil)
	for _, bc := range []struct {
		name       string
		containers int
	}{{"typical", 1}, {"30-containers", 30}} {
		b.Run(bc.name, func(b *testing.B) {
			review := toValue(b, admissionReview("Pod", "default", benchPod(bc.containers)))
			if d := p.evalValue(b, review); len(d.Deny)+len(d.Warn) != 0 {
				b.Fatalf("benchmark pod is not restricted-clean: %+v", d)
			}
			ctx := context.Background()
			b.ReportAllocs()
			start := processCPU(b)
			for b.Loop() {
				if _, err := p.query.Eval(ctx, rego.EvalParsedInput(review)); err != nil {
					b.Fatal(err)
				}
			}
			// On a shared machine wall time includes waiting for a CPU;
			// the CPU time the process used per evaluation does not.
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the user and system CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
