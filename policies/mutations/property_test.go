package mutations_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// genPod builds a random pod: containers and init containers with partial,
// sometimes odd security contexts (root, privileged, added capabilities,
// drop lists without ALL, AppArmor fields) and a random mix of Vault
// annotations. Everything is seeded, so a failure names a reproducible case.
func genPod(r *rand.Rand) map[string]any {
	pick := func(p float64) bool { return r.Float64() < p }
	saMount := map[string]any{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}

	container := func(name string) map[string]any {
		c := map[string]any{"name": name, "image": "img:1"}
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

	ann := map[string]any{}
	if pick(0.1) {
		ann["container.apparmor.security.beta.kubernetes.io/"+names[0]] = "runtime/default"
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
	}
	meta := map[string]any{"name": "gen"}
	if len(ann) > 0 {
		meta["annotations"] = ann
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
}

func TestMutationIsIdempotentOverGeneratedPods(t *testing.T) {
	engines := map[string]func() []byte{
		"defaults": nil,
		"all-on": func() []byte {
			return []byte("policies: {security_context: {defaults: {read_only_root_filesystem: true}}, vault_agent: {native_sidecar: true}}")
		},
	}
	const pods = 300
	for name, cfg := range engines {
		var configs [][]byte
		if cfg != nil {
			configs = append(configs, cfg())
		}
		eng := newEngine(t, configs...)
		t.Run(name, func(t *testing.T) {
			injected := 0
			for seed := range uint64(pods) {
				r := rand.New(rand.NewPCG(seed, 42))
				original := genPod(r)
				src, err := json.Marshal(original)
				if err != nil {
					t.Fatal(err)
				}
				ns := []string{"shop", "team-a", "kube-public"}[r.IntN(3)]
				_, once := mutate(t, eng, src, ns)
				dec, _ := mutate(t, eng, once, ns)
				if len(dec.Patch) != 0 {
					t.Fatalf("seed %d: second pass changed the pod: %+v\ninput: %s\nafter one pass: %s", seed, dec.Patch, src, once)
				}
				checkInvariants(t, seed, src, once)
				if strings.Contains(string(once), `"vault.hashicorp.com/agent-inject-status":"injected"`) {
					injected++
				}
			}
			// The generator must keep exercising injection, not just defaults.
			if injected < pods/4 {
				t.Errorf("only %d of %d generated pods were injected", injected, pods)
			}
			t.Logf("%d of %d generated pods injected", injected, pods)
		})
	}
}

// checkInvariants asserts what must hold for any mutated pod: no duplicated
// containers, volumes or mounts; at most one of each agent; every security
// context value the user set is unchanged; no pair the API would reject.
func checkInvariants(t *testing.T, seed uint64, src, mutated []byte) {
	t.Helper()
	before, after := decodePod(t, src), decodePod(t, mutated)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s\ninput: %s\nmutated: %s", seed, fmt.Sprintf(format, args...), src, mutated)
	}
	seen := map[string]bool{}
	all := append(append([]corev1.Container(nil), after.Spec.InitContainers...), after.Spec.Containers...)
	for _, c := range all {
		if seen[c.Name] {
			fail("container %q appears twice", c.Name)
		}
		seen[c.Name] = true
		mounts := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if mounts[m.Name] || mounts["path:"+m.MountPath] {
				fail("container %q mounts %q twice", c.Name, m.Name)
			}
			mounts[m.Name], mounts["path:"+m.MountPath] = true, true
		}
		if sc := c.SecurityContext; sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation &&
			sc.Privileged != nil && *sc.Privileged && !userSetEscalation(before, c.Name) {
			fail("container %q: privileged with allowPrivilegeEscalation false", c.Name)
		}
	}
	vols := map[string]bool{}
	for _, v := range after.Spec.Volumes {
		if vols[v.Name] {
			fail("volume %q appears twice", v.Name)
		}
		vols[v.Name] = true
	}
	for _, c := range append(append([]corev1.Container(nil), before.Spec.InitContainers...), before.Spec.Containers...) {
		got := findContainer(all, c.Name)
		if got == nil {
			fail("container %q disappeared", c.Name)
		}
		if c.SecurityContext == nil {
			continue
		}
		if !userValuesKept(c.SecurityContext, got.SecurityContext) {
			fail("container %q: user security context %+v became %+v", c.Name, c.SecurityContext, got.SecurityContext)
		}
	}
	if b := before.Spec.SecurityContext; b != nil {
		a := after.Spec.SecurityContext
		if (b.RunAsNonRoot != nil && !reflect.DeepEqual(b.RunAsNonRoot, a.RunAsNonRoot)) ||
			(b.RunAsUser != nil && !reflect.DeepEqual(b.RunAsUser, a.RunAsUser)) ||
			(b.SeccompProfile != nil && !reflect.DeepEqual(b.SeccompProfile, a.SeccompProfile)) {
			fail("pod security context %+v became %+v", b, a)
		}
	}
}

// userSetEscalation reports whether the input pod's container name already
// set allowPrivilegeEscalation (then an invalid pair is the user's own).
func userSetEscalation(pod *corev1.Pod, name string) bool {
	c := findContainer(append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...), name)
	return c != nil && c.SecurityContext != nil && c.SecurityContext.AllowPrivilegeEscalation != nil
}

func findContainer(list []corev1.Container, name string) *corev1.Container {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// userValuesKept reports whether every field set in before has the same
// value in after; a drop list may only have grown (by ALL).
func userValuesKept(before, after *corev1.SecurityContext) bool {
	if after == nil {
		return false
	}
	same := func(b, a any) bool { return reflect.ValueOf(b).IsNil() || reflect.DeepEqual(b, a) }
	if !same(before.RunAsUser, after.RunAsUser) || !same(before.AllowPrivilegeEscalation, after.AllowPrivilegeEscalation) ||
		!same(before.Privileged, after.Privileged) || !same(before.ReadOnlyRootFilesystem, after.ReadOnlyRootFilesystem) ||
		!same(before.AppArmorProfile, after.AppArmorProfile) {
		return false
	}
	if before.Capabilities == nil {
		return true
	}
	if after.Capabilities == nil || !reflect.DeepEqual(before.Capabilities.Add, after.Capabilities.Add) {
		return false
	}
	n := len(before.Capabilities.Drop)
	if len(after.Capabilities.Drop) < n {
		return false
	}
	return n == 0 || reflect.DeepEqual(before.Capabilities.Drop, after.Capabilities.Drop[:n])
}
