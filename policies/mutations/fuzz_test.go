package mutations_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/policies/mutations/podgen"
)

// fuzzPod builds a pod from fuzzed fields over a generated base (podgen.Pod,
// seeded by seed: security contexts, Vault annotations and flags): the
// first container's and a volume's name, the number of extra containers, a
// Vault secret's name and path, and one arbitrary annotation (the fuzzer
// finds the vault.hashicorp.com/ keys from the seeds). It returns nil when
// the fuzzed names collide in the input, which the API would refuse anyway.
func fuzzPod(seed uint64, podName, containerName, volumeName string, extra uint8, secretName, secretPath, annKey, annValue string) map[string]any {
	r := rand.New(rand.NewPCG(seed, 7))
	pod := podgen.Pod(r)
	meta := pod["metadata"].(map[string]any)
	spec := pod["spec"].(map[string]any)
	meta["name"] = podName
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	if secretName != "" {
		ann["vault.hashicorp.com/agent-inject-secret-"+secretName] = secretPath
	}
	if annKey != "" {
		ann[annKey] = annValue
	}
	if len(ann) > 0 {
		meta["annotations"] = ann
	}

	containers := spec["containers"].([]any)
	first := containers[0].(map[string]any)
	for range int(extra % 8) {
		c := map[string]any{}
		for k, v := range first {
			c[k] = v
		}
		c["name"] = fmt.Sprintf("x%d", len(containers))
		containers = append(containers, c)
	}
	first["name"] = containerName
	spec["containers"] = containers
	if volumeName != "" {
		spec["volumes"] = []any{map[string]any{"name": volumeName, "emptyDir": map[string]any{}}}
		first["volumeMounts"] = append(append([]any{}, toSlice(first["volumeMounts"])...),
			map[string]any{"name": volumeName, "mountPath": "/data"})
	}

	seen := map[string]bool{}
	for _, key := range []string{"initContainers", "containers"} {
		for _, c := range toSlice(spec[key]) {
			name, _ := c.(map[string]any)["name"].(string)
			if seen[name] {
				return nil
			}
			seen[name] = true
		}
	}
	return pod
}

func toSlice(v any) []any { s, _ := v.([]any); return s }

// FuzzMutationIdempotent: whatever the pod, the built-in mutating policies
// give a pod that mutates again to an empty patch (reinvocation, or a
// second apply, adds nothing), with no container, volume or mount
// duplicated and every user security context value kept (checkInvariants).
func FuzzMutationIdempotent(f *testing.F) {
	f.Add(uint64(0), "web", "app", "", uint8(0), "", "", "", "", false)
	f.Add(uint64(1), "web", "app", "data", uint8(2), "db", "kv/data/db", "vault.hashicorp.com/agent-inject", "true", false)
	f.Add(uint64(2), "", "vault-agent", "vault-secrets", uint8(1), "DB", "kv/data/db", "vault.hashicorp.com/agent-init-first", "true", true)
	f.Add(uint64(3), "x", "vault-agent-init", "vault-agent-sa-token", uint8(7), "a.b", "", "vault.hashicorp.com/agent-inject-status", "injected", false)
	f.Add(uint64(4), "web", "app", "vault-tls-secrets", uint8(3), "s", "kv/s", "vault.hashicorp.com/tls-secret", "vault-tls", true)
	f.Add(uint64(5), "web", "app", "", uint8(0), "../x", "kv/x", "vault.hashicorp.com/agent-inject-file-../x", "../../etc/passwd", false)
	f.Add(uint64(6), "web", "app", "", uint8(0), "s", "kv/s", "vault.hashicorp.com/agent-inject-containers", "app,nope,,", true)
	f.Add(uint64(7), "web", "", "", uint8(1), "", "", "container.apparmor.security.beta.kubernetes.io/", "runtime/default", false)
	f.Add(uint64(8), "web", "app", "", uint8(0), "s", "kv/s", "vault.hashicorp.com/agent-service-account-token-volume-name", "data", true)
	engines := map[bool]func() []byte{
		false: nil,
		true: func() []byte {
			return []byte("policies: {security_context: {run_as_user: 10001, defaults: {read_only_root_filesystem: true, apparmor_profile: true}}, vault_agent: {native_sidecar: true}}")
		},
	}
	built := map[bool]*engine.Engine{}
	for allOn, cfg := range engines {
		var configs [][]byte
		if cfg != nil {
			configs = append(configs, cfg())
		}
		built[allOn] = newEngine(f, configs...)
	}
	f.Fuzz(func(t *testing.T, seed uint64, podName, containerName, volumeName string, extra uint8,
		secretName, secretPath, annKey, annValue string, allOn bool) {
		pod := fuzzPod(seed, podName, containerName, volumeName, extra, secretName, secretPath, annKey, annValue)
		if pod == nil {
			return
		}
		src, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		eng := built[allOn]
		ns := []string{"default", "shop", "kube-public"}[seed%3]
		_, once := mutate(t, eng, src, ns)
		dec, _ := mutate(t, eng, once, ns)
		if len(dec.Patch) != 0 {
			t.Fatalf("second pass changed the pod: %+v\ninput: %s\nafter one pass: %s", dec.Patch, src, once)
		}
		checkInvariants(t, seed, src, once)
	})
}

