//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies/mutations/podgen"
)

// mutationDenied starts the message of a request the mutating policies
// refused on purpose (vault_agent without a role, a malformed annotation):
// a policy's decision, not the API server's validation.
const mutationDenied = `admission webhook "mutate.portcullis.dev" denied the request: `

// TestMutatedPodsPassAPIValidation sends pods from the mutation tests' own
// generator, the golden fixtures, the vault-k8s annotation matrix, and
// Deployments wrapping generated pods,
// through the mutating webhook into the real API server, which is the oracle
// for "a mutation never turns an object the API server accepts into one it
// rejects": each object is first created (dry run) in kube-system, where the
// webhook is not called, and every object accepted there must also be
// accepted, mutated, in a user namespace. Only the mutating webhook is
// installed: validating policies refusing a pod is not what is measured.
func TestMutatedPodsPassAPIValidation(t *testing.T) {
	configs := []struct {
		name, config string
	}{
		{"defaults", ""},
		// Every optional default on, a cluster-wide UID, native sidecars.
		{"all-on", `policies:
  security_context:
    run_as_user: 10001
    defaults:
      apparmor_profile: true
      read_only_root_filesystem: true
  vault_agent:
    native_sidecar: true
`},
	}
	total := 0
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			srv := startServer(t, serverOptions{FileCert: true, Config: cfg.config})
			ensureNamespace(t, "portcullis-system")
			installMutatingWebhook(t, srv.BaseURL, srv.CA.CertPEM)
			ns := newNamespace(t, nil)
			waitMutating(t, ns, true)
			n := checkMutatedObjects(t, ns, objectsToMutate(t))
			total += n
		})
	}
	t.Logf("%d mutated objects accepted by the API server in all", total)
}

// candidate is an object to send: a Pod or a Deployment.
type candidate struct {
	name string
	pod  *corev1.Pod
	dep  *appsv1.Deployment
}

// objectsToMutate returns the golden fixtures, the pods of the vault-k8s
// annotation matrix, 200 generated pods and 50 Deployments wrapping
// generated pods.
func objectsToMutate(t *testing.T) []candidate {
	t.Helper()
	var out []candidate
	fixtures, err := filepath.Glob(filepath.Join("..", "policies", "mutations", "testdata", "*.pod.in"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("golden fixtures: %v (%d found)", err, len(fixtures))
	}
	for _, f := range fixtures {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict(src, &pod); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, candidate{name: "fixture " + filepath.Base(f), pod: &pod})
	}
	// The vault-k8s annotation matrix: every vault.hashicorp.com/ annotation.
	matrix, err := filepath.Glob(filepath.Join("..", "policies", "vault_agent", "testdata", "vault-k8s", "*.json.golden"))
	if err != nil || len(matrix) == 0 {
		t.Fatalf("vault-k8s matrix: %v (%d found)", err, len(matrix))
	}
	for _, f := range matrix {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Input corev1.Pod `json:"input"`
		}
		if err := json.Unmarshal(src, &rec); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, candidate{name: "vault-k8s matrix " + filepath.Base(f), pod: &rec.Input})
	}
	for seed := range uint64(250) {
		r := rand.New(rand.NewPCG(seed, 42))
		pod := generatedPod(t, r)
		if seed < 200 {
			out = append(out, candidate{name: fmt.Sprintf("generated pod seed %d", seed), pod: pod})
			continue
		}
		labels := map[string]string{"app.kubernetes.io/name": fmt.Sprintf("gen-%d", seed)}
		pod.Labels = labels
		out = append(out, candidate{name: fmt.Sprintf("generated Deployment seed %d", seed), dep: &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gen-%d", seed)},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec},
			},
		}})
	}
	return out
}

// generatedPod is podgen.Pod without its service account token mounts: the
// generator mounts "kube-api-access-x" the way the ServiceAccount admission
// plugin does, but without that volume (the plugin adds it, with its own
// name, before webhooks run).
func generatedPod(t *testing.T, r *rand.Rand) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(podgen.Pod(r))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			var keep []corev1.VolumeMount
			for _, m := range list[i].VolumeMounts {
				if m.Name != "kube-api-access-x" {
					keep = append(keep, m)
				}
			}
			list[i].VolumeMounts = keep
		}
	}
	return &pod
}

