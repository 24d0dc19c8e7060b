package app

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestWebhooksCommand(t *testing.T) {
	tests := map[string]struct {
		args       []string
		code       int
		golden     string
		wantStderr string
	}{
		"built-in policies": {
			args: []string{"webhooks"}, golden: "webhooks-builtin.yaml",
		},
		"custom policies and names": {
			args:   []string{"webhooks", "--builtin=false", "--policies", "testdata/webhooks/services", "--webhook-config-name", "gatekeeper-like", "--validating-webhook-name", "v.example.com", "--mutating-webhook-name", "m.example.com"},
			golden: "webhooks-custom.yaml",
			wantStderr: "Warning: policy everything (testdata/webhooks/services/everything/everything.rego:7) declares no custom.resources: " +
				"it sees only what the other policies' rules send\n",
		},
		"bad name": {
			args: []string{"webhooks", "--webhook-config-name", "Not_A_Name"}, code: ExitUsage,
			wantStderr: "Error: --webhook-config-name \"Not_A_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')\n",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, "", tt.args...)
			if code != tt.code || errOut != tt.wantStderr {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, errOut, tt.code, tt.wantStderr)
			}
			if tt.golden != "" {
				golden(t, tt.golden, out)
			}
		})
	}
}

// TestServeSyncsWebhookRules: with --sync-webhook-rules the server adds its
// policies' resources to its own webhook configuration, and again after a
// reload brings a policy for another resource.
func TestServeSyncsWebhookRules(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/webhooks/services/no_nodeport/no_nodeport.rego")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "no_nodeport.rego"), src, 0o644); err != nil {
		t.Fatal(err)
	}
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
	o.Source.PoliciesDirs, o.Source.NoBuiltin = []string{dir}, true
	o.Port = 0
	o.HealthBindAddress, o.MetricsBindAddress = "", ""
	o.ShutdownDelay = 0
	o.CertMode = CertModeSelfSigned
	o.CertSecretNamespace = "portcullis-system"
	o.SyncWebhookRules = true
	o.CertDir = t.TempDir()
	o.KubeClient = cs
	o.Registry = prometheus.NewRegistry()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, IO{In: bytes.NewReader(nil), Out: io.Discard, Err: io.Discard}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	all := admissionregistrationv1.AllScopes
	rule := func(group, resource string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: []string{resource}, Scope: &all},
		}
	}
	// waitRules polls until the rules are want; touch, if set, runs every
	// half second meanwhile (the watcher starts concurrently with the first
	// sync, so one write could come before it watches).
	waitRules := func(want []admissionregistrationv1.RuleWithOperations, touch func()) {
		t.Helper()
		var got []admissionregistrationv1.RuleWithOperations
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			if touch != nil && i%10 == 0 {
				touch()
			}
			time.Sleep(50 * time.Millisecond)
			vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got = vwc.Webhooks[0].Rules; reflect.DeepEqual(got, want) {
				return
			}
		}
		t.Fatalf("rules: got %+v, want %+v", got, want)
	}
	waitRules([]admissionregistrationv1.RuleWithOperations{rule("", "services")}, nil)

	ingress := strings.NewReplacer("no_nodeport", "no_ingress", "services", "ingresses").Replace(string(src))
	waitRules([]admissionregistrationv1.RuleWithOperations{rule("", "services"), rule("networking.k8s.io", "ingresses")}, func() {
		if err := os.WriteFile(filepath.Join(dir, "no_ingress.rego"), []byte(ingress), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}