// FuzzVaultAnnotationDecoders feeds arbitrary values to the vault_agent
// annotations Rego decodes (the JSON patches applied to the agents, a
// telemetry value read as JSON, durations and numbers): the policy must
// inject or refuse with a message, never fail with an evaluation error (a
// strict built-in error would admit the pod unchanged), and what it injects
// must be stable.
func FuzzVaultAnnotationDecoders(f *testing.F) {
	f.Add(`[{"op":"add","path":"/env/-","value":{"name":"X","value":"1"}}]`, `[{"op":"replace","path":"/resources/limits/memory","value":"1Gi"}]`, `true`, "2s")
	f.Add(`[{"op":"remove","path":"/env/0"},{"op":"replace","path":"/env/0","value":{}}]`, `[{"op":"test","path":"/image","value":"x"}]`, `["a"]`, "1h2m")
	f.Add(`[{"op":"move","from":"/args","path":"/command"}]`, `not json`, `{"a":1}`, "five")
	f.Add(`[{"op":"copy","from":"/volumeMounts/0","path":"/volumeMounts/-"}]`, `[{"op":"add","path":"/securityContext/runAsUser","value":0}]`, `3.5`, "-1.5h")
	f.Add(`[]`, `[{"op":"add","path":"/env/99","value":{}}]`, `null`, "0")
	eng := newEngine(f)
	f.Fuzz(func(t *testing.T, patch, initPatch, telemetry, backoff string) {
		pod := map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "web", "annotations": map[string]any{
				"vault.hashicorp.com/agent-inject":                      "true",
				"vault.hashicorp.com/role":                              "web",
				"vault.hashicorp.com/agent-inject-secret-db":            "database/creds/web",
				"vault.hashicorp.com/agent-json-patch":                  patch,
				"vault.hashicorp.com/agent-init-json-patch":             initPatch,
				"vault.hashicorp.com/agent-telemetry-disable-hostname":  telemetry,
				"vault.hashicorp.com/auth-min-backoff":                  backoff,
				"vault.hashicorp.com/template-lease-renewal-threshold":  backoff,
				"vault.hashicorp.com/template-max-connections-per-host": backoff,
			}},
			"spec": map[string]any{"serviceAccountName": "web", "containers": []any{map[string]any{"name": "app", "image": "registry.example.com/app:1.0"}}},
		}
		src, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		_, once := mutate(t, eng, src, "shop") // fails the test on any policy error
		if dec, _ := mutate(t, eng, once, "shop"); len(dec.Patch) != 0 {
			t.Fatalf("second pass changed the pod: %+v", dec.Patch)
		}
	})
}
