package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/version"
	"github.com/portcullis/portcullis/webhooks"
)

// TestServeFlags: the certificate-mode flags through AddFlags and Validate.
func TestServeFlags(t *testing.T) {
	selfSigned := []string{"--cert-mode=self-signed", "--cert-secret-namespace=portcullis-system"}
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"default", nil, ""},
		{"file with a directory", []string{"--cert-mode=file", "--cert-dir=/certs"}, ""},
		{"self-signed", selfSigned, ""},
		{"self-signed, every flag", append(selfSigned, "--cert-secret-name=tls", "--service-name=webhook", "--webhook-config-name=portcullis.dev",
			"--cert-extra-sans=127.0.0.1,webhook.example", "--cert-resync-interval=30s", "--kubeconfig=/kube/config", "--cert-dir=/tmp/certs"), ""},
		{"unknown mode", []string{"--cert-mode=cert-manager"}, `--cert-mode "cert-manager": must be file or self-signed`},
		{"self-signed without namespace", []string{"--cert-mode=self-signed"}, "--cert-mode=self-signed needs --cert-secret-namespace"},
		{"bad secret name", append(selfSigned, "--cert-secret-name=TLS"), `--cert-secret-name "TLS": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"bad service name", append(selfSigned, "--service-name=9lives"), `--service-name "9lives": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`},
		{"bad extra SAN", append(selfSigned, "--cert-extra-sans=not a name"), `--cert-extra-sans "not a name": not an IP address or DNS name`},
		{"zero resync", append(selfSigned, "--cert-resync-interval=0s"), "--cert-resync-interval must be positive"},
		{"namespace in file mode", []string{"--cert-secret-namespace=portcullis-system"}, "--cert-secret-namespace needs --cert-mode=self-signed"},
		{"kubeconfig in file mode", []string{"--kubeconfig=/kube/config"}, "--kubeconfig needs --cert-mode=self-signed, --watch-namespaces or --audit-interval"},
		{"kubeconfig for namespace labels", []string{"--kubeconfig=/kube/config", "--watch-namespaces"}, ""},
		{"background audit", []string{"--kubeconfig=/kube/config", "--audit-interval=10m", "--audit-lease-namespace=portcullis-system"}, ""},
		{"audit without lease namespace", []string{"--audit-interval=10m"}, "--audit-interval needs --audit-lease-namespace"},
		{"audit lease duration", []string{"--audit-interval=10m", "--audit-lease-namespace=ns", "--audit-lease-duration=1s"}, "--audit-lease-duration 1s: at least 2s"},
		{"audit interval too short", []string{"--audit-interval=10ms", "--audit-lease-namespace=ns"}, "--audit-interval 10ms: at least 1s"},
		{"service in file mode", []string{"--cert-mode=file", "--service-name=webhook"}, "--service-name needs --cert-mode=self-signed"},
		{"lanes", []string{"--large-request-bytes=65536", "--max-concurrent-large-evaluations=2", "--small-bytes-in-flight=1048576", "--large-bytes-in-flight=4194304", "--max-connections=64"}, ""},
		{"cert expiry window", []string{"--cert-expiry-window=1h"}, ""},
		{"negative cert expiry window", []string{"--cert-expiry-window=-1s"}, "--cert-expiry-window must not be negative"},
		{"negative connections", []string{"--max-connections=-1"}, "--max-connections must not be negative"},
		{"zero large threshold", []string{"--large-request-bytes=0"}, "--large-request-bytes must be positive"},
		{"small budget below the threshold", []string{"--small-bytes-in-flight=1000"}, "--small-bytes-in-flight must be at least --large-request-bytes"},
		{"large budget below the body limit", []string{"--large-bytes-in-flight=1000"}, "--large-bytes-in-flight (1000) must be at least --max-body-bytes (3145728)"},
		{"rules sync in file mode", []string{"--sync-webhook-rules"}, "--sync-webhook-rules needs --cert-mode=self-signed"},
		{"rules sync in self-signed mode", append(selfSigned, "--sync-webhook-rules"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serveValidate(t, tt.args); got != tt.err {
				t.Errorf("Validate() = %q, want %q", got, tt.err)
			}
		})
	}
}

// TestServeSelfSigned runs the server in self-signed mode on a fake
// cluster: it starts serving a certificate for the Service that verifies
// under the Secret's CA, which it wrote into both caBundles.
func TestServeSelfSigned(t *testing.T) {
	cs := fake.NewClientset(
		&admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "portcullis"},
			Webhooks:   []admissionregistrationv1.ValidatingWebhook{{Name: "validate.portcullis.dev"}},
		},
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "portcullis"},
			Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "mutate.portcullis.dev"}},
		},
	)
	o := NewServeOptions()
	o.Port = 0
	o.HealthBindAddress, o.MetricsBindAddress = "", ""
	o.ShutdownDelay = 0
	o.CertMode = CertModeSelfSigned
	o.CertSecretNamespace = "portcullis-system"
	o.CertDir = t.TempDir()
	o.KubeClient = cs
	o.Registry = prometheus.NewRegistry()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	started := make(chan *webhooks.Server, 1)
	o.Started = func(s *webhooks.Server) { started <- s }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, IO{In: bytes.NewReader(nil), Out: io.Discard, Err: io.Discard}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var srv *webhooks.Server
	select {
	case srv = <-started:
	case err := <-done:
		done <- err // for the deferred wait, which would block forever otherwise
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start")
	}

	secret, err := cs.CoreV1().Secrets("portcullis-system").Get(ctx, "portcullis-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, secret.Data["ca.crt"]) {
		t.Errorf("caBundle is not the Secret's ca.crt")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(vwc.Webhooks[0].ClientConfig.CABundle)
	conn, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "portcullis.portcullis-system.svc"})
	if err != nil {
		t.Fatalf("TLS handshake under the caBundle: %v", err)
	}
	conn.Close()

	// The build is on /metrics as portcullis_build_info.
	info := version.Get()
	want := fmt.Sprintf("# HELP portcullis_build_info Always 1; the labels say which build of Portcullis is running.\n# TYPE portcullis_build_info gauge\nportcullis_build_info{commit=%q,go_version=%q,version=%q} 1\n", info.Commit, info.GoVersion, info.Version)
	if err := testutil.GatherAndCompare(o.Registry, strings.NewReader(want), "portcullis_build_info"); err != nil {
		t.Error(err)
	}
}

// serveValidate parses args with serve's flags and returns what Validate
// says ("" when it accepts them).
func serveValidate(t *testing.T, args []string) string {
	t.Helper()
	o := NewServeOptions()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		return err.Error()
	}
	return ""
}
