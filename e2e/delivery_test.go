//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodePortPolicy is manifests/components/custom-policies' example, with
// the word the message ends in as a parameter.
func nodePortPolicy(t *testing.T, word string) string {
	t.Helper()
	b, err := os.ReadFile("../manifests/components/custom-policies/policies/no_nodeport.rego")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(b), "is not allowed", word, 1)
}

// kubeletSwap publishes files the way the kubelet updates a ConfigMap
// volume (its atomic writer): a new timestamped directory, then ..data
// re-pointed by renaming a new symlink over it, then the old directory
// removed; the top-level names are symlinks into ..data.
func kubeletSwap(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	ts, err := os.MkdirTemp(dir, "..2026_12_03_")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConfigMapVolumeDelivery: a custom policy delivered the way a
// ConfigMap volume is (the custom-policies component; here a kubelet-layout
// subdirectory of the server's --policies directory), denies an object on
// the real API server, and is updated in place, without a restart; a broken
// update keeps the last good set.
func TestConfigMapVolumeDelivery(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, serverOptions{FileCert: true})
	custom := filepath.Join(srv.PoliciesDir, "custom")
	if err := os.Mkdir(custom, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeletSwap(t, custom, map[string]string{"no_nodeport.rego": nodePortPolicy(t, "is not allowed")})

	ensureNamespace(t, "portcullis-system")
	installWebhooks(t, "self-signed", srv.BaseURL, srv.CA.CertPEM)
	validateServices(ctx, t)
	ns := newNamespace(t, nil)
	refusedWith := func(word string) {
		t.Helper()
		waitServiceRefused(t, ns, corev1.ServiceTypeNodePort, "Service web: type NodePort "+word)
	}
	refusedWith("is not allowed")
	checkClusterIPAdmitted(ctx, t, ns)

	// Updated in place: the same process answers with the new policy.
	pid := srv.cmd.Process.Pid
	kubeletSwap(t, custom, map[string]string{"no_nodeport.rego": nodePortPolicy(t, "is forbidden here")})
	refusedWith("is forbidden here")
	if srv.cmd.Process.Pid != pid || srv.Metric(t, `portcullis_policy_reloads_total{result="success"}`) < 1 {
		t.Errorf("not reloaded in place: pid %d → %d, reloads %v", pid, srv.cmd.Process.Pid, srv.Metric(t, `portcullis_policy_reloads_total{result="success"}`))
	}

	// A broken update keeps the last good set.
	kubeletSwap(t, custom, map[string]string{"no_nodeport.rego": "package portcullis.no_nodeport\n\ndeny contains"})
	ok, msg := pollUntil(30*time.Second, 200*time.Millisecond, func(context.Context) (bool, string) {
		v := srv.Metric(t, `portcullis_policy_reloads_total{result="error"}`)
		return v >= 1, fmt.Sprintf("reload errors %v", v)
	})
	if !ok {
		t.Fatalf("broken update not reported: %s", msg)
	}
	refusedWith("is forbidden here")
}

// TestSyncWebhookRules: `serve --sync-webhook-rules` (self-signed mode)
// adds the rule a custom policy needs to the webhook configuration on the
// real apiserver, so the policy is called without hand edits.
func TestSyncWebhookRules(t *testing.T) {
	ctx := context.Background()
	const ns, secretName = "portcullis-system", "portcullis-tls"
	ensureNamespace(t, ns)
	deleteSecret := func() {
		err := cluster.Client.CoreV1().Secrets(ns).Delete(ctx, secretName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Secret: %v", err)
		}
	}
	deleteSecret()
	t.Cleanup(deleteSecret)
	// The envtest admin: TestSelfSigned proves the overlay's RBAC (get and
	// patch on the two configurations), which the rules sync shares.
	srv := startServer(t, serverOptions{
		Args: []string{
			"--cert-mode=self-signed", "--cert-secret-name=" + secretName, "--cert-secret-namespace=" + ns,
			"--cert-extra-sans=127.0.0.1", "--cert-resync-interval=1s", "--sync-webhook-rules",
			"--kubeconfig=" + writeKubeconfig(t, ""),
		},
		ExtraPolicies: map[string]string{"no_nodeport/no_nodeport.rego": nodePortPolicy(t, "is not allowed")},
		NoWait:        true,
	})
	srv.WaitReady(t)
	installWebhooks(t, "self-signed", srv.BaseURL, nil)

	vwcs := cluster.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	ok, msg := pollUntil(30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		v, err := vwcs.Get(ctx, "portcullis", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, r := range v.Webhooks[0].Rules {
			if slices.Contains(r.Resources, "services") && slices.Contains(r.APIGroups, "") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("rules %+v", v.Webhooks[0].Rules)
	})
	if !ok {
		t.Fatalf("services rule not added: %s", msg)
	}
	nsName := newNamespace(t, nil)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	ok, msg = pollUntil(30*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		_, err := cluster.Client.CoreV1().Services(nsName).Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), "Service web: type NodePort is not allowed") {
			return false, fmt.Sprintf("create NodePort Service: %v", err)
		}
		return true, ""
	})
	if !ok {
		t.Fatalf("policy not called through the synced rule: %s", msg)
	}
	if log := srv.log.String(); !strings.Contains(log, "added the loaded policies' resources to the webhook rules") {
		t.Errorf("no rules-sync log line:\n%s", srv.log.tail(20))
	}
}
