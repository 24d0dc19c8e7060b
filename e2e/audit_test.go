//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/webhooks/audit"
)

// The audit tests' own policy: pods labelled e2e.portcullis.dev/audit-colour
// with the given colour violate it (audit enforcement, set by auditConfig).
const (
	auditLabel   = "e2e.portcullis.dev/audit-colour"
	auditPolicyF = "e2e_colour/e2e_colour.rego"
)

func auditPolicy(colour string) string {
	return fmt.Sprintf(`# METADATA
# title: e2e colour
# custom:
#   kind: validating
#   resources: [pods]
package portcullis.e2e_colour

deny contains {"msg": sprintf("pod %%s is %s", [input.request.name]), "check": "colour"} if {
	input.request.object.metadata.labels[%q] == %q
}
`, colour, auditLabel, colour)
}

// auditConfig switches the built-in validating policies off (so reports hold
// only the test policy's results) and puts the test policy in audit.
const auditConfig = `policies:
  e2e_colour: {enforcement: audit}
  pod_security: {enabled: false}
  image_sources: {enabled: false}
  secret_handling: {enabled: false}
  apparmor: {enabled: false}
  required_labels: {enabled: false}
`

// installReportCRDs creates the OpenReports CRDs of the reports-api module
// go.mod pins (its config/crd) and waits until they are served.
func installReportCRDs(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("locate reports-api module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd")
	ctrllog.SetLogger(logr.Discard()) // the report client's logger
	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	ctx := context.Background()
	for _, f := range []string{"openreports.io_reports.yaml", "openreports.io_clusterreports.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := dyn.Resource(crds).Create(ctx, &u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", u.GetName(), err)
		}
	}
	ok, msg := pollUntil(30*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		_, err := dyn.Resource(schema.GroupVersionResource{Group: "openreports.io", Version: "v1alpha1", Resource: "reports"}).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if !ok {
		t.Fatalf("reports CRD not served: %s", msg)
	}
}

// applyAuditRBAC creates the roles and bindings of
// manifests/audit/server-rbac.yaml, deleted when the test ends.
func applyAuditRBAC(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "manifests", "audit", "server-rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	ctx := context.Background()
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		gvr := schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: strings.ToLower(u.GetKind()) + "s"}
		var ri dynamic.ResourceInterface = dyn.Resource(gvr)
		if u.GetNamespace() != "" {
			ri = dyn.Resource(gvr).Namespace(u.GetNamespace())
		}
		if _, err := ri.Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() { _ = ri.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}) })
	}
}

func colourPod(name, colour string) *corev1.Pod {
	p := plainPod(name)
	p.Labels[auditLabel] = colour
	return p
}

// reportSubjects returns the names of the objects in ns's Portcullis report
// ("absent" when there is none) with their result and rule.
func reportSubjects(ctx context.Context, t *testing.T, ns string) (string, *orv1alpha1.Report) {
	c, err := audit.NewReportClient(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	var r orv1alpha1.Report
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: audit.ReportName}, &r); err != nil {
		if apierrors.IsNotFound(err) {
			return "absent", nil
		}
		return "error: " + err.Error(), nil
	}
	var names []string
	for _, res := range r.Results {
		for _, s := range res.Subjects {
			names = append(names, fmt.Sprintf("%s %s/%s: %s %s %s %s", s.Kind, s.Namespace, s.Name, res.Policy, res.Rule, res.Result, res.Description))
		}
	}
	slices.Sort(names)
	return strings.Join(names, "; "), &r
}

func waitReport(t *testing.T, ns, want string) *orv1alpha1.Report {
	t.Helper()
	var got string
	var rep *orv1alpha1.Report
	ok, _ := pollUntil(45*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		got, rep = reportSubjects(ctx, t, ns)
		return got == want, got
	})
	if !ok {
		t.Fatalf("report in %s:\n got %s\nwant %s", ns, got, want)
	}
	return rep
}

func violationsLine(ns string) string {
	return fmt.Sprintf(`portcullis_audit_violations{enforcement="audit",namespace=%q,policy="e2e_colour"}`, ns)
}

