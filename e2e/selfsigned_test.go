//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/portcullis/portcullis/certs"
)

// TestSelfSigned runs two replicas of `portcullis serve --cert-mode=self-signed`
// at once against the real apiserver, as the self-signed overlay's
// ServiceAccount (impersonated, with exactly the overlay's RBAC): one
// creates the Secret, the other adopts it, both serve the same certificate,
// the webhook configurations (applied after the servers started, as a
// `kubectl apply` may) get the CA in their caBundle, and admission works
// through that CA without anyone fighting over it.
func TestSelfSigned(t *testing.T) {
	ctx := context.Background()
	const ns, secretName = "portcullis-system", "portcullis-tls"
	objs := renderObjects(t, "self-signed")
	ensureNamespace(t, ns)
	var sa corev1.ServiceAccount
	var cr rbacv1.ClusterRole
	var crb rbacv1.ClusterRoleBinding
	var role rbacv1.Role
	var rb rbacv1.RoleBinding
	renderedAs(t, objs, "ServiceAccount", &sa)
	renderedAs(t, objs, "ClusterRole", &cr)
	renderedAs(t, objs, "ClusterRoleBinding", &crb)
	renderedAs(t, objs, "Role", &role)
	renderedAs(t, objs, "RoleBinding", &rb)
	c := cluster.Client
	deleteSecret := func() {
		err := c.CoreV1().Secrets(ns).Delete(ctx, secretName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Secret: %v", err)
		}
	}
	deleteSecret()
	t.Cleanup(deleteSecret)
	for _, create := range []struct {
		name   string
		create func() error
		remove func() error
	}{
		{"ServiceAccount", func() error {
			_, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &sa, metav1.CreateOptions{})
			return err
		},
			func() error { return c.CoreV1().ServiceAccounts(ns).Delete(ctx, sa.Name, metav1.DeleteOptions{}) }},
		{"ClusterRole", func() error { _, err := c.RbacV1().ClusterRoles().Create(ctx, &cr, metav1.CreateOptions{}); return err },
			func() error { return c.RbacV1().ClusterRoles().Delete(ctx, cr.Name, metav1.DeleteOptions{}) }},
		{"ClusterRoleBinding", func() error {
			_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &crb, metav1.CreateOptions{})
			return err
		}, func() error { return c.RbacV1().ClusterRoleBindings().Delete(ctx, crb.Name, metav1.DeleteOptions{}) }},
		{"Role", func() error { _, err := c.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); return err },
			func() error { return c.RbacV1().Roles(ns).Delete(ctx, role.Name, metav1.DeleteOptions{}) }},
		{"RoleBinding", func() error {
			_, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rb, metav1.CreateOptions{})
			return err
		},
			func() error { return c.RbacV1().RoleBindings(ns).Delete(ctx, rb.Name, metav1.DeleteOptions{}) }},
	} {
		if err := create.create(); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s: %v", create.name, err)
		}
		t.Cleanup(func() {
			if err := create.remove(); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s: %v", create.name, err)
			}
		})
	}

	// The server's identity: the overlay's ServiceAccount, nothing more.
	user := fmt.Sprintf("system:serviceaccount:%s:%s", sa.Namespace, sa.Name)
	kubeconfig := writeKubeconfig(t, user)
	asSA := clientFor(t, kubeconfig)
	if _, err := asSA.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("%s may list Secrets (err = %v): the impersonation is not in effect", user, err)
	}

	args := []string{
		"--cert-mode=self-signed",
		"--cert-secret-name=" + secretName,
		"--cert-secret-namespace=" + ns,
		"--service-name=portcullis",
		"--webhook-config-name=portcullis",
		"--cert-extra-sans=127.0.0.1",
		"--cert-resync-interval=1s",
		"--kubeconfig=" + kubeconfig,
	}
	a := startServer(t, serverOptions{Args: args, Config: e2eConfig, NoWait: true})
	b := startServer(t, serverOptions{Args: args, Config: e2eConfig, NoWait: true})
	a.WaitReady(t)
	b.WaitReady(t)

	secret, err := c.CoreV1().Secrets(ns).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the servers did not create the Secret: %v", err)
	}
	if secret.Type != corev1.SecretTypeTLS || secret.Labels[certs.ManagedByLabel] != certs.ManagedByValue {
		t.Errorf("Secret type %q labels %v", secret.Type, secret.Labels)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt", "ca.key"} {
		if len(secret.Data[k]) == 0 {
			t.Errorf("Secret has no %s", k)
		}
	}
	creators := 0
	for _, s := range []*server{a, b} {
		creators += strings.Count(s.log.String(), "created certificate secret")
	}
	if creators != 1 {
		t.Errorf("%d replicas created the Secret, want exactly 1", creators)
	}
	caPEM := secret.Data["ca.crt"]
	leafA, errA := a.ServedCert(caPEM)
	leafB, errB := b.ServedCert(caPEM)
	if errA != nil || errB != nil {
		t.Fatalf("served certificates under the Secret's CA: %v, %v", errA, errB)
	}
	if leafA.SerialNumber.Cmp(leafB.SerialNumber) != 0 {
		t.Errorf("the replicas serve different certificates (serials %s, %s)", leafA.SerialNumber, leafB.SerialNumber)
	}
	if !bytes.Equal(leafA.Raw, pemDER(t, secret.Data["tls.crt"])) {
		t.Errorf("served certificate is not the Secret's tls.crt")
	}
	wantDNS := []string{"portcullis", "portcullis.portcullis-system", "portcullis.portcullis-system.svc", "portcullis.portcullis-system.svc.cluster.local"}
	if !slices.Equal(leafA.DNSNames, wantDNS) || len(leafA.IPAddresses) != 1 || leafA.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("SANs = %v %v, want %v and 127.0.0.1", leafA.DNSNames, leafA.IPAddresses, wantDNS)
	}

	// The configurations as users apply them, without a caBundle: the
	// servers fill it in.
	installWebhooks(t, "self-signed", a.BaseURL, nil)
	admission := c.AdmissionregistrationV1()
	ok, msg := pollUntil(30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		v, err := admission.ValidatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		m, err := admission.MutatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var bundles [][]byte
		for _, w := range v.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		for _, w := range m.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		for _, b := range bundles {
			if !bytes.Equal(b, caPEM) {
				return false, "caBundle is not the Secret's ca.crt"
			}
		}
		return true, ""
	})
	if !ok {
		t.Fatalf("caBundle not written: %s", msg)
	}

	// Admission through that CA: the mutating webhook (which fails open)
	// answered, and the validating one refuses with our message.
	user1 := newNamespace(t, nil)
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	ok, msg = pollUntil(30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		p, err := c.CoreV1().Pods(user1).Create(ctx, barePod("probe"), dryRun)
		if err != nil {
			return false, err.Error()
		}
		if p.Spec.SecurityContext == nil || p.Spec.SecurityContext.SeccompProfile == nil {
			return false, "pod not mutated"
		}
		return true, ""
	})
	if !ok {
		t.Fatalf("admission through the self-managed CA: %s", msg)
	}
	_, err = c.CoreV1().Pods(user1).Create(ctx, privilegedPod("priv"), dryRun)
	wantError(t, "privileged pod", err, refusal("Pod", "priv"))

	// No fighting: with both replicas resyncing every second, neither the
	// Secret nor the configurations change.
	before := resourceVersions(t)
	time.Sleep(3 * time.Second)
	if after := resourceVersions(t); after != before {
		t.Errorf("resourceVersions (Secret, validating, mutating) moved from %s to %s with nothing to do", before, after)
	}
	for _, s := range []*server{a, b} {
		if log := s.log.String(); strings.Contains(log, "certificate sync failed") {
			t.Errorf("a replica failed to sync:\n%s", s.log.tail(20))
		}
	}
}

func resourceVersions(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	s, err := cluster.Client.CoreV1().Secrets("portcullis-system").Get(ctx, "portcullis-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cluster.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("(%s, %s, %s)", s.ResourceVersion, v.ResourceVersion, m.ResourceVersion)
}

// writeKubeconfig writes a kubeconfig for the test cluster that acts as
// user (impersonated by the envtest admin).
func writeKubeconfig(t *testing.T, user string) string {
	t.Helper()
	cfg := cluster.Config
	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
		Impersonate:           user,
	}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	kc.CurrentContext = "e2e"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemDER(t *testing.T, b []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		t.Fatal(err)
	}
	return block.Bytes
}