// checkMutatedObjects creates each candidate (dry run) unmutated in
// kube-system, then in ns through the webhook, and returns how many were
// accepted mutated. An object the API server refuses unmutated is no
// evidence either way and is skipped; a policy's own refusal is counted
// apart.
func checkMutatedObjects(t *testing.T, ns string, objs []candidate) int {
	t.Helper()
	ctx := context.Background()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	var accepted, invalidInput, refusedByPolicy, unchanged int
	for i, c := range objs {
		name := fmt.Sprintf("mut-%d", i)
		var plain, mutated func(string) (any, error)
		var in any
		if c.pod != nil {
			p := c.pod.DeepCopy()
			p.Name, p.Namespace, p.GenerateName = name, "", ""
			in = p.Spec
			create := func(namespace string) (any, error) {
				got, err := cluster.Client.CoreV1().Pods(namespace).Create(ctx, p.DeepCopy(), dry)
				if err != nil {
					return nil, err
				}
				return got.Spec, nil
			}
			plain, mutated = create, create
		} else {
			d := c.dep.DeepCopy()
			d.Name = name
			in = d.Spec.Template.Spec
			create := func(namespace string) (any, error) {
				got, err := cluster.Client.AppsV1().Deployments(namespace).Create(ctx, d.DeepCopy(), dry)
				if err != nil {
					return nil, err
				}
				return got.Spec.Template.Spec, nil
			}
			plain, mutated = create, create
		}
		before, err := plain("kube-system")
		if err != nil {
			if !apierrors.IsInvalid(err) {
				t.Fatalf("%s: unmutated create in kube-system: %v", c.name, err)
			}
			invalidInput++
			continue
		}
		after, err := mutated(ns)
		switch {
		case err != nil && strings.Contains(err.Error(), mutationDenied):
			refusedByPolicy++
			continue
		case err != nil:
			in, _ := yaml.Marshal(in)
			t.Errorf("%s: accepted unmutated, refused after mutation: %v\ninput spec:\n%s", c.name, err, in)
			continue
		}
		if equality.Semantic.DeepEqual(before, after) {
			unchanged++
			continue
		}
		accepted++
	}
	t.Logf("%d objects: %d accepted mutated, %d accepted unchanged, %d refused by a mutating policy, %d invalid before mutation (skipped)",
		len(objs), accepted, unchanged, refusedByPolicy, invalidInput)
	// The generator must keep producing objects the API server accepts.
	if accepted < len(objs)/2 {
		t.Errorf("only %d of %d objects were accepted mutated", accepted, len(objs))
	}
	return accepted
}

// installMutatingWebhook installs only the rendered
// MutatingWebhookConfiguration, pointed at baseURL, removed when the test
// ends.
func installMutatingWebhook(t *testing.T, baseURL string, caBundle []byte) {
	t.Helper()
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	renderedAs(t, renderObjects(t, "self-signed"), "MutatingWebhookConfiguration", &mwc)
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = urlClientConfig(mwc.Webhooks[i].ClientConfig, baseURL, caBundle)
	}
	admission := cluster.Client.AdmissionregistrationV1()
	t.Cleanup(func() {
		err := admission.MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete MutatingWebhookConfiguration: %v", err)
		}
		waitMutating(t, newNamespace(t, nil), false)
	})
	if _, err := admission.MutatingWebhookConfigurations().Create(context.Background(), &mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create MutatingWebhookConfiguration: %v", err)
	}
}

// waitMutating waits until a bare pod created (dry run) in ns is mutated
// (want true) or comes back unchanged (want false: the webhook is gone from
// the API server's cache).
func waitMutating(t *testing.T, ns string, want bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			got, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, barePod("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				return false, nil
			}
			// The API server defaults securityContext to {}; the
			// webhook adds a seccomp profile.
			sc := got.Spec.SecurityContext
			return (sc != nil && sc.SeccompProfile != nil) == want, nil
		})
	if err != nil {
		t.Fatalf("mutating webhook served = %v not reached in 30 s: %v", want, err)
	}
}
