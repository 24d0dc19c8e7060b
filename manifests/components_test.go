package manifests_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/portcullis/portcullis/manifests"
	"github.com/portcullis/portcullis/policies/engine"
)

// TestCustomPoliciesComponent renders an overlay with the custom-policies
// component, as a user's kustomization would, and loads the ConfigMap's
// files from the layout the kubelet gives a ConfigMap volume (flat keys
// behind a ..data symlink to a timestamped directory).
func TestCustomPoliciesComponent(t *testing.T) {
	out, err := manifests.Render("testdata/custom-policies")
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, "custom-policies", out)
	var cmName string
	for _, k := range r.keys {
		if n, ok := strings.CutPrefix(k, "ConfigMap "+namespace+"/portcullis-policies-"); ok {
			cmName = "portcullis-policies-" + n
		}
	}
	if cmName == "" {
		t.Fatalf("no portcullis-policies ConfigMap in %v", r.keys)
	}
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap", namespace, cmName)
	d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
	c := d.Spec.Template.Spec.Containers[0]
	spec := d.Spec.Template.Spec
	runChecks(t, []check{
		{"ConfigMap keys", slices.Sorted(func(yield func(string) bool) {
			for k := range cm.Data {
				if !yield(k) {
					return
				}
			}
		}), []string{"no_nodeport.rego", "no_nodeport_test.rego"}},
		{"last arg", c.Args[len(c.Args)-1], "--policies=/etc/portcullis/policies"},
		{"mount", c.VolumeMounts[len(c.VolumeMounts)-1], corev1.VolumeMount{Name: "policies", MountPath: "/etc/portcullis/policies", ReadOnly: true}},
		{"volume", spec.Volumes[len(spec.Volumes)-1], corev1.Volume{Name: "policies", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: cmName},
		}}}},
	})

	// The kubelet's layout: files in a timestamped directory, ..data
	// pointing at it, and one symlink per key at the top.
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_12_03_10_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range cm.Data {
		if err := os.WriteFile(filepath.Join(ts, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	modules, err := engine.ParseModules(os.DirFS(dir), false)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for f, m := range modules {
		files = append(files, f+" "+m.Package.Path.String())
	}
	// Each policy once, by its flat key: the hidden ..data copies are skipped.
	runChecks(t, []check{{"modules", files, []string{"no_nodeport.rego data.portcullis.no_nodeport"}}})
}
