package manifests_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/manifests"
)

// TestAuditComponent renders the self-signed overlay with the audit
// component and checks what the background audit adds: its flags, and RBAC
// limited to what it does.
func TestAuditComponent(t *testing.T) {
	dir, err := os.MkdirTemp(".", ".audit-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	k := "resources: [../overlays/self-signed]\ncomponents: [../audit]\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := manifests.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	roles := map[string][]string{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var obj struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
			Spec     struct {
				Template struct {
					Spec struct{ Containers []struct{ Args []string } }
				}
			}
			Rules []struct {
				APIGroups []string `json:"apiGroups"`
				Resources []string
				Verbs     []string
			}
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		switch obj.Kind {
		case "Deployment":
			args = obj.Spec.Template.Spec.Containers[0].Args
		case "ClusterRole", "Role":
			for _, r := range obj.Rules {
				roles[obj.Kind+" "+obj.Metadata.Name] = append(roles[obj.Kind+" "+obj.Metadata.Name],
					strings.Join(r.APIGroups, ",")+"/"+strings.Join(r.Resources, ",")+": "+strings.Join(r.Verbs, ","))
			}
		}
	}
	for _, a := range []string{"--watch-namespaces", "--audit-interval=10m", "--audit-lease-namespace=$(POD_NAMESPACE)", "--cert-secret-namespace=$(POD_NAMESPACE)"} {
		if !slices.Contains(args, a) {
			t.Errorf("args %q lack %s", args, a)
		}
	}
	want := map[string][]string{
		"ClusterRole portcullis-audit": {
			"/namespaces,pods,podtemplates,replicationcontrollers,configmaps: get,list,watch",
			"apps/deployments,replicasets,statefulsets,daemonsets: list,watch",
			"batch/jobs,cronjobs: list,watch",
			"openreports.io/reports,clusterreports: get,list,create,update,delete",
		},
		"Role portcullis-audit-lease": {"coordination.k8s.io/leases: get,create,update"},
		"ClusterRole portcullis-audit-reader": {
			"/namespaces,pods,podtemplates,replicationcontrollers,configmaps,secrets: get,list",
			"apps/deployments,replicasets,statefulsets,daemonsets: get,list",
			"batch/jobs,cronjobs: get,list",
		},
	}
	for name, rules := range want {
		if !slices.Equal(roles[name], rules) {
			t.Errorf("%s rules:\n got %q\nwant %q", name, roles[name], rules)
		}
	}
}
