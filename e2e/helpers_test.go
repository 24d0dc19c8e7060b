//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/manifests"
)

// renderObjects renders manifests/overlays/<overlay> and returns its objects.
func renderObjects(t *testing.T, overlay string) []*unstructured.Unstructured {
	t.Helper()
	out, err := manifests.Render(filepath.Join("..", "manifests", "overlays", overlay))
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("read rendered %s: %v", overlay, err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("decode rendered %s: %v", overlay, err)
		}
		objs = append(objs, u)
	}
}

// renderedAs finds the one object of the given kind in objs and converts it
// to the typed out.
func renderedAs(t *testing.T, objs []*unstructured.Unstructured, kind string, out any) {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() != kind {
			continue
		}
		raw, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("decode %s: %v", kind, err)
		}
		return
	}
	t.Fatalf("no %s rendered", kind)
}

// installWebhooks creates the webhook configurations rendered from
// manifests/overlays/<overlay>, with every clientConfig pointed at baseURL
// (e.g. "https://127.0.0.1:9443") plus the webhook's own path, trusting
// caBundle. Everything else (rules, selectors, conditions, timeouts, failure
// policies) is exactly what users apply. The configurations are deleted when
// the test ends. It waits until the apiserver calls the webhooks: a pod
// created in a fresh user namespace reaches the validating webhook.
func installWebhooks(t *testing.T, overlay, baseURL string, caBundle []byte) {
	t.Helper()
	ctx := context.Background()
	objs := renderObjects(t, overlay)
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	renderedAs(t, objs, "ValidatingWebhookConfiguration", &vwc)
	renderedAs(t, objs, "MutatingWebhookConfiguration", &mwc)
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig = urlClientConfig(vwc.Webhooks[i].ClientConfig, baseURL, caBundle)
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = urlClientConfig(mwc.Webhooks[i].ClientConfig, baseURL, caBundle)
	}
	admission := cluster.Client.AdmissionregistrationV1()
	t.Cleanup(func() {
		ctx := context.Background()
		err := admission.ValidatingWebhookConfigurations().Delete(ctx, vwc.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete ValidatingWebhookConfiguration: %v", err)
		}
		err = admission.MutatingWebhookConfigurations().Delete(ctx, mwc.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete MutatingWebhookConfiguration: %v", err)
		}
		// The apiserver drops a deleted configuration from its cache a
		// moment later; let the next test start from a cluster without it.
		waitWebhooksGone(t)
	})
	if _, err := admission.ValidatingWebhookConfigurations().Create(ctx, &vwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ValidatingWebhookConfiguration: %v", err)
	}
	if _, err := admission.MutatingWebhookConfigurations().Create(ctx, &mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create MutatingWebhookConfiguration: %v", err)
	}
}

func urlClientConfig(in admissionregistrationv1.WebhookClientConfig, baseURL string, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{
		URL:      ptr.To(baseURL + ptr.Deref(in.Service.Path, "/")),
		CABundle: caBundle,
	}
}

// validateServices adds to the installed "portcullis"
// ValidatingWebhookConfiguration the rule `portcullis webhooks` prints for
// a custom policy on Services (custom.resources: services), so the API
// server sends Service creates and updates to the server.
func validateServices(ctx context.Context, t *testing.T) {
	t.Helper()
	vwcs := cluster.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vwc, err := vwcs.Get(ctx, "portcullis", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := admissionregistrationv1.AllScopes
	vwc.Webhooks[0].Rules = append(vwc.Webhooks[0].Rules, admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"services"}, Scope: &all},
	})
	if _, err := vwcs.Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitServiceRefused polls a dry-run create of a Service "web" of type typ
// in ns, for up to 60 s, until the API server refuses it with a message
// containing want.
func waitServiceRefused(t *testing.T, ns string, typ corev1.ServiceType, want string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	ok, msg := pollUntil(60*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		_, err := cluster.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), want) {
			return false, fmt.Sprintf("create %s Service: %v", typ, err)
		}
		return true, ""
	})
	if !ok {
		t.Fatalf("want a refusal with %q: %s", want, msg)
	}
}

// checkClusterIPAdmitted checks that a dry-run create of a ClusterIP
// Service in ns is admitted.
func checkClusterIPAdmitted(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	if _, err := cluster.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "internal"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("ClusterIP Service: %v", err)
	}
}

// waitWebhooksGone waits until a dry-run create of a plain pod in a user
// namespace succeeds (with the webhooks gone, nothing refuses it; it cannot
// tell a gone webhook from a running server that admits the pod).
func waitWebhooksGone(t *testing.T) {
	t.Helper()
	ns := newNamespace(t, nil)
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			_, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, plainPod("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err == nil, nil
		})
	if err != nil {
		t.Errorf("webhooks still called 30 s after deletion: %v", err)
	}
}

// newNamespace creates a namespace with a generated name and the given
// labels, deleted when the test ends.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		// No namespace controller runs in envtest: the namespace stays
		// Terminating, which is enough to keep names unique.
		_ = cluster.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// plainPod is a minimal pod that passes Pod Security "restricted".
func plainPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": name}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example/app:1.0",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// describe names an object for messages.
func describe(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return fmt.Sprintf("%s %s", u.GetKind(), u.GetName())
	}
	return fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
}
