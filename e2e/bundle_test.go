//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"

	"github.com/portcullis/portcullis/webhooks/bundles/bundletest"
)

// servicePolicy is a validating policy denying Services of type kind,
// with the message ending in word.
func servicePolicy(id, kind, word string) string {
	return fmt.Sprintf(`# METADATA
# title: No %[2]s Services
# custom:
#   kind: validating
#   resources:
#     - services
package portcullis.%[1]s

deny contains {"msg": msg} if {
	input.request.kind.kind == "Service"
	input.request.object.spec.type == "%[2]s"
	msg := sprintf("Service %%s: type %[2]s %[3]s", [input.request.object.metadata.name])
}
`, id, kind, word)
}

// TestBundleDelivery: custom policies delivered as signed OPA bundles, one
// over HTTPS and one from an OCI registry (both in-process, on loopback),
// deny objects on the real API server; each is updated in place (a new
// revision) and the new decision applies without a restart; a bundle with a
// syntax error, one with a bad signature and an unsigned one are refused and
// the last good set keeps serving.
func TestBundleDelivery(t *testing.T) {
	ctx := context.Background()
	key, other := bundletest.NewRSAKey(t), bundletest.NewRSAKey(t)

	web := bundletest.NewServer(t, nil) // 404 until the first Set
	reg := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "https://")
	ociRef := host + "/policies/services:v1"
	bundletest.PushOCI(t, ociRef, bundletest.Tarball(t, map[string]string{"no_lb/policy.rego": servicePolicy("no_lb", "LoadBalancer", "is not allowed")}, "oci-1", &key), reg.Client().Transport)

	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, []byte(key.Public), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverOptions{FileCert: true, Args: []string{
		"--bundle=web=" + web.URL + "/bundles/services.tar.gz",
		"--bundle=oci=oci://" + ociRef,
		"--bundle-ca-file=" + web.CAFile(), // httptest's TLS servers share one certificate (127.0.0.1)
		"--bundle-verification-key=" + keyFile,
		"--bundle-min-delay=1s", "--bundle-max-delay=1s",
		"--bundle-required",
	}, NoWait: true})
	// --bundle-required: not ready while the HTTPS bundle is missing.
	const notReady = "not ready: bundles not activated yet (--bundle-required): web\n"
	ok, msg := pollUntil(60*time.Second, 100*time.Millisecond, func(context.Context) (bool, string) {
		resp, err := http.Get("http://" + srv.HealthAddr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusServiceUnavailable && string(b) == notReady, fmt.Sprintf("%d %q", resp.StatusCode, b)
	})
	if !ok {
		t.Fatalf("want 503 %q: %s", notReady, msg)
	}
	ok, msg = pollUntil(30*time.Second, 100*time.Millisecond, func(context.Context) (bool, string) {
		v := srv.Metric(t, `portcullis_bundle_failures_total{bundle="web",reason="download"}`)
		return v >= 1, fmt.Sprintf("failures{web,download} = %v", v)
	})
	if !ok {
		t.Errorf("404 not counted: %s", msg)
	}
	web.Set(bundletest.Tarball(t, map[string]string{"no_nodeport/policy.rego": servicePolicy("no_nodeport", "NodePort", "is not allowed")}, "web-1", &key))
	srv.WaitReady(t)
	readyz := readyzVerbose(t, srv)
	for _, want := range []string{`bundle web: revision "web-1"`, `bundle oci: revision "oci-1"`} {
		if !strings.Contains(readyz, want) {
			t.Errorf("/readyz?verbose lacks %q:\n%s", want, readyz)
		}
	}

	ensureNamespace(t, "portcullis-system")
	installWebhooks(t, "self-signed", srv.BaseURL, srv.CA.CertPEM)
	validateServices(ctx, t)
	ns := newNamespace(t, nil)
	refused := func(typ corev1.ServiceType, want string) {
		t.Helper()
		waitServiceRefused(t, ns, typ, want)
	}
	refused(corev1.ServiceTypeNodePort, "Service web: type NodePort is not allowed")
	refused(corev1.ServiceTypeLoadBalancer, "Service web: type LoadBalancer is not allowed")
	checkClusterIPAdmitted(ctx, t, ns)

	// Updated in place: new revisions, the same process.
	pid := srv.cmd.Process.Pid
	web.Set(bundletest.Tarball(t, map[string]string{"no_nodeport/policy.rego": servicePolicy("no_nodeport", "NodePort", "is forbidden here")}, "web-2", &key))
	bundletest.PushOCI(t, ociRef, bundletest.Tarball(t, map[string]string{"no_lb/policy.rego": servicePolicy("no_lb", "LoadBalancer", "is forbidden here")}, "oci-2", &key), reg.Client().Transport)
	refused(corev1.ServiceTypeNodePort, "Service web: type NodePort is forbidden here")
	refused(corev1.ServiceTypeLoadBalancer, "Service web: type LoadBalancer is forbidden here")
	if srv.cmd.Process.Pid != pid {
		t.Errorf("restarted: pid %d → %d", pid, srv.cmd.Process.Pid)
	}

	// A --policies directory reload keeps the bundles' layers: a new
	// directory policy arrives, the bundles' policies still decide.
	reloads := srv.Metric(t, `portcullis_policy_reloads_total{result="success"}`)
	if err := os.MkdirAll(filepath.Join(srv.PoliciesDir, "no_externalname"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.PoliciesDir, "no_externalname", "policy.rego"), []byte(servicePolicy("no_externalname", "ExternalName", "is not allowed")), 0o644); err != nil {
		t.Fatal(err)
	}
	ok, msg = pollUntil(30*time.Second, 200*time.Millisecond, func(context.Context) (bool, string) {
		v := srv.Metric(t, `portcullis_policy_reloads_total{result="success"}`)
		return v > reloads, fmt.Sprintf("reloads %v", v)
	})
	if !ok {
		t.Fatalf("directory change not reloaded: %s", msg)
	}
	refused(corev1.ServiceTypeNodePort, "Service web: type NodePort is forbidden here")
	refused(corev1.ServiceTypeLoadBalancer, "Service web: type LoadBalancer is forbidden here")

	// Bad versions are refused, each counted by reason; the last good set
	// keeps serving.
	failures := func(bundle, reason string) float64 {
		return srv.Metric(t, fmt.Sprintf(`portcullis_bundle_failures_total{bundle=%q,reason=%q}`, bundle, reason))
	}
	waitFailure := func(bundle, reason string, before float64) {
		t.Helper()
		ok, msg := pollUntil(30*time.Second, 200*time.Millisecond, func(context.Context) (bool, string) {
			v := failures(bundle, reason)
			return v > before, fmt.Sprintf("failures{bundle=%s,reason=%s} = %v", bundle, reason, v)
		})
		if !ok {
			t.Fatalf("bad bundle not refused: %s", msg)
		}
	}
	for _, step := range []struct {
		what, bundle, reason string
		publish              func()
	}{
		{"a Rego syntax error (signed)", "web", "download", func() {
			web.Set(bundletest.Tarball(t, map[string]string{"no_nodeport/policy.rego": "package portcullis.no_nodeport\n\ndeny contains"}, "web-3", &key))
		}},
		{"a bad signature", "oci", "signature", func() {
			bundletest.PushOCI(t, ociRef, bundletest.Tarball(t, map[string]string{"no_lb/policy.rego": servicePolicy("no_lb", "LoadBalancer", "is allowed after all")}, "oci-3", &other), reg.Client().Transport)
		}},
		{"no signature", "web", "signature", func() {
			web.Set(bundletest.Tarball(t, map[string]string{"no_nodeport/policy.rego": servicePolicy("no_nodeport", "NodePort", "is allowed after all")}, "web-4", nil))
		}},
	} {
		before := failures(step.bundle, step.reason)
		step.publish()
		waitFailure(step.bundle, step.reason, before)
		refused(corev1.ServiceTypeNodePort, "Service web: type NodePort is forbidden here")
		refused(corev1.ServiceTypeLoadBalancer, "Service web: type LoadBalancer is forbidden here")
	}
	for _, b := range []string{"web", "oci"} {
		if v := srv.Metric(t, fmt.Sprintf(`portcullis_bundle_last_attempt_failed{bundle=%q}`, b)); v != 1 {
			t.Errorf("portcullis_bundle_last_attempt_failed{bundle=%q} = %v, want 1", b, v)
		}
	}
	readyz = readyzVerbose(t, srv)
	for _, want := range []string{`bundle web: revision "web-2"`, `bundle oci: revision "oci-2"`, "last attempt refused (signature)"} {
		if !strings.Contains(readyz, want) {
			t.Errorf("/readyz?verbose lacks %q:\n%s", want, readyz)
		}
	}
	metrics := metricsText(t, srv)
	for _, want := range []string{`portcullis_bundle_info{bundle="web",etag="\"`, `revision="web-2"} 1`, `portcullis_bundle_info{bundle="oci",etag="`, `revision="oci-2"} 1`, `portcullis_bundle_last_activation_timestamp_seconds{bundle="oci"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, `revision="web-1"`) || strings.Contains(metrics, `revision="oci-3"`) {
		t.Errorf("/metrics still names an old or refused revision:\n%s", grepLines(metrics, "portcullis_bundle_info"))
	}
}

// metricsText returns the /metrics exposition.
func metricsText(t *testing.T, srv *server) string {
	t.Helper()
	return getBody(t, "http://"+srv.MetricsAddr+"/metrics")
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// readyzVerbose returns the body of /readyz?verbose.
func readyzVerbose(t *testing.T, srv *server) string {
	t.Helper()
	return getBody(t, "http://"+srv.HealthAddr+"/readyz?verbose")
}

// getBody returns the body of a GET of url, whatever its status.
func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
