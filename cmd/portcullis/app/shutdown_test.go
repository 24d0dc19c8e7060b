package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/certs"
	"github.com/portcullis/portcullis/webhooks"
)

// syncBuffer is a bytes.Buffer the server's logger and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// served is a `portcullis serve` running in-process (ServeOptions.Run).
type served struct {
	srv    *webhooks.Server
	cancel context.CancelFunc
	done   chan error
	log    *syncBuffer
	client *http.Client
}

// startServe runs o on 127.0.0.1:0 with a generated certificate, a health
// listener, its own metrics registry and the given policy directory; it
// returns once the server is listening.
func startServe(t *testing.T, o *ServeOptions, policyDir string) *served {
	t.Helper()
	dir := t.TempDir()
	b, err := certs.Generate([]string{"127.0.0.1"}, time.Hour, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b.CACert)
	o.Port = 0
	o.CertDir = dir
	o.HealthBindAddress = "127.0.0.1:0"
	o.MetricsBindAddress = ""
	o.Registry = prometheus.NewRegistry()
	if policyDir != "" {
		o.Source.PoliciesDirs, o.Source.NoBuiltin = []string{policyDir}, true
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &served{done: make(chan error, 1), log: &syncBuffer{}}
	started := make(chan *webhooks.Server, 1)
	o.Started = func(srv *webhooks.Server) { started <- srv }
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- o.Run(ctx, IO{In: bytes.NewReader(nil), Out: io.Discard, Err: s.log}) }()
	select {
	case s.srv = <-started:
	case err := <-s.done:
		t.Fatalf("Run returned before serving: %v\n%s", err, s.log)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	s.client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true},
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	return s
}

// review posts an AdmissionReview for obj to path and returns the HTTP
// status and the response (nil unless it decodes).
func (s *served) review(path, uid string, obj map[string]any) (int, *admissionv1.AdmissionResponse, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return 0, nil, err
	}
	return s.post(path, []byte(fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
		"uid":%q,"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
		"namespace":"default","name":"web","operation":"CREATE",
		"userInfo":{"username":"alice","extra":{"example.com/session":[%q]}},"object":%s}}`, uid, logCanary, raw)))
}

func (s *served) post(path string, body []byte) (int, *admissionv1.AdmissionResponse, error) {
	resp, err := s.client.Post("https://"+s.srv.Addr().String()+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, out.Response, nil
}

func (s *served) readyz() (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.srv.HealthAddr().String() + webhooks.PathReadyz)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func writePolicies(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func testPod(annotations map[string]any, privileged bool) map[string]any {
	c := map[string]any{"name": "app", "image": "nginx:latest",
		"env": []any{map[string]any{"name": "DB_PASSWORD", "value": logCanary}}}
	if privileged {
		c["securityContext"] = map[string]any{"privileged": true}
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "web", "namespace": "default", "annotations": annotations},
		"spec":     map[string]any{"containers": []any{c}},
	}
}

// slowPolicy asks backend before answering when the pod is annotated
// portcullis.test/slow: an evaluation whose end the test controls.
func slowPolicy(backend string) string {
	return `# METADATA
# title: Slow
# custom:
#   kind: validating
package portcullis.slow

