//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// e2eConfig is merged over the policies' defaults: required_labels denies
// (it warns by default), so there is always a built-in policy that refuses.
const e2eConfig = `policies:
  required_labels:
    enforcement: deny
`

const (
	deniedPrefix  = `admission webhook "validate.portcullis.dev" denied the request: `
	markerLabel   = "e2e.portcullis.dev/marker"
	markerPolicyF = "e2e_marker/e2e_marker.rego"
)

// markerPolicy is a test-only validating policy, added to the server's copy
// of policies/, that refuses pods labelled e2e.portcullis.dev/marker=colour;
// the hot-reload test edits it.
func markerPolicy(colour string) string {
	return `# METADATA
# title: e2e marker
# description: Refuses pods labelled ` + markerLabel + `=` + colour + ` (end-to-end tests only).
# custom:
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
package portcullis.e2e_marker

import data.portcullis.lib.kubernetes

deny contains {"msg": sprintf("e2e marker %q is refused", [colour])} if {
	kubernetes.is_pod
	colour := "` + colour + `"
	object.get(kubernetes.obj.metadata, ["labels", "` + markerLabel + `"], "") == colour
}
`
}

// refusal says what the built-in policies on disk refuse a privileged,
// unlabelled pod or template with: pod_security when it exists (it is
// being written at the same time as these tests), else required_labels.
func refusal(kind, name string) []string {
	if _, err := os.Stat(filepath.Join("..", "policies", "pod_security")); err == nil {
		return []string{deniedPrefix, "[pod_security] ", `privileged (container "app" must not set securityContext.privileged=true)`}
	}
	return []string{deniedPrefix, fmt.Sprintf(`[required_labels] %s %q is missing required label "app.kubernetes.io/name"`, kind, name)}
}

// privilegedPod is privileged and carries no labels.
func privilegedPod(name string) *corev1.Pod {
	p := plainPod(name)
	p.Labels = nil
	sc := p.Spec.Containers[0].SecurityContext
	sc.Privileged = ptr.To(true)
	// The API refuses privileged with allowPrivilegeEscalation: false.
	sc.AllowPrivilegeEscalation = nil
	return p
}

// barePod has labels and nothing else a policy would want.
func barePod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1.0"}}},
	}
}

func markerPod(name, colour string) *corev1.Pod {
	p := plainPod(name)
	p.Labels[markerLabel] = colour
	return p
}

// wantError checks err contains every part.
func wantError(t *testing.T, what string, err error, parts []string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: admitted, want refused with %q", what, parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not contain %q", what, err, p)
		}
	}
}

