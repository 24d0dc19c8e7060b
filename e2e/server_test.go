//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/certs"
)

// server is a `portcullis serve` process on loopback.
type server struct {
	// Addr is the TLS webhook address (127.0.0.1:port); BaseURL is https://Addr.
	Addr, BaseURL string
	// HealthAddr and MetricsAddr are the plain-HTTP side listeners.
	HealthAddr, MetricsAddr string
	// CertDir holds the serving pair (file mode: published by the test).
	CertDir string
	// PoliciesDir is a copy of the repository's policies/, editable.
	PoliciesDir string
	// CA signed the serving certificate (file mode).
	CA *certs.CA

	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

// serverOptions configure startServer.
type serverOptions struct {
	// Args are appended to the common flags (listeners, policies, config,
	// --shutdown-delay=0).
	Args []string
	// Config is the --config YAML.
	Config string
	// FileCert: generate a CA and a serving certificate for 127.0.0.1 and
	// publish it into CertDir (file mode). Otherwise Args bring their own
	// certificate mode.
	FileCert bool
	// ExtraPolicies are files (path relative to the policies dir → content)
	// added to the copy of policies/.
	ExtraPolicies map[string]string
	// NoWait: do not wait for /readyz.
	NoWait bool
}

// startServer starts the portcullis binary built by TestMain, waits until
// /readyz answers 200, and stops it when the test ends.
//
// Its ports are picked free (freePort) and released before the server binds
// them, so another process may take one in between: the kernel hands the
// same ephemeral range to outgoing connections, and the API server and the
// other tests' clients make many. A server that exits because a port was
// taken is started again on new ports (at most bindAttempts times).
func startServer(t *testing.T, opts serverOptions) *server {
	t.Helper()
	tmp := t.TempDir()
	s := &server{
		CertDir:     filepath.Join(tmp, "certs"),
		PoliciesDir: filepath.Join(tmp, "policies"),
	}
	copyPolicies(t, filepath.Join("..", "policies"), s.PoliciesDir)
	for name, content := range opts.ExtraPolicies {
		path := filepath.Join(s.PoliciesDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	configFile := filepath.Join(tmp, "config.yaml")
	if err := os.WriteFile(configFile, []byte(opts.Config), 0o644); err != nil {
		t.Fatal(err)
	}
	if opts.FileCert {
		ca, err := certs.NewCA(24*time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		s.CA = ca
		s.PublishServingCert(t)
	}
	t.Cleanup(func() {
		if s.cmd == nil {
			return
		}
		s.Stop(t)
		if t.Failed() {
			t.Logf("portcullis log (last 60 lines):\n%s", s.log.tail(60))
		}
	})
	for attempt := 1; ; attempt++ {
		s.launch(t, configFile, opts.Args)
		if opts.NoWait {
			return s
		}
		err := s.waitReady()
		if err == nil {
			return s
		}
		if errors.Is(err, errExited) && attempt < bindAttempts && strings.Contains(s.log.String(), "address already in use") {
			t.Logf("portcullis could not bind a port picked for it (taken since), attempt %d of %d: starting it again on new ports", attempt, bindAttempts)
			continue
		}
		t.Fatal(err)
	}
}

// bindAttempts bounds startServer's restarts after a port was taken.
const bindAttempts = 3

// launch starts the server process on newly picked ports.
func (s *server) launch(t *testing.T, configFile string, extra []string) {
	t.Helper()
	port := freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.BaseURL = "https://" + s.Addr
	s.HealthAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	s.MetricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := append([]string{
		"serve",
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(port),
		"--cert-dir=" + s.CertDir,
		"--policies=" + s.PoliciesDir,
		"--config=" + configFile,
		"--health-probe-bind-address=" + s.HealthAddr,
		"--metrics-bind-address=" + s.MetricsAddr,
		"--shutdown-delay=0",
		"--log-format=console",
	}, extra...)
	s.log = &syncBuffer{}
	s.done = make(chan struct{})
	s.err = nil
	s.cmd = exec.Command(portcullisBin, args...)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start portcullis: %v", err)
	}
	cmd, done := s.cmd, s.done
	go func() {
		err := cmd.Wait()
		s.err = err
		close(done)
	}()
}

// errExited: the server process ended before it was ready.
var errExited = errors.New("portcullis exited before it was ready")

// WaitReady waits until /readyz answers 200 (60 s: two cores are shared).
func (s *server) WaitReady(t *testing.T) {
	t.Helper()
	if err := s.waitReady(); err != nil {
		t.Fatal(err)
	}
}

func (s *server) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%w (%v):\n%s", errExited, s.err, s.log.tail(40))
		default:
		}
		resp, err := client.Get("http://" + s.HealthAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("portcullis not ready after 60 s (last: %v):\n%s", err, s.log.tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for the process to exit (killing it after
// 20 s). Safe to call twice.
func (s *server) Stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("portcullis did not stop within 20 s of SIGTERM")
	}
}

// PublishServingCert issues a new serving certificate for 127.0.0.1 from
// s.CA and publishes it into CertDir the way the kubelet updates a Secret
// volume (..data symlink swap). It returns the certificate.
func (s *server) PublishServingCert(t *testing.T) *x509.Certificate {
	t.Helper()
	crt, key, err := s.CA.Issue([]string{"127.0.0.1", "localhost"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.PublishDir(s.CertDir, map[string][]byte{"tls.crt": crt, "tls.key": key, "ca.crt": s.CA.CertPEM}); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

// ServedCert returns the certificate the server presents now, verified
// under roots for 127.0.0.1.
func (s *server) ServedCert(roots []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, errors.New("no CA certificates")
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", s.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// Metric returns the value of the sample whose line starts with series
// (e.g. `portcullis_policy_reloads_total{result="error"}`), 0 if absent.
func (s *server) Metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return 0
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// copyPolicies copies the Rego modules and config.yaml of src into dst
// (what the server loads; Go files and test data stay behind).
func copyPolicies(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !strings.HasSuffix(path, ".rego") && rel != "config.yaml" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy policies: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tail returns the last n lines, leaving out the per-request decision log.
func (b *syncBuffer) tail(n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		if !strings.Contains(l, "admission decision") {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pollUntil calls cond every interval until it returns true or timeout
// passes; it returns cond's last error message for the failure report.
func pollUntil(timeout, interval time.Duration, cond func(ctx context.Context) (bool, string)) (bool, string) {
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, msg := cond(ctx)
		if ok {
			return true, ""
		}
		last = msg
		if time.Now().After(deadline) {
			return false, fmt.Sprintf("after %s: %s", timeout, last)
		}
		time.Sleep(interval)
	}
}
