package mutations_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/portcullis/portcullis/policies/mutations/podgen"
)

func TestMutationIsIdempotentOverGeneratedPods(t *testing.T) {
	engines := map[string]func() []byte{
		"defaults": nil,
		"all-on": func() []byte {
			return []byte("policies: {security_context: {run_as_user: 10001, defaults: {read_only_root_filesystem: true, apparmor_profile: true}}, vault_agent: {native_sidecar: true}}")
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
				original := podgen.Pod(r)
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
	// A legacy seccomp annotation leaves the pod's seccomp field as it was
	// (the API rejects a field contradicting the annotation).
	for key := range before.Annotations {
		if key == "seccomp.security.alpha.kubernetes.io/pod" || strings.HasPrefix(key, "container.seccomp.security.alpha.kubernetes.io/") {
			var b, a *corev1.SeccompProfile
			if before.Spec.SecurityContext != nil {
				b = before.Spec.SecurityContext.SeccompProfile
			}
			if after.Spec.SecurityContext != nil {
				a = after.Spec.SecurityContext.SeccompProfile
			}
			if !reflect.DeepEqual(b, a) {
				fail("seccomp annotation %q present, yet the pod seccompProfile %+v became %+v", key, b, a)
			}
		}
	}
	// Nor does a legacy AppArmor annotation get a pod-level field beside it.
	for key := range before.Annotations {
		if strings.HasPrefix(key, "container.apparmor.security.beta.kubernetes.io/") {
			var b, a *corev1.AppArmorProfile
			if before.Spec.SecurityContext != nil {
				b = before.Spec.SecurityContext.AppArmorProfile
			}
			if after.Spec.SecurityContext != nil {
				a = after.Spec.SecurityContext.AppArmorProfile
			}
			if !reflect.DeepEqual(b, a) {
				fail("AppArmor annotation %q present, yet the pod appArmorProfile %+v became %+v", key, b, a)
			}
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