deny contains {"msg": "the backend said no"} if {
	input.request.object.metadata.annotations["portcullis.test/slow"] == "true"
	resp := http.send({"method": "GET", "url": "` + backend + `", "timeout": "60s"})
	resp.status_code != 200
}
`
}

// On SIGTERM (Main turns it into ctx cancellation) the process first turns
// not ready while still serving, keeps serving for --shutdown-delay, then
// closes the listener; a request in flight throughout still completes with
// a 200, and only then does Run return nil.
func TestServeGracefulShutdown(t *testing.T) {
	called, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(called) })
		<-release
	}))
	defer backend.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	o := NewServeOptions()
	o.EvalTimeout = 60 * time.Second
	const delay = 500 * time.Millisecond
	o.ShutdownDelay = delay
	s := startServe(t, o, writePolicies(t, map[string]string{
		"slow/slow.rego": slowPolicy(backend.URL),
		// The sandbox refuses http.send unless the operator allows it.
		"config.yaml": "sandbox:\n  allow_builtins: [http.send]\n",
	}))

	if code, body := s.readyz(); code != 200 || body != "ok" {
		t.Fatalf("readyz before shutdown: %d %q", code, body)
	}
	type answer struct {
		status int
		resp   *admissionv1.AdmissionResponse
		err    error
		at     time.Time
	}
	inflight := make(chan answer, 1)
	go func() {
		status, resp, err := s.review(webhooks.PathValidate, "in-flight", testPod(map[string]any{"portcullis.test/slow": "true"}, false))
		inflight <- answer{status, resp, err, time.Now()}
	}()
	select {
	case <-called:
	case a := <-inflight:
		t.Fatalf("slow request answered before reaching the backend: %+v", a)
	case <-time.After(30 * time.Second):
		t.Fatal("slow policy never called its backend")
	}

	s.cancel() // what SIGTERM does through Main's signal.NotifyContext
	sigterm := time.Now()

	// 1. Readiness turns false at once, while the listener still serves.
	poll := func(what string, cond func() bool) time.Time {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Now()
	}
	var readyBody string
	notReady := poll("readiness false", func() bool {
		code, body := s.readyz()
		readyBody = body
		return code == http.StatusServiceUnavailable
	})
	if readyBody != "not ready: shutting down\n" {
		t.Errorf("readyz body %q", readyBody)
	}
	if d := notReady.Sub(sigterm); d >= delay {
		t.Errorf("readiness turned false %v after SIGTERM, not before the %v delay ended", d, delay)
	}
	if status, resp, err := s.review(webhooks.PathValidate, "during-delay", testPod(nil, false)); err != nil || status != 200 || !resp.Allowed {
		t.Errorf("request during the shutdown delay: %d %+v %v", status, resp, err)
	}

	// 2. Then the listener closes, with the slow request still in flight.
	addr := s.srv.Addr().String()
	closed := poll("listener closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if d := closed.Sub(sigterm); d < delay {
		t.Errorf("listener closed %v after SIGTERM, inside the %v delay", d, delay)
	}
	select {
	case a := <-inflight:
		t.Fatalf("in-flight request ended before the test released it: %+v", a)
	case err := <-s.done:
		t.Fatalf("Run returned with a request in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	// 3. The in-flight request completes normally; then Run returns nil.
	close(release)
	var a answer
	select {
	case a = <-inflight:
	case <-time.After(30 * time.Second):
		t.Fatal("in-flight request never completed")
	}
	if a.err != nil || a.status != 200 || a.resp == nil || !a.resp.Allowed || a.resp.UID != "in-flight" {
		t.Errorf("in-flight request: %d %+v %v", a.status, a.resp, a.err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the in-flight request")
	}
	log := s.log.String()
	for _, line := range []string{`"msg":"shutting down: not ready"`, `"msg":"shut down cleanly"`} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %s:\n%s", line, log)
		}
	}
}

// TestServeOptionsValidate: the serve flags other than the certificate
// modes (TestServeFlags), exact messages.
func TestServeOptionsValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"defaults", nil, ""},
		{"every listener flag", []string{"--bind-address=0.0.0.0", "--port=0", "--health-probe-bind-address=", "--metrics-bind-address=",
			"--client-ca=/ca.crt", "--client-cn=kube-apiserver", "--eval-timeout=2s", "--max-body-bytes=1", "--shutdown-delay=0s",
			"--read-header-timeout=1s", "--read-timeout=1s", "--enable-http2", "--log-level=debug", "--log-format=console"}, ""},
		{"port too large", []string{"--port=65536"}, "--port 65536: out of range"},
		{"negative port", []string{"--port=-1"}, "--port -1: out of range"},
		{"zero eval timeout", []string{"--eval-timeout=0s"}, "--eval-timeout must be positive"},
		{"negative eval timeout", []string{"--eval-timeout=-1s"}, "--eval-timeout must be positive"},
		{"zero body cap", []string{"--max-body-bytes=0"}, "--max-body-bytes must be positive"},
		{"client CN without client CA", []string{"--client-cn=kube-apiserver"}, "--client-cn needs --client-ca"},
		{"bad log level", []string{"--log-level=verbose"}, `--log-level: unrecognized level: "verbose"`},
		{"bad log format", []string{"--log-format=logfmt"}, `--log-format "logfmt": must be json or console`},
		{"missing policy directory", []string{"--policies=" + missing}, "--policies: stat " + missing + ": no such file or directory"},
		{"policies not a directory", []string{"--policies=" + file}, "--policies " + file + ": not a directory"},
		{"missing config", []string{"--config=" + missing}, "--config: stat " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serveValidate(t, tt.args); got != tt.err {
				t.Errorf("Validate() = %q, want %q", got, tt.err)
			}
		})
	}
}

// TestValidateAndTestOptionsValidate: the validate and test commands' flag
// checks, exact messages.
func TestValidateAndTestOptionsValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	validate := []struct {
		name string
		args []string
		err  string
	}{
		{"file", []string{"-f", "x.yaml"}, ""},
		{"stdin, every output", []string{"-f", "-", "-o", "yaml", "--no-mutate", "--show-patch", "--policy", "a", "-n", "team"}, ""},
		{"no input", nil, "no input: give -f FILE, -f DIR, -f - or -k DIR"},
		{"bad output", []string{"-f", "-", "-o", "table"}, `--output "table": must be one of text, json, junit, sarif, github, yaml`},
		{"update without old", []string{"-f", "-", "--operation", "update"}, "--operation UPDATE needs --old FILE with the old objects"},
		{"old without update", []string{"-f", "-", "--old", "x.yaml"}, "--old is only for --operation UPDATE, not CREATE"},
		{"bad operation", []string{"-f", "-", "--operation", "EXPLODE"}, `--operation "EXPLODE": must be CREATE, UPDATE or DELETE`},
		{"bad timeout", []string{"-f", "-", "--eval-timeout", "0s"}, "--eval-timeout must be positive"},
		{"missing policies", []string{"-f", "-", "--policies", missing}, "--policies: stat " + missing + ": no such file or directory"},
		{"missing config", []string{"-f", "-", "--config", missing}, "--config: stat " + missing + ": no such file or directory"},
	}
	for _, tt := range validate {
		t.Run("validate/"+tt.name, func(t *testing.T) {
			o := NewValidateOptions()
			fs := pflag.NewFlagSet("validate", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got := ""
			if err := o.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("Validate() = %q, want %q", got, tt.err)
			}
		})
	}
	for _, tt := range []struct{ name, dir, err string }{
		{"built-in set", "", ""},
		{"directory", t.TempDir(), ""},
		{"missing", missing, "stat " + missing + ": no such file or directory"},
		{"not a directory", file, file + ": not a directory"},
	} {
		t.Run("test/"+tt.name, func(t *testing.T) {
			o := &TestOptions{}
			if tt.dir != "" {
				o.Dirs = []string{tt.dir}
			}
			got := ""
			if err := o.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("Validate() = %q, want %q", got, tt.err)
			}
		})
	}
}