// TestAdmission runs the real binary on loopback with the webhook
// configurations users apply (pointed at it) and drives the cluster.
func TestAdmission(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, serverOptions{
		FileCert:      true,
		Config:        e2eConfig,
		ExtraPolicies: map[string]string{markerPolicyF: markerPolicy("blue")},
	})
	ensureNamespace(t, "portcullis-system")
	installWebhooks(t, "self-signed", srv.BaseURL, srv.CA.CertPEM)
	ns := newNamespace(t, nil)
	pods := cluster.Client.CoreV1().Pods(ns)
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	waitWebhooksServed(t, ns)

	t.Run("privileged pod refused", func(t *testing.T) {
		_, err := pods.Create(ctx, privilegedPod("priv"), metav1.CreateOptions{})
		wantError(t, "privileged pod", err, refusal("Pod", "priv"))
	})

	t.Run("compliant pod admitted", func(t *testing.T) {
		if _, err := pods.Create(ctx, plainPod("compliant"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("compliant pod: %v", err)
		}
		if _, err := pods.Get(ctx, "compliant", metav1.GetOptions{}); err != nil {
			t.Errorf("compliant pod not stored: %v", err)
		}
	})

	t.Run("deployment with a violating template refused", func(t *testing.T) {
		tmpl := privilegedPod("")
		tmpl.Labels = map[string]string{"app": "bad"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "bad", Labels: map[string]string{"app.kubernetes.io/name": "bad"}},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
			},
		}
		_, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		wantError(t, "deployment", err, refusal("Deployment", "bad"))
		// The same Deployment with a compliant template is admitted.
		good := d.DeepCopy()
		good.Name = "good"
		good.Spec.Template.Labels["app.kubernetes.io/name"] = "good"
		good.Spec.Template.Spec = plainPod("").Spec
		if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, good, dryRun); err != nil {
			t.Errorf("compliant deployment: %v", err)
		}
	})

	t.Run("plain pod gets the default security context", func(t *testing.T) {
		got, err := pods.Create(ctx, barePod("bare"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantPod := &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
		wantContainer := &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
		if !equality.Semantic.DeepEqual(got.Spec.SecurityContext, wantPod) {
			t.Errorf("pod securityContext = %s, want %s", toYAML(got.Spec.SecurityContext), toYAML(wantPod))
		}
		if !equality.Semantic.DeepEqual(got.Spec.Containers[0].SecurityContext, wantContainer) {
			t.Errorf("container securityContext = %s, want %s", toYAML(got.Spec.Containers[0].SecurityContext), toYAML(wantContainer))
		}
	})

	t.Run("vault agent injected once, passes restricted", func(t *testing.T) {
		restricted := newNamespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
		p := barePod("vault")
		p.Annotations = map[string]string{
			"vault.hashicorp.com/agent-inject":           "true",
			"vault.hashicorp.com/role":                   "app",
			"vault.hashicorp.com/agent-inject-secret-db": "secret/data/db",
		}
		// The agent authenticates with a projected token of the pod's
		// service account. A cluster's ServiceAccount admission plugin sets
		// "default"; envtest runs without it.
		p.Spec.ServiceAccountName = "default"
		// Created for real in a namespace enforcing restricted: Pod
		// Security admission checks the pod as mutated.
		got, err := cluster.Client.CoreV1().Pods(restricted).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("annotated pod in a restricted namespace: %v", err)
		}
		count := func(cs []corev1.Container, name string) int {
			n := 0
			for _, c := range cs {
				if c.Name == name {
					n++
				}
			}
			return n
		}
		if n := count(got.Spec.InitContainers, "vault-agent-init"); n != 1 {
			t.Errorf("%d vault-agent-init init containers, want 1", n)
		}
		if n := count(got.Spec.Containers, "vault-agent"); n != 1 {
			t.Errorf("%d vault-agent containers, want 1", n)
		}
		if n := len(got.Spec.Containers) + len(got.Spec.InitContainers); n != 3 {
			t.Errorf("%d containers in all, want 3 (app, vault-agent, vault-agent-init)", n)
		}
		if s := got.Annotations["vault.hashicorp.com/agent-inject-status"]; s != "injected" {
			t.Errorf("agent-inject-status = %q, want injected", s)
		}
		mounts := 0
		for _, m := range got.Spec.Containers[0].VolumeMounts {
			if m.MountPath == "/vault/secrets" {
				mounts++
			}
		}
		if mounts != 1 {
			t.Errorf("app container mounts /vault/secrets %d times, want 1", mounts)
		}
		// An already injected pod (e.g. re-created from its stored form)
		// is not injected again.
		again := got.DeepCopy()
		again.ObjectMeta = metav1.ObjectMeta{Name: "vault-again", Labels: got.Labels, Annotations: got.Annotations}
		again2, err := cluster.Client.CoreV1().Pods(restricted).Create(ctx, again, dryRun)
		if err != nil {
			t.Fatalf("re-create injected pod: %v", err)
		}
		if n := count(again2.Spec.Containers, "vault-agent") + count(again2.Spec.InitContainers, "vault-agent-init"); n != 2 {
			t.Errorf("re-created injected pod has %d agent containers, want 2", n)
		}
	})

	t.Run("dry run: same decision, nothing created", func(t *testing.T) {
		_, dryErr := pods.Create(ctx, privilegedPod("dry-priv"), dryRun)
		_, realErr := pods.Create(ctx, privilegedPod("dry-priv"), metav1.CreateOptions{})
		if dryErr == nil || realErr == nil || dryErr.Error() != realErr.Error() {
			t.Errorf("dry run refused with %v, real create with %v: want the same refusal", dryErr, realErr)
		}
		dry, err := pods.Create(ctx, barePod("dry"), dryRun)
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if _, err := pods.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after a dry run, get = %v, want NotFound", err)
		}
		real, err := pods.Create(ctx, barePod("dry"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("real create: %v", err)
		}
		if !equality.Semantic.DeepEqual(dry.Spec.SecurityContext, real.Spec.SecurityContext) ||
			!equality.Semantic.DeepEqual(dry.Spec.Containers, real.Spec.Containers) {
			t.Errorf("dry run and real create mutated differently:\n%s\n%s", toYAML(dry.Spec), toYAML(real.Spec))
		}
	})

	t.Run("system namespaces unaffected", func(t *testing.T) {
		// Refused and mutated in a user namespace, were the webhooks called.
		p := privilegedPod("sys")
		p.Spec.SecurityContext = nil
		p.Labels = map[string]string{markerLabel: "blue"}
		got, err := cluster.Client.CoreV1().Pods("kube-system").Create(ctx, p, dryRun)
		if err != nil {
			t.Errorf("kube-system: %v", err)
		} else if sc := got.Spec.SecurityContext; sc != nil && (sc.AppArmorProfile != nil || sc.SeccompProfile != nil) {
			t.Errorf("kube-system pod was mutated: %s", toYAML(sc))
		}
		// Portcullis' own namespace may enforce restricted (as rendered):
		// a restricted pod that we would refuse (marker) and mutate.
		// It asks for a Vault agent, which a user namespace would inject.
		q := markerPod("own", "blue")
		q.Labels = map[string]string{markerLabel: "blue"}
		q.Annotations = map[string]string{"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/role": "app"}
		got, err = cluster.Client.CoreV1().Pods("portcullis-system").Create(ctx, q, dryRun)
		if err != nil {
			t.Errorf("portcullis-system: %v", err)
		} else if len(got.Spec.Containers) != 1 || len(got.Spec.InitContainers) != 0 {
			t.Errorf("portcullis-system pod was mutated: %s", toYAML(got.Spec))
		}
	})

	t.Run("serving certificate rotated under load", func(t *testing.T) {
		var ok, failed atomic.Int64
		var firstErr atomic.Pointer[string]
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := pods.Create(ctx, plainPod(fmt.Sprintf("load-%d", i)), dryRun); err != nil {
					failed.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
				} else {
					ok.Add(1)
				}
			}
		}()
		time.Sleep(time.Second)
		before := ok.Load()
		leaf := srv.PublishServingCert(t)
		start := time.Now()
		served, msg := pollUntil(20*time.Second, 50*time.Millisecond, func(context.Context) (bool, string) {
			c, err := srv.ServedCert(srv.CA.CertPEM)
			if err != nil {
				return false, err.Error()
			}
			return c.SerialNumber.Cmp(leaf.SerialNumber) == 0, "still the old certificate"
		})
		swapped := ok.Load()
		took := time.Since(start)
		time.Sleep(time.Second)
		close(stop)
		<-done
		if !served {
			t.Errorf("new certificate not served: %s", msg)
		}
		if n := failed.Load(); n > 0 {
			t.Errorf("%d failed admissions during the rotation, first: %s", n, *firstErr.Load())
		}
		if before == 0 || ok.Load() == swapped {
			t.Errorf("admissions: %d before the swap, %d after it was served; want some in both", before, ok.Load()-swapped)
		}
		t.Logf("%d admissions, new certificate served %s after the swap", ok.Load(), took.Round(time.Millisecond))
	})

	t.Run("policy edit reloaded without restart", func(t *testing.T) {
		path := filepath.Join(srv.PoliciesDir, markerPolicyF)
		refused := func(colour string) []string {
			return []string{deniedPrefix, fmt.Sprintf(`[e2e_marker] e2e marker %q is refused`, colour)}
		}
		_, err := pods.Create(ctx, markerPod("blue", "blue"), dryRun)
		wantError(t, "blue before the edit", err, refused("blue"))
		if _, err := pods.Create(ctx, markerPod("green", "green"), dryRun); err != nil {
			t.Errorf("green before the edit: %v", err)
		}

		if err := os.WriteFile(path, []byte(markerPolicy("green")), 0o644); err != nil {
			t.Fatal(err)
		}
		reloaded, msg := pollUntil(20*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
			_, err := pods.Create(ctx, markerPod("green", "green"), dryRun)
			return err != nil && strings.Contains(err.Error(), refused("green")[1]), fmt.Sprint(err)
		})
		if !reloaded {
			t.Fatalf("edit not in effect: %s", msg)
		}
		if _, err := pods.Create(ctx, markerPod("blue", "blue"), dryRun); err != nil {
			t.Errorf("blue after the edit: %v", err)
		}

		// A syntax error: the reload fails, the last good policies stay.
		errSeries := `portcullis_policy_reloads_total{result="error"}`
		errorsBefore := srv.Metric(t, errSeries)
		if err := os.WriteFile(path, []byte(strings.Replace(markerPolicy("blue"), "if {", "if {{", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		failed, msg := pollUntil(20*time.Second, 100*time.Millisecond, func(context.Context) (bool, string) {
			n := srv.Metric(t, errSeries)
			return n > errorsBefore, fmt.Sprintf("%s = %v", errSeries, n)
		})
		if !failed {
			t.Fatalf("broken edit not attempted: %s", msg)
		}
		_, err = pods.Create(ctx, markerPod("green", "green"), dryRun)
		wantError(t, "green after the broken edit", err, refused("green"))
		if _, err := pods.Create(ctx, markerPod("blue", "blue"), dryRun); err != nil {
			t.Errorf("blue after the broken edit: %v", err)
		}
	})

	t.Run("server stopped: fail closed, kube-system works", func(t *testing.T) {
		srv.Stop(t)
		_, err := pods.Create(ctx, plainPod("closed"), dryRun)
		wantError(t, "user namespace with the server down", err, []string{`failed calling webhook "validate.portcullis.dev"`})
		p := plainPod("")
		p.GenerateName = "e2e-"
		created, err := cluster.Client.CoreV1().Pods("kube-system").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("kube-system with the server down: %v", err)
		}
		if err := cluster.Client.CoreV1().Pods("kube-system").Delete(ctx, created.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
}

// waitWebhooksServed waits until the apiserver calls both webhooks on the
// server (it picks configurations up asynchronously): a bare pod comes back
// mutated, and a marked pod is refused by the marker policy.
func waitWebhooksServed(t *testing.T, ns string) {
	t.Helper()
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	ok, msg := pollUntil(30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		p, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, barePod("probe"), dryRun)
		if err != nil {
			return false, err.Error()
		}
		if p.Spec.SecurityContext == nil || p.Spec.SecurityContext.SeccompProfile == nil {
			return false, "pod not mutated"
		}
		_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, markerPod("probe", "blue"), dryRun)
		if err == nil || !strings.Contains(err.Error(), "e2e marker") {
			return false, fmt.Sprintf("marked pod: %v", err)
		}
		return true, ""
	})
	if !ok {
		t.Fatalf("webhooks not served: %s", msg)
	}
}

func toYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
