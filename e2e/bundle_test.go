//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/open-policy-agent/opa/v1/bundle"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// signingKey is an RSA key pair as PEM, what `opa sign --signing-key` and
// `serve --bundle-verification-key` take.
type signingKey struct{ private, public string }

func newSigningKey(t *testing.T) signingKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{
		private: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}
}

// bundleTarball builds a bundle of Rego files with revision, signed with
// key when not nil, as `opa build -b` then `opa sign --bundle` do.
func bundleTarball(t *testing.T, files map[string]string, revision string, key *signingKey) []byte {
	t.Helper()
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: map[string]any{}}
	for p, content := range files {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + p, Path: "/" + p, Raw: []byte(content)})
	}
	b.Manifest.Init()
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, "RS256", ""), "", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// httpsBundles serves one bundle over HTTPS on loopback with an ETag,
// answering If-None-Match with 304, as nginx or S3 do.
type httpsBundles struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
}

func newHTTPSBundles(t *testing.T) *httpsBundles {
	s := &httpsBundles{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		if body == nil {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag) // on 304 too, as nginx and S3 do
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *httpsBundles) set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

// pushOCI pushes a bundle tarball to ref the way `oras push REF
// bundle.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip` does: one
// layer of that media type (the one OPA's OCI downloader takes) in an OCI
// image manifest.
func pushOCI(t *testing.T, ref string, tarball []byte, transport http.RoundTripper) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(tarball, types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if err := remote.Write(r, img, remote.WithTransport(transport)); err != nil {
		t.Fatal(err)
	}
}

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
	key, other := newSigningKey(t), newSigningKey(t)

	web := newHTTPSBundles(t) // 404 until the first set
	reg := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "https://")
	ociRef := host + "/policies/services:v1"
	pushOCI(t, ociRef, bundleTarball(t, map[string]string{"no_lb/policy.rego": servicePolicy("no_lb", "LoadBalancer", "is not allowed")}, "oci-1", &key), reg.Client().Transport)

	dir := t.TempDir()
	caFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "key.pem")
	// httptest's TLS servers share one certificate (127.0.0.1).
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: web.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(key.public), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverOptions{FileCert: true, Args: []string{
		"--bundle=web=" + web.URL + "/bundles/services.tar.gz",
		"--bundle=oci=oci://" + ociRef,
		"--bundle-ca-file=" + caFile,
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
	web.set(bundleTarball(t, map[string]string{"no_nodeport/policy.rego": servicePolicy("no_nodeport", "NodePort", "is not allowed")}, "web-1", &key))
	srv.WaitReady(t)
	readyz := readyzVerbose(t, srv)
	for _, want := range []string{`bundle web: revision "web-1"`, `bundle oci: revision "oci-1"`} {
		if !strings.Contains(readyz, want) {
			t.Errorf("/readyz?verbose lacks %q:\n%s", want, readyz)
		}
	}

	ensureNamespace(t, "portcullis-system")
	installWebhooks(t, "self-signed", srv.BaseURL, srv.CA.CertPEM)
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
	ns := newNamespace(t, nil)
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	refused := func(typ corev1.ServiceType, want string) {
		t.Helper()
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec:       corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Port: 80}}},
		}
		ok, msg := pollUntil(60*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
			_, err := cluster.Client.CoreV1().Services(ns).Create(ctx, svc, dryRun)
			if err == nil || !strings.Contains(err.Error(), want) {
				return false, fmt.Sprintf("create %s Service: %v", typ, err)
			}
			return true, ""
		})
		if !ok {
			t.Fatalf("want a refusal with %q: %s", want, msg)
		}
	}
	refused(corev1.ServiceTypeNodePort, "Service web: type NodePort is not allowed")
	refused(corev1.ServiceTypeLoadBalancer, "Service web: type LoadBalancer is not allowed")
	if _, err := cluster.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "internal"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, dryRun); err != nil {
		t.Errorf("ClusterIP Service: %v", err)
	}

	// Updated in place: new revisions, the same process.
	pid := srv.cmd.Process.Pid
	web.set(bundleTarball(t, map[string]string{"no_nodeport/policy.rego": servicePolicy("no_nodeport", "NodePort", "is forbidden here")}, "web-2", &key))
	pushOCI(t, ociRef, bundleTarball(t, map[string]string{"no_lb/policy.rego": servicePolicy("no_lb", "LoadBalancer", "is forbidden here")}, "oci-2", &key), reg.Client().Transport)
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
			web.set(bundleTarball(t, map[string]string{"no_nodeport/policy.rego": "package portcullis.no_nodeport\n\ndeny contains"}, "web-3", &key))
		}},
		{"a bad signature", "oci", "signature", func() {
			pushOCI(t, ociRef, bundleTarball(t, map[string]string{"no_lb/policy.rego": servicePolicy("no_lb", "LoadBalancer", "is allowed after all")}, "oci-3", &other), reg.Client().Transport)
		}},
		{"no signature", "web", "signature", func() {
			web.set(bundleTarball(t, map[string]string{"no_nodeport/policy.rego": servicePolicy("no_nodeport", "NodePort", "is allowed after all")}, "web-4", nil))
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
	resp, err := http.Get("http://" + srv.MetricsAddr + "/metrics")
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
	resp, err := http.Get("http://" + srv.HealthAddr + "/readyz?verbose")
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