// TestBackgroundAudit: two servers share one audit Lease; the leader writes
// a Report listing exactly the violating pods, updates it when pods change
// and when the policy is reloaded; when the leader stops, the other replica
// takes over.
func TestBackgroundAudit(t *testing.T) {
	installReportCRDs(t)
	ns := newNamespace(t, nil)
	ctx := context.Background()
	pods := cluster.Client.CoreV1().Pods(ns)
	for name, colour := range map[string]string{"red-1": "red", "red-2": "red", "green-1": "green"} {
		if _, err := pods.Create(ctx, colourPod(name, colour), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The servers run as the manifests' ServiceAccount with exactly the
	// audit component's RBAC (manifests/audit/server-rbac.yaml).
	leaseNS := "portcullis-system"
	ensureNamespace(t, leaseNS)
	applyAuditRBAC(t)
	kubeconfig := writeKubeconfig(t, "system:serviceaccount:portcullis-system:portcullis")
	lease := "portcullis-audit-" + ns
	start := func(id string) *server {
		return startServer(t, serverOptions{
			FileCert:      true,
			Config:        auditConfig,
			ExtraPolicies: map[string]string{auditPolicyF: auditPolicy("red")},
			Args: []string{
				"--kubeconfig=" + kubeconfig, "--watch-namespaces",
				"--audit-interval=1h", "--audit-lease-namespace=" + leaseNS, "--audit-lease-name=" + lease,
				"--audit-lease-duration=3s", "--audit-identity=" + id,
			},
		})
	}
	a, b := start("a"), start("b")
	pod := func(name string) string {
		return fmt.Sprintf("Pod %s/%s: e2e_colour colour warn pod %s is", ns, name, name)
	}
	want := func(colour string, names ...string) string {
		var parts []string
		for _, n := range names {
			parts = append(parts, pod(n)+" "+colour)
		}
		slices.Sort(parts)
		return strings.Join(parts, "; ")
	}

	rep := waitReport(t, ns, want("red", "red-1", "red-2"))
	if rep.Source != "portcullis" || rep.Summary.Warn != 2 || rep.Labels[audit.ManagedByLabel] != audit.ManagedBy {
		t.Errorf("report source %q, summary %+v, labels %v", rep.Source, rep.Summary, rep.Labels)
	}
	if rep.Results[0].Severity != "low" || rep.Results[0].Properties["enforcement"] != "audit" {
		t.Errorf("result %+v", rep.Results[0])
	}
	leader, other := a, b
	if b.Metric(t, "portcullis_audit_leader") == 1 {
		leader, other = b, a
	}
	if leader.Metric(t, "portcullis_audit_leader") != 1 || other.Metric(t, "portcullis_audit_leader") != 0 {
		t.Fatalf("audit leaders: a=%v b=%v, want exactly one", a.Metric(t, "portcullis_audit_leader"), b.Metric(t, "portcullis_audit_leader"))
	}
	if got := leader.Metric(t, violationsLine(ns)); got != 2 {
		t.Errorf("%s = %v, want 2", violationsLine(ns), got)
	}
	// The gauges describe the last full pass: a reload just after start (the
	// watcher seeing the policy files settle) restarts the pass, so the
	// report can be there before the pass that counts its objects ends.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return leader.Metric(t, "portcullis_audit_objects") >= 3 && leader.Metric(t, "portcullis_audit_last_timestamp_seconds") != 0, nil
	}); err != nil {
		t.Errorf("objects %v, last timestamp %v", leader.Metric(t, "portcullis_audit_objects"), leader.Metric(t, "portcullis_audit_last_timestamp_seconds"))
	}
	if other.Metric(t, "portcullis_audit_evaluations_total") != 0 {
		t.Errorf("the replica without the Lease evaluated %v objects", other.Metric(t, "portcullis_audit_evaluations_total"))
	}

	// Objects change: green-1 turns red, red-1 goes away.
	g, err := pods.Get(ctx, "green-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g.Labels[auditLabel] = "red"
	if _, err := pods.Update(ctx, g, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "red-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, ns, want("red", "green-1", "red-2"))

	// Policy reload: now blue is the violating colour; one pod is blue.
	if _, err := pods.Create(ctx, colourPod("blue-1", "blue"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*server{a, b} {
		if err := os.WriteFile(filepath.Join(s.PoliciesDir, auditPolicyF), []byte(auditPolicy("blue")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitReport(t, ns, want("blue", "blue-1"))

	// The leader stops: the other replica takes the Lease and carries on.
	leader.Stop(t)
	ok, msg := pollUntil(30*time.Second, 200*time.Millisecond, func(context.Context) (bool, string) {
		v := other.Metric(t, "portcullis_audit_leader")
		return v == 1, fmt.Sprint("leader gauge ", v)
	})
	if !ok {
		t.Fatalf("the remaining replica did not take the audit Lease: %s", msg)
	}
	if err := pods.Delete(ctx, "blue-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, ns, "absent")
}

// runAudit runs `portcullis audit` with args and returns stdout, stderr and
// the exit code.
func runAudit(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(portcullisBin, append([]string{"audit"}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestAuditCLI: pods admitted by the webhook while the test policy is in
// audit are listed by `portcullis audit` as denied once the policy denies;
// a dry run of the tightening names them; namespace labels come from the
// cluster or from --namespace-labels.
func TestAuditCLI(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, serverOptions{
		FileCert:      true,
		Config:        auditConfig,
		ExtraPolicies: map[string]string{auditPolicyF: auditPolicy("red"), markerPolicyF: markerPolicy("blue")},
	})
	ensureNamespace(t, "portcullis-system")
	installWebhooks(t, "self-signed", srv.BaseURL, srv.CA.CertPEM)
	ns := newNamespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "privileged"})
	waitWebhooksServed(t, ns)
	pods := cluster.Client.CoreV1().Pods(ns)
	for name, colour := range map[string]string{"red-1": "red", "green-1": "green"} {
		if _, err := pods.Create(ctx, colourPod(name, colour), metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s admitted while its policy audits: %v", name, err)
		}
	}
	kubeconfig := writeKubeconfig(t, "")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	auditing := write("audit.yaml", auditConfig)
	denying := write("deny.yaml", strings.Replace(auditConfig, "e2e_colour: {enforcement: audit}", "e2e_colour: {enforcement: deny}", 1))
	common := []string{"--kubeconfig=" + kubeconfig, "-n", ns, "--policies=" + srv.PoliciesDir, "--kind=pods"}

	// As configured (audit): both admitted, red-1 listed with its audit violation.
	out, errOut, code := runAudit(t, append(common, "--config="+auditing)...)
	want := fmt.Sprintf(`PASS Pod %[1]s/green-1 (pods #0)
PASS Pod %[1]s/red-1 (pods #1)
  audit [e2e_colour] pod red-1 is red
2 objects: 2 admitted, 0 denied, 0 warned, 0 exempt, 0 invalid, 0 errors
  e2e_colour: 1 audited
`, ns)
	if code != 0 || out != want {
		t.Errorf("audit: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errOut)
	}
	if !strings.HasPrefix(errOut, "audited 2 objects of 1 kind in ") {
		t.Errorf("stderr %q", errOut)
	}

	// Tightened (deny): red-1 is denied, exit 1.
	out, _, code = runAudit(t, append(common, "--config="+denying, "-o", "json")...)
	var rep struct {
		Results []struct {
			Name       string `json:"name"`
			Status     string `json:"status"`
			Allowed    bool   `json:"allowed"`
			Violations []struct {
				Policy, Enforcement, Message, Check string
			} `json:"violations"`
		} `json:"results"`
		Summary struct{ Objects, Denied int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if code != 1 || rep.Summary.Objects != 2 || rep.Summary.Denied != 1 || len(rep.Results) != 2 || rep.Results[1].Name != "red-1" || rep.Results[1].Allowed || rep.Results[1].Status != "denied" ||
		len(rep.Results[1].Violations) != 1 || rep.Results[1].Violations[0].Check != "colour" || rep.Results[1].Violations[0].Enforcement != "deny" {
		t.Errorf("deny: exit %d, %+v", code, rep)
	}

	// Dry run of the tightening against the current (audit) configuration.
	out, _, code = runAudit(t, append(common, "--baseline-config="+auditing, "--baseline-policies="+srv.PoliciesDir, "--config="+denying)...)
	want = fmt.Sprintf(`FAIL Pod %[1]s/red-1 (pods #1)
  deny [e2e_colour] pod red-1 is red
1 object: 0 admitted, 1 denied, 0 warned, 0 exempt, 0 invalid, 0 errors
  e2e_colour: 1 denied
1 object in 1 namespace would be refused by the candidate policy set; 0 would be newly admitted
`, ns)
	if code != 1 || out != want {
		t.Errorf("dry run: exit %d, stdout:\n%s\nwant:\n%s", code, out, want)
	}

	// Namespace labels: a privileged pod in a namespace labelled
	// enforce=privileged passes pod_security (labels read from the
	// cluster); --namespace-labels overrides them.
	priv := privilegedPod("priv")
	priv.Labels = map[string]string{"app.kubernetes.io/name": "priv"}
	if _, err := pods.Create(ctx, priv, metav1.CreateOptions{DryRun: nil}); err != nil {
		t.Fatalf("privileged pod (pod_security off in the server): %v", err)
	}
	psOnly := []string{"--kubeconfig=" + kubeconfig, "-n", ns, "--kind=pods", "--policy=pod_security", "-o", "json"}
	out, _, code = runAudit(t, psOnly...)
	if code != 0 {
		t.Errorf("enforce=privileged from the cluster: exit %d\n%s", code, out)
	}
	out, _, code = runAudit(t, append(psOnly, "--namespace-labels="+ns+"=pod-security.kubernetes.io/enforce=baseline")...)
	if code != 1 || !strings.Contains(out, `"message": "privileged (container \"app\" must not set securityContext.privileged=true)"`) {
		t.Errorf("enforce=baseline from the flag: exit %d\n%s", code, out)
	}
}
