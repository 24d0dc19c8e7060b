//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// TestWebhooksWithoutServer installs the rendered webhook configurations
// pointed at a loopback port nobody listens on (the server is down), and
// checks what the manifests promise: user namespaces fail closed, while
// kube-system, Portcullis' own namespace, opted-out namespaces, mirror pods
// written by a kubelet and kinds the webhooks do not cover are unaffected,
// while a user who sets the mirror annotation on a pod of their own is not
// let through by it.
func TestWebhooksWithoutServer(t *testing.T) {
	ctx := context.Background()
	user := newNamespace(t, nil)
	optedOut := newNamespace(t, map[string]string{"portcullis.dev/ignore": "true"})
	ensureNamespace(t, "portcullis-system")

	installWebhooks(t, "self-signed", "https://"+deadAddress(t), testCABundle(t))
	refused := `failed calling webhook "validate.portcullis.dev"`
	// The apiserver picks the configuration up asynchronously.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().Pods(user).Create(ctx, plainPod("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), refused), nil
	})
	if err != nil {
		t.Fatalf("validating webhook not in effect after 30 s: %v", err)
	}

	mirror := plainPod("mirror")
	mirror.Annotations = map[string]string{"kubernetes.io/config.mirror": "0123456789abcdef"}
	mirror.Spec.NodeName = "node-1"
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "app"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: plainPod("app").ObjectMeta, Spec: plainPod("app").Spec},
		},
	}
	deployment.Spec.Template.Name = ""
	deployment.Spec.Template.Labels = map[string]string{"app.kubernetes.io/name": "app"}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	kubelet := kubeletClient(t, "node-1")
	tests := []struct {
		name    string
		create  func(ctx context.Context) error
		refused bool
	}{
		{"pod in a user namespace", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().Pods(user).Create(ctx, plainPod("app"), dryRun)
			return err
		}, true},
		{"deployment in a user namespace", func(ctx context.Context) error {
			_, err := cluster.Client.AppsV1().Deployments(user).Create(ctx, deployment, dryRun)
			return err
		}, true},
		{"configmap in a user namespace", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().ConfigMaps(user).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, dryRun)
			return err
		}, true},
		{"secret in a user namespace", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().Secrets(user).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, dryRun)
			return err
		}, true},
		{"service in a user namespace (not covered)", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().Services(user).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "svc"},
				Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
			}, dryRun)
			return err
		}, false},
		{"pod with the mirror annotation from a user", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().Pods(user).Create(ctx, mirror, dryRun)
			return err
		}, true},
		{"mirror pod from a kubelet", func(ctx context.Context) error {
			_, err := kubelet.CoreV1().Pods(user).Create(ctx, mirror, dryRun)
			return err
		}, false},
		{"pod in kube-system", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().Pods("kube-system").Create(ctx, plainPod("app"), dryRun)
			return err
		}, false},
		{"pod in portcullis-system", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().Pods("portcullis-system").Create(ctx, plainPod("app"), dryRun)
			return err
		}, false},
		{"pod in an opted-out namespace", func(ctx context.Context) error {
			_, err := cluster.Client.CoreV1().Pods(optedOut).Create(ctx, plainPod("app"), dryRun)
			return err
		}, false},
		{"real pod in kube-system", func(ctx context.Context) error {
			pod := plainPod("")
			pod.GenerateName = "e2e-"
			created, err := cluster.Client.CoreV1().Pods("kube-system").Create(ctx, pod, metav1.CreateOptions{})
			if err == nil {
				err = cluster.Client.CoreV1().Pods("kube-system").Delete(ctx, created.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			}
			return err
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.create(ctx)
			switch {
			case tt.refused && (err == nil || !strings.Contains(err.Error(), refused)):
				t.Errorf("err = %v, want %q", err, refused)
			case !tt.refused && err != nil:
				t.Errorf("err = %v, want admitted", err)
			}
		})
	}
}

// kubeletClient returns a client acting as node's kubelet (user
// system:node:<node>, group system:nodes), allowed by RBAC to create pods
// (the test apiserver runs no Node authorizer).
func kubeletClient(t *testing.T, node string) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	name := "e2e-kubelet-creates-pods"
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:nodes"}},
	}
	if _, err := cluster.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cluster.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = cluster.Client.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:node:" + node,
		Groups:   []string{"system:nodes", "system:authenticated"},
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deadAddress returns a loopback address with no listener.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// testCABundle returns a PEM CA certificate (the configurations need one;
// no connection gets as far as using it).
func testCABundle(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "e2e-ca"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ensureNamespace creates the named namespace unless it exists.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := cluster.Client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}
