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
