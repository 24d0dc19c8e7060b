// Package podgen generates varied, realistic pods for the mutation tests:
// the property tests (idempotence, invariants) and the end-to-end test that
// sends the mutated pods to a real API server.
package podgen

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// images mixes official images that run as root, ones with a numeric
// non-root USER, and private registry references.
var images = []string{"img:1", "mysql:8.4", "redis:7.4", "busybox:1.36", "gcr.io/distroless/static:nonroot", "registry.example.com/team/api:2.3"}

// Pod builds a random pod: containers and init containers with partial,
// sometimes odd security contexts (root, privileged, added capabilities,
// drop lists without ALL, AppArmor fields), images that run as root, legacy
// seccomp and AppArmor annotations, and a random mix of Vault annotations.
// Everything is seeded, so a failure names a reproducible case. Some pods
// are invalid on purpose (privileged with allowPrivilegeEscalation: false):
// callers that need valid input let the API server sort them out.
func Pod(r *rand.Rand) map[string]any {
	pick := func(p float64) bool { return r.Float64() < p }
	saMount := map[string]any{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}

	container := func(name string) map[string]any {
		c := map[string]any{"name": name, "image": images[r.IntN(len(images))]}
		sc := map[string]any{}
		if pick(0.15) {
			sc["runAsUser"] = []int{0, 1000, 65532}[r.IntN(3)]
		}
		if pick(0.3) {
			sc["allowPrivilegeEscalation"] = pick(0.5)
		}
		if pick(0.1) {
			sc["privileged"] = pick(0.5)
		}
		if pick(0.2) {
			sc["readOnlyRootFilesystem"] = pick(0.5)
		}
		if pick(0.1) {
			sc["appArmorProfile"] = map[string]any{"type": "RuntimeDefault"}
		}
		caps := map[string]any{}
		if pick(0.3) {
			caps["drop"] = [][]any{{}, {"NET_RAW"}, {"ALL"}, {"NET_RAW", "ALL"}}[r.IntN(4)]
		}
		if pick(0.2) {
			caps["add"] = [][]any{{"NET_BIND_SERVICE"}, {"NET_ADMIN"}, {"SYS_ADMIN"}}[r.IntN(3)]
		}
		if len(caps) > 0 {
			sc["capabilities"] = caps
		}
		if len(sc) > 0 || pick(0.1) {
			c["securityContext"] = sc
		}
		if pick(0.8) {
			c["volumeMounts"] = []any{saMount}
		}
		return c
	}

	spec := map[string]any{}
	var names []string
	var containers []any
	for i := range 1 + r.IntN(4) {
		names = append(names, fmt.Sprintf("c%d", i))
		containers = append(containers, container(names[i]))
	}
	spec["containers"] = containers
	if n := r.IntN(3); n > 0 {
		var inits []any
		for i := range n {
			inits = append(inits, container(fmt.Sprintf("i%d", i)))
		}
		spec["initContainers"] = inits
	}
	podSC := map[string]any{}
	if pick(0.2) {
		podSC["runAsNonRoot"] = pick(0.5)
	}
	if pick(0.1) {
		podSC["runAsUser"] = []int{0, 1000}[r.IntN(2)]
	}
	if pick(0.2) {
		podSC["seccompProfile"] = map[string]any{"type": "RuntimeDefault"}
	}
	if len(podSC) > 0 {
		spec["securityContext"] = podSC
	}
	if pick(0.05) {
		spec["os"] = map[string]any{"name": "windows"}
	}

	if pick(0.03) {
		// HostProcess: a Windows pod without spec.os.
		spec["securityContext"] = map[string]any{"windowsOptions": map[string]any{"hostProcess": true}}
		spec["hostNetwork"] = true
		for _, c := range containers {
			delete(c.(map[string]any), "securityContext")
		}
	}

	ann := map[string]any{}
	if pick(0.1) {
		ann["container.apparmor.security.beta.kubernetes.io/"+names[0]] = []string{"runtime/default", "localhost/k8s-app", "unconfined"}[r.IntN(3)]
	}
	if pick(0.1) {
		ann["seccomp.security.alpha.kubernetes.io/pod"] = []string{"runtime/default", "localhost/profiles/audit.json", "unconfined"}[r.IntN(3)]
	}
	if pick(0.1) {
		ann["container.seccomp.security.alpha.kubernetes.io/"+names[r.IntN(len(names))]] = []string{"runtime/default", "localhost/profiles/app.json", "unconfined"}[r.IntN(3)]
	}
	if pick(0.7) {
		ann["vault.hashicorp.com/agent-inject"] = "true"
		if pick(0.9) {
			ann["vault.hashicorp.com/role"] = "web"
		}
		for i := range r.IntN(4) {
			s := fmt.Sprintf("s%d", i)
			if pick(0.3) {
				s = strings.ToUpper(s)
			}
			ann["vault.hashicorp.com/agent-inject-secret-"+s] = "kv/data/" + s
			if pick(0.3) {
				ann["vault.hashicorp.com/agent-inject-template-"+s] = `{{ with secret "kv/data/x" }}{{ .Data.data.k }}{{ end }}`
			}
			if pick(0.2) {
				ann["vault.hashicorp.com/agent-inject-file-"+s] = "sub/" + s + ".txt"
			}
			if pick(0.2) {
				ann["vault.hashicorp.com/secret-volume-path-"+s] = []string{"/etc/a", "/etc/b"}[r.IntN(2)]
			}
		}
		flags := []string{
			"agent-pre-populate", "agent-pre-populate-only", "agent-init-first", "agent-native-sidecar",
			"agent-inject-token", "agent-revoke-on-shutdown", "preserve-secret-case", "tls-skip-verify",
			"agent-cache-enable", "agent-enable-quit", "agent-auto-auth-exit-on-err", "agent-share-process-namespace",
		}
		for _, f := range flags {
			if pick(0.15) {
				ann["vault.hashicorp.com/"+f] = []string{"true", "false"}[r.IntN(2)]
			}
		}
		if pick(0.2) {
			ann["vault.hashicorp.com/agent-inject-containers"] = names[r.IntN(len(names))]
		}
		if pick(0.1) {
			ann["vault.hashicorp.com/tls-secret"] = "vault-tls"
		}
		if pick(0.1) {
			ann["vault.hashicorp.com/agent-inject-default-template"] = "json"
		}
		// The rest of vault-k8s's annotations, each now and then.
		values := map[string][]string{
			"agent-configmap":                   {"vault-agent-config"},
			"agent-extra-secret":                {"vault-agent-extra"},
			"agent-copy-volume-mounts":          {names[0]},
			"go-max-procs":                      {"2"},
			"auth-min-backoff":                  {"2s"},
			"auth-max-backoff":                  {"1m"},
			"template-max-connections-per-host": {"20"},
			"template-lease-renewal-threshold":  {"0.5"},
			"agent-disable-keep-alives":         {"templating"},
			"agent-telemetry-disable-hostname":  {"true"},
			"agent-json-patch":                  {`[{"op":"add","path":"/env/-","value":{"name":"EXTRA","value":"1"}}]`},
			"agent-init-json-patch":             {`[{"op":"replace","path":"/resources/limits/memory","value":"256Mi"}]`},
			"agent-cache-listener-port":         {"8300"},
			"agent-template-left-delim-s0":      {"[["},
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if pick(0.08) {
				ann["vault.hashicorp.com/"+k] = values[k][r.IntN(len(values[k]))]
			}
		}
	}
	meta := map[string]any{"name": "gen"}
	if len(ann) > 0 {
		meta["annotations"] = ann
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
}
