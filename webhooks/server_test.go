package webhooks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/certs"
	"github.com/portcullis/portcullis/policies/engine"
)

// servingBundle generates a CA and a serving certificate for 127.0.0.1.
func servingBundle(t testing.TB) *certs.Bundle {
	t.Helper()
	b, err := certs.Generate([]string{"localhost", "127.0.0.1"}, time.Hour, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func certPool(t testing.TB, pemCerts ...[]byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, p := range pemCerts {
		if !pool.AppendCertsFromPEM(p) {
			t.Fatal("bad PEM")
		}
	}
	return pool
}

// clientCA is a CA issuing client certificates (certs.Generate only issues
// serving certificates).
type clientCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newClientCA(t testing.TB) *clientCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client-ca"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &clientCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *clientCA) issue(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type testServer struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan error
	roots  *x509.CertPool
}

// startServer starts a Server on 127.0.0.1:0 with /validate and any extra
// handlers. Zero options get test defaults: a generated certificate, health
// listener, short timeouts.
func startServer(t *testing.T, opts ServerOptions, ready func() error, extra map[string]http.Handler) *testServer {
	t.Helper()
	ts := &testServer{done: make(chan error, 1)}
	if opts.CertFile == "" {
		dir := t.TempDir()
		b := servingBundle(t)
		if err := b.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		opts.CertFile, opts.KeyFile = CertPaths(dir)
		ts.roots = certPool(t, b.CACert)
	}
	opts.Addr = "127.0.0.1:0"
	if opts.HealthAddr == "" {
		opts.HealthAddr = "127.0.0.1:0"
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	ts.srv = NewServer(opts, zap.NewNop(), prometheus.NewRegistry(), ready)
	eng := newEngine(t, fixturePolicies(t, nil))
	ts.srv.Handle(PathValidate, webhook(eng, engine.Validating, nil, nil))
	for path, h := range extra {
		ts.srv.Handle(path, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- ts.srv.Start(ctx) }()
	select {
	case <-ts.srv.Bound():
	case err := <-ts.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not bind")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	})
	return ts
}

func (ts *testServer) url(path string) string { return "https://" + ts.srv.Addr().String() + path }

func (ts *testServer) client(cfg *tls.Config) *http.Client {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.RootCAs == nil {
		cfg.RootCAs = ts.roots
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: true},
	}
}

// review posts a review over TLS and returns the status.
func (ts *testServer) review(t testing.TB, c *http.Client, body []byte) (int, error) {
	t.Helper()
	resp, err := c.Post(ts.url(PathValidate), "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	if resp.Proto != "HTTP/1.1" {
		t.Errorf("served over %s", resp.Proto)
	}
	return resp.StatusCode, nil
}

func TestServerTLSPolicy(t *testing.T) {
	t.Parallel()
	ca := newClientCA(t)
	caFile := filepath.Join(t.TempDir(), "client-ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	clientCert := ca.issue(t, "kube-apiserver")
	body := readTestdata(t, "pod-allowed.json")
	for _, mode := range []struct {
		name string
		opts ServerOptions
	}{
		{"no client CA", ServerOptions{}},
		{"client CA", ServerOptions{ClientCAFile: caFile, ClientCN: "kube-apiserver"}},
		{"no client CA, HTTP/2 enabled", ServerOptions{EnableHTTP2: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, mode.opts, nil, nil)
			base := func() *tls.Config {
				cfg := &tls.Config{RootCAs: ts.roots, ServerName: "127.0.0.1"}
				if mode.opts.ClientCAFile != "" {
					cfg.Certificates = []tls.Certificate{clientCert}
				}
				return cfg
			}
			tests := map[string]struct {
				configure func(*tls.Config)
				ok        bool
			}{
				"TLS 1.0": {func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }, false},
				"TLS 1.1": {func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }, false},
				"TLS 1.2 CBC-SHA": {func(c *tls.Config) {
					c.MaxVersion = tls.VersionTLS12
					c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}
				}, false},
				"TLS 1.2 CBC-SHA256": {func(c *tls.Config) {
					c.MaxVersion = tls.VersionTLS12
					c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
				}, false},
				"TLS 1.2 AES-GCM": {func(c *tls.Config) {
					c.MaxVersion = tls.VersionTLS12
					c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
				}, true},
				"TLS 1.2 ChaCha20-Poly1305": {func(c *tls.Config) {
					c.MaxVersion = tls.VersionTLS12
					c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
				}, true},
				"TLS 1.3": {func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }, true},
			}
			for name, tc := range tests {
				cfg := base()
				tc.configure(cfg)
				conn, err := tls.Dial("tcp", ts.srv.Addr().String(), cfg)
				if err == nil {
					// TLS 1.3 reports client certificate failures on the first read.
					_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
					_, err = fmt.Fprintf(conn, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
					if err == nil {
						_, err = io.ReadAll(conn)
					}
					conn.Close()
				}
				if ok := err == nil; ok != tc.ok {
					t.Errorf("%s: handshake ok = %v (%v), want %v", name, ok, err, tc.ok)
				}
				// Refused by the server, not by our own client's limits.
				if err != nil && !strings.Contains(err.Error(), "remote error: tls: ") {
					t.Errorf("%s: not refused by the server: %v", name, err)
				}
			}

			// ALPN: h2 only when enabled.
			cfg := base()
			cfg.NextProtos = []string{"h2", "http/1.1"}
			conn, err := tls.Dial("tcp", ts.srv.Addr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := "http/1.1"
			if mode.opts.EnableHTTP2 {
				want = "h2"
			}
			if got := conn.ConnectionState().NegotiatedProtocol; got != want {
				t.Errorf("ALPN negotiated %q, want %q", got, want)
			}
			conn.Close()

			if !mode.opts.EnableHTTP2 {
				// A full request from an HTTP/2-eager client stays on HTTP/1.1.
				status, err := ts.review(t, ts.client(base()), body)
				if err != nil || status != http.StatusOK {
					t.Errorf("review: %d %v", status, err)
				}
			}
		})
	}
}

func TestServerClientCertificates(t *testing.T) {
	t.Parallel()
	ca, otherCA := newClientCA(t), newClientCA(t)
	caFile := filepath.Join(t.TempDir(), "client-ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, ServerOptions{ClientCAFile: caFile, ClientCN: "kube-apiserver"}, nil, nil)
	body := readTestdata(t, "pod-allowed.json")
	tests := map[string]struct {
		certs []tls.Certificate
		ok    bool
	}{
		"no client certificate":        {nil, false},
		"certificate from another CA":  {[]tls.Certificate{otherCA.issue(t, "kube-apiserver")}, false},
		"right CA, wrong common name":  {[]tls.Certificate{ca.issue(t, "mallory")}, false},
		"right CA, right common name":  {[]tls.Certificate{ca.issue(t, "kube-apiserver")}, true},
		"right CA, right name, TLS1.2": {[]tls.Certificate{ca.issue(t, "kube-apiserver")}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := &tls.Config{Certificates: tc.certs}
			if strings.HasSuffix(name, "TLS1.2") {
				cfg.MaxVersion = tls.VersionTLS12
			}
			status, err := ts.review(t, ts.client(cfg), body)
			if ok := err == nil && status == http.StatusOK; ok != tc.ok {
				t.Errorf("ok = %v (status %d, err %v), want %v", ok, status, err, tc.ok)
			}
		})
	}

	// Without a CN requirement any certificate from the CA is accepted.
	open := startServer(t, ServerOptions{ClientCAFile: caFile}, nil, nil)
	status, err := open.review(t, open.client(&tls.Config{Certificates: []tls.Certificate{ca.issue(t, "anyone")}}), body)
	if err != nil || status != http.StatusOK {
		t.Errorf("any CN: %d %v", status, err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	tests := map[string]struct{ file, want string }{
		"missing file": {missing, "read client CA: open " + missing + ": no such file or directory"},
		"not PEM":      {notPEM, "client CA " + notPEM + ": no PEM certificates"},
	}
	for name, tc := range tests {
		_, err := TLSConfig(nil, ServerOptions{ClientCAFile: tc.file})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %s", name, err, tc.want)
		}
	}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Readiness follows the policies; on shutdown it turns false while the
// server keeps serving for ShutdownDelay, and in-flight requests finish.
func TestServerReadinessAndShutdown(t *testing.T) {
	t.Parallel()
	var policiesLoaded atomic.Bool
	ready := func() error {
		if !policiesLoaded.Load() {
			return errors.New("policies not loaded")
		}
		return nil
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(started) })
		<-release
		_, _ = w.Write([]byte("finished"))
	})
	const delay = 600 * time.Millisecond
	ts := startServer(t, ServerOptions{ShutdownDelay: delay, MetricsAddr: "127.0.0.1:0"}, ready, map[string]http.Handler{"/slow": slow})
	health := "http://" + ts.srv.HealthAddr().String()

	if code, body := get(t, health+PathHealthz); code != 200 || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, body := get(t, health+PathReadyz); code != 503 || body != "not ready: policies not loaded\n" {
		t.Errorf("readyz before policies: %d %q", code, body)
	}
	policiesLoaded.Store(true)
	if code, body := get(t, health+PathReadyz); code != 200 || body != "ok" {
		t.Errorf("readyz: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+ts.srv.MetricsAddr().String()+PathMetrics); code != 200 {
		t.Errorf("metrics: %d", code)
	}

	// A request in flight when shutdown begins.
	client := ts.client(nil)
	inflight := make(chan string, 1)
	go func() {
		resp, err := client.Get(ts.url("/slow"))
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inflight <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-started
	shutdownAt := time.Now()
	ts.cancel()

	// During the delay: not ready, but still serving new requests.
	time.Sleep(50 * time.Millisecond)
	if code, body := get(t, health+PathReadyz); code != 503 || body != "not ready: shutting down\n" {
		t.Errorf("readyz during shutdown: %d %q", code, body)
	}
	if status, err := ts.review(t, client, readTestdata(t, "pod-allowed.json")); err != nil || status != 200 {
		t.Errorf("request during the shutdown delay: %d %v", status, err)
	}
	// Past the delay the listener stops accepting; the in-flight request
	// still completes.
	time.Sleep(delay)
	close(release)
	if got := <-inflight; got != "200 finished" {
		t.Errorf("in-flight request: %s", got)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Start returned %v", err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
	if took := time.Since(shutdownAt); took < delay {
		t.Errorf("stopped after %v, before the shutdown delay %v", took, delay)
	}
	if _, err := net.DialTimeout("tcp", ts.srv.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

// Slow clients are cut off by the read timeouts; others are unaffected.
func TestServerSlowClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, ServerOptions{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond}, nil, nil)
	conn, err := tls.Dial("tcp", ts.srv.Addr().String(), &tls.Config{RootCAs: ts.roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /validate HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.ReadAll(conn) // the server closes (possibly after a 408)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("slow client held the connection for %v", took)
	}
	status, err := ts.review(t, ts.client(nil), readTestdata(t, "pod-allowed.json"))
	if err != nil || status != 200 {
		t.Errorf("normal request: %d %v", status, err)
	}
}

// writeSecretVolume lays out dir like a kubelet-projected Secret volume:
// tls.crt -> ..data/tls.crt, ..data -> ..<version>. Each call publishes a
// new version by swapping the ..data symlink atomically, then deletes the
// old version, as the kubelet does.
func writeSecretVolume(t testing.TB, dir, version string, cert, key []byte) {
	t.Helper()
	vdir := filepath.Join(dir, "..v"+version)
	if err := os.MkdirAll(vdir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(vdir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(vdir), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func leafDER(t testing.TB, certPEM []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("bad PEM")
	}
	return block.Bytes
}

// A certificate rotated on disk (Secret volume symlink swap) is served within
// seconds, without a single failed handshake; a broken pair is ignored.
func TestServerCertificateRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second, third := servingBundle(t), servingBundle(t), servingBundle(t)
	writeSecretVolume(t, dir, "1", first.Cert, first.Key)
	certFile, keyFile := CertPaths(dir)
	ts := startServer(t, ServerOptions{CertFile: certFile, KeyFile: keyFile}, nil, nil)
	roots := certPool(t, first.CACert, second.CACert, third.CACert)

	served := func() ([]byte, error) {
		conn, err := tls.Dial("tcp", ts.srv.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw, nil
	}
	// Handshakes run throughout; none may fail.
	var handshakes, failures atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			handshakes.Add(1)
			if _, err := served(); err != nil {
				failures.Add(1)
				lastErr.Store(err)
			}
		}
	}()
	waitServed := func(want []byte, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := served()
			if err == nil && bytes.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not served within 5s (err %v)", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitServed(leafDER(t, first.Cert), "first certificate")
	time.Sleep(200 * time.Millisecond) // see TestServerCertificateRewrite
	writeSecretVolume(t, dir, "2", second.Cert, second.Key)
	waitServed(leafDER(t, second.Cert), "rotated certificate")

	// A broken pair (certificate and key that do not match) keeps the old one.
	writeSecretVolume(t, dir, "3", third.Cert, second.Key)
	time.Sleep(500 * time.Millisecond)
	if got, err := served(); err != nil || !bytes.Equal(got, leafDER(t, second.Cert)) {
		t.Errorf("after a broken pair: err %v, same certificate %v", err, bytes.Equal(got, leafDER(t, second.Cert)))
	}
	// ... until a good pair arrives.
	writeSecretVolume(t, dir, "4", third.Cert, third.Key)
	waitServed(leafDER(t, third.Cert), "certificate after the broken pair")

	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d handshakes failed during rotation; last: %v", n, handshakes.Load(), lastErr.Load())
	}
	if handshakes.Load() < 10 {
		t.Errorf("only %d handshakes ran", handshakes.Load())
	}
}

// certs.WriteDir (rename over each file, as `serve` does for its own
// self-signed certificate) is picked up too.
func TestServerCertificateRewrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := servingBundle(t), servingBundle(t)
	if err := first.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := CertPaths(dir)
	ts := startServer(t, ServerOptions{CertFile: certFile, KeyFile: keyFile}, nil, nil)
	// The certificate watcher adds its inotify watches just after the
	// listener is bound; a change inside that window is only seen by its
	// 10s poll. Rotations happen hours after start, so wait it out.
	time.Sleep(200 * time.Millisecond)
	if err := second.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	roots := certPool(t, first.CACert, second.CACert)
	want := leafDER(t, second.Cert)
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := tls.Dial("tcp", ts.srv.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		got := conn.ConnectionState().PeerCertificates[0].Raw
		conn.Close()
		if bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("rewritten certificate not served within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerStartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := CertPaths(dir)
	srv := NewServer(ServerOptions{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}, zap.NewNop(), prometheus.NewRegistry(), nil)
	err := srv.Start(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "load serving certificate: ") {
		t.Errorf("missing certificate: err = %v", err)
	}
	if srv.Ready() == nil {
		t.Error("ready without serving")
	}
}

// Past MaxConnections a new connection is not served (its TLS handshake
// waits) until an open one closes; then it is.
func TestServerConnectionCap(t *testing.T) {
	t.Parallel()
	ts := startServer(t, ServerOptions{MaxConnections: 2}, nil, nil)
	dial := func() (*tls.Conn, error) {
		raw, err := net.Dial("tcp", ts.srv.Addr().String())
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, &tls.Config{RootCAs: ts.roots, ServerName: "127.0.0.1"})
		_ = conn.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if err := conn.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		_ = conn.SetDeadline(time.Time{})
		return conn, nil
	}
	var open []*tls.Conn
	for i := range 2 {
		c, err := dial()
		if err != nil {
			t.Fatalf("connection %d under the cap: %v", i, err)
		}
		open = append(open, c)
	}
	// The third handshake gets no answer while two connections are open.
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a third connection was served past a cap of 2")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("third connection: %v, want a handshake timeout", err)
	}
	open[0].Close()
	// The slot frees once the server sees the close; retry briefly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dial()
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one closed: %v", err)
		}
	}
	open[1].Close()
}

// bundleAt generates a serving pair as if issued at issued, valid for validity.
func bundleAt(t testing.TB, issued time.Time, validity time.Duration) *certs.Bundle {
	t.Helper()
	b, err := certs.Generate([]string{"localhost", "127.0.0.1"}, 24*time.Hour, validity, issued)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leafOf(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(leafDER(t, certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An expired or not-yet-valid pair stops the start with an error naming
// the date, instead of serving handshakes that every client refuses.
func TestServerRefusesInvalidCertificate(t *testing.T) {
	t.Parallel()
	now := time.Now()
	expired := bundleAt(t, now.Add(-3*time.Hour), time.Hour)
	future := bundleAt(t, now.Add(3*time.Hour), time.Hour)
	for name, tc := range map[string]struct {
		b    *certs.Bundle
		want string
	}{
		"expired":       {expired, "load serving certificate: certificate expired at " + leafOf(t, expired.Cert).NotAfter.UTC().Format(time.RFC3339)},
		"not yet valid": {future, "load serving certificate: certificate is not valid before " + leafOf(t, future.Cert).NotBefore.UTC().Format(time.RFC3339)},
	} {
		dir := t.TempDir()
		if err := tc.b.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		certFile, keyFile := CertPaths(dir)
		srv := NewServer(ServerOptions{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}, zap.NewNop(), prometheus.NewRegistry(), nil)
		if err := srv.Start(context.Background()); err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
		if srv.Ready() == nil {
			t.Errorf("%s: ready", name)
		}
	}
}

// Rotation refuses an expired pair (counted, logged) and keeps serving the
// valid one; the expiry metric follows the certificate in use; /readyz turns
// not ready within the window before it expires.
func TestServerCertificateExpiry(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var offset atomic.Int64 // the test's clock runs ahead by this much
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := bundleAt(t, now, 2*time.Hour)
	writeSecretVolume(t, dir, "1", first.Cert, first.Key)
	certFile, keyFile := CertPaths(dir)
	ts := startServer(t, ServerOptions{CertFile: certFile, KeyFile: keyFile, Metrics: m, Now: clock, CertExpiryWindow: 10 * time.Minute}, nil, nil)
	firstLeaf := leafOf(t, first.Cert)
	if got := metricValue(t, m.CertificateExpiry); got != float64(firstLeaf.NotAfter.Unix()) {
		t.Errorf("expiry metric %v, want %d", got, firstLeaf.NotAfter.Unix())
	}
	roots := certPool(t, first.CACert)
	served := func() []byte {
		t.Helper()
		conn, err := tls.Dial("tcp", ts.srv.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}

	// An expired pair rotated in is refused.
	time.Sleep(200 * time.Millisecond) // see TestServerCertificateRewrite
	expired := bundleAt(t, now.Add(-3*time.Hour), time.Hour)
	writeSecretVolume(t, dir, "2", expired.Cert, expired.Key)
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, m.CertificateRejected) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the expired pair was not seen within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !bytes.Equal(served(), leafDER(t, first.Cert)) {
		t.Error("an expired certificate was adopted")
	}
	if got := metricValue(t, m.CertificateExpiry); got != float64(firstLeaf.NotAfter.Unix()) {
		t.Errorf("expiry metric %v after a refused pair, want %d", got, firstLeaf.NotAfter.Unix())
	}
	if err := ts.srv.Ready(); err != nil {
		t.Errorf("not ready while serving a valid certificate: %v", err)
	}

	// Five minutes before the end: not ready, saying why.
	offset.Store(int64(firstLeaf.NotAfter.Sub(time.Now()) - 5*time.Minute))
	want := "serving certificate expires at " + firstLeaf.NotAfter.UTC().Format(time.RFC3339) + ", within 10m0s"
	if err := ts.srv.Ready(); err == nil || err.Error() != want {
		t.Errorf("Ready() = %v, want %q", err, want)
	}
	if code, body := get(t, "http://"+ts.srv.HealthAddr().String()+PathReadyz); code != http.StatusServiceUnavailable || body != "not ready: "+want+"\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}

	// A valid pair rotated in is served, and readiness comes back.
	offset.Store(0)
	second := bundleAt(t, now, 4*time.Hour)
	writeSecretVolume(t, dir, "3", second.Cert, second.Key)
	deadline = time.Now().Add(5 * time.Second)
	for !bytes.Equal(served(), leafDER(t, second.Cert)) {
		if time.Now().After(deadline) {
			t.Fatal("the valid pair was not served within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := metricValue(t, m.CertificateExpiry); got != float64(leafOf(t, second.Cert).NotAfter.Unix()) {
		t.Errorf("expiry metric %v, want the new certificate's", got)
	}
	offset.Store(int64(firstLeaf.NotAfter.Sub(time.Now()) - 5*time.Minute))
	if err := ts.srv.Ready(); err != nil {
		t.Errorf("not ready with the new certificate: %v", err)
	}
}
