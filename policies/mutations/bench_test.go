package mutations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/portcullis/portcullis/policies/engine"
)

// benchPod is a Vault-annotated pod with n application containers, each
// with the service account mount, resources and a partial security context,
// about the size of a typical Deployment's pod (n=2) or a large one (n=30).
func benchPod(n int) []byte {
	var containers []any
	for i := range n {
		containers = append(containers, map[string]any{
			"name":  fmt.Sprintf("app-%d", i),
			"image": "registry.example/app:1.4.2",
			"ports": []any{map[string]any{"containerPort": 8080 + i, "name": fmt.Sprintf("http-%d", i)}},
			"env": []any{
				map[string]any{"name": "LOG_LEVEL", "value": "info"},
				map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}},
			},
			"resources": map[string]any{
				"requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
				"limits":   map[string]any{"memory": "256Mi"},
			},
			"securityContext": map[string]any{"runAsUser": 1000},
			"volumeMounts": []any{map[string]any{
				"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true,
			}},
		})
	}
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":      "web-7d9f8c6b5-x2x4z",
			"namespace": "shop",
			"labels":    map[string]any{"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8c6b5"},
			"annotations": map[string]any{
				"vault.hashicorp.com/agent-inject":            "true",
				"vault.hashicorp.com/role":                    "web",
				"vault.hashicorp.com/agent-inject-secret-db":  "database/creds/web",
				"vault.hashicorp.com/agent-inject-secret-api": "kv/data/web/api",
				"vault.hashicorp.com/agent-inject-template-api": `{{ with secret "kv/data/web/api" }}` +
					`{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}` + "\n" + `{{ end }}{{ end }}`,
			},
		},
		"spec": map[string]any{
			"serviceAccountName": "web",
			"containers":         containers,
			"volumes": []any{map[string]any{"name": "kube-api-access-x", "projected": map[string]any{"sources": []any{
				map[string]any{"serviceAccountToken": map[string]any{"path": "token", "expirationSeconds": 3607}},
			}}}},
		},
	}
	b, err := json.Marshal(pod)
	if err != nil {
		panic(err)
	}
	return b
}

func benchmarkMutate(b *testing.B, containers int, again bool) {
	for _, only := range [][]string{nil, {"vault_agent"}, {"security_context"}} {
		name := "all"
		if only != nil {
			name = only[0]
		}
		b.Run(name, func(b *testing.B) { benchmarkPolicies(b, containers, again, only) })
	}
}

func benchmarkPolicies(b *testing.B, containers int, again bool, only []string) {
	eng := newEngine(b)
	pod := benchPod(containers)
	if again {
		_, pod = mutate(b, eng, pod, "shop") // measure the no-op pass over an injected pod
	}
	req := podRequest(pod, "shop")
	ctx := context.Background()
	b.SetBytes(int64(len(pod)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dec, err := eng.Evaluate(ctx, engine.Mutating, req, engine.Options{Policies: only})
		if err != nil {
			b.Fatal(err)
		}
		if !again && only == nil && len(dec.Patch) == 0 {
			b.Fatal("no patch")
		}
		if again && len(dec.Patch) != 0 {
			b.Fatal("patch on the second pass")
		}
	}
}

// BenchmarkMutateTypicalPod: both mutating policies on a 2-container pod
// asking for Vault injection (security defaults and injection).
func BenchmarkMutateTypicalPod(b *testing.B) { benchmarkMutate(b, 2, false) }

// BenchmarkMutate30ContainerPod: the same on a 30-container pod.
func BenchmarkMutate30ContainerPod(b *testing.B) { benchmarkMutate(b, 30, false) }

// BenchmarkMutateTypicalPodInjected: reinvocation on an already mutated pod.
func BenchmarkMutateTypicalPodInjected(b *testing.B) { benchmarkMutate(b, 2, true) }

// BenchmarkMutate30ContainerPodInjected: reinvocation on the mutated 30-container pod.
func BenchmarkMutate30ContainerPodInjected(b *testing.B) { benchmarkMutate(b, 30, true) }
