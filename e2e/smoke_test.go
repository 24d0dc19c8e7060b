//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
)

// TestAPIServerVersion: the apiserver is the pinned release and says so
// (the version ldflags of tools/build.sh took effect).
func TestAPIServerVersion(t *testing.T) {
	info, err := cluster.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(strings.TrimPrefix(cluster.KubeVersion, "v"), ".", 3)
	if len(parts) != 3 {
		t.Fatalf("pinned version %q is not vMAJOR.MINOR.PATCH", cluster.KubeVersion)
	}
	major, minor := parts[0], parts[1]
	got := []string{info.GitVersion, info.Major, info.Minor, info.GitTreeState}
	want := []string{cluster.KubeVersion, major, minor, "clean"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("server version (gitVersion major minor treeState) = %q, want %q", got, want)
	}
}

// TestNamespaceAndPod: the control plane stores objects, and labels
// namespaces with kubernetes.io/metadata.name, which the webhooks'
// namespaceSelector relies on.
func TestNamespaceAndPod(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, nil)
	got, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Labels["kubernetes.io/metadata.name"]; v != ns {
		t.Errorf("namespace label kubernetes.io/metadata.name = %q, want %q", v, ns)
	}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, plainPod("smoke"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	pod, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "smoke", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.Containers[0].Image != "registry.example/app:1.0" {
		t.Errorf("stored pod image = %q", pod.Spec.Containers[0].Image)
	}
}

// TestRenderedManifestsApply: every object both overlays render is accepted
// by a real apiserver of the pinned version (schema, webhook matchConditions
// compiled as CEL, RBAC), except the cert-manager kinds whose CRDs are not
// installed here; and the server's pod passes Pod Security "restricted"
// enforced on its namespace.
func TestRenderedManifestsApply(t *testing.T) {
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := map[string]schema.GroupVersionResource{}
	resources, err := cluster.Client.Discovery().ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range resources {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list.APIResources {
			mapper[gv.WithKind(r.Kind).String()] = gv.WithResource(r.Name)
		}
	}
	for _, overlay := range []string{"cert-manager", "self-signed"} {
		t.Run(overlay, func(t *testing.T) {
			objs := renderObjects(t, overlay)
			// The namespace for real, as rendered (namespaced dry runs need
			// it, and Pod Security reads its labels), the rest as a
			// server-side dry run.
			for _, u := range objs {
				if u.GetKind() != "Namespace" {
					continue
				}
				_, err := dyn.Resource(mapper[u.GroupVersionKind().String()]).Apply(ctx, u.GetName(), u,
					metav1.ApplyOptions{FieldManager: "e2e", Force: true})
				if err != nil {
					t.Fatalf("apply %s: %v", describe(u), err)
				}
			}
			for _, u := range objs {
				if u.GetKind() == "Namespace" || u.GroupVersionKind().Group == "cert-manager.io" {
					continue
				}
				gvr, ok := mapper[u.GroupVersionKind().String()]
				if !ok {
					t.Errorf("%s: kind %s not served", describe(u), u.GroupVersionKind())
					continue
				}
				var client dynamic.ResourceInterface = dyn.Resource(gvr)
				if u.GetNamespace() != "" {
					client = dyn.Resource(gvr).Namespace(u.GetNamespace())
				}
				if _, err := client.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
					t.Errorf("dry-run create %s: %v", describe(u), err)
				}
			}

			// Pod Security: a pod with the Deployment's template, in the
			// namespace as rendered (enforce: restricted).
			var d appsv1.Deployment
			renderedAs(t, objs, "Deployment", &d)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "portcullis-", Namespace: d.Namespace, Labels: d.Spec.Template.Labels},
				Spec:       d.Spec.Template.Spec,
			}
			if _, err := cluster.Client.CoreV1().Pods(d.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("the server's pod in %s: %v", d.Namespace, err)
			}
			// And the namespace does enforce it: the same pod, privileged,
			// is refused.
			bad := pod.DeepCopy()
			bad.Spec.Containers[0].SecurityContext.Privileged = ptr.To(true)
			bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
			_, err := cluster.Client.CoreV1().Pods(d.Namespace).Create(ctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), `violates PodSecurity "restricted:latest"`) {
				t.Errorf("privileged pod in %s: err = %v, want a PodSecurity restricted violation", d.Namespace, err)
			}
		})
	}
}
