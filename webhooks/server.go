package webhooks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/net/netutil"
)

// Paths served.
const (
	PathValidate = "/validate"
	PathMutate   = "/mutate"
	PathHealthz  = "/healthz"
	PathReadyz   = "/readyz"
	PathMetrics  = "/metrics"
)

// ServerOptions configure the TLS webhook server and its plain-HTTP side ports.
type ServerOptions struct {
	// Addr is host:port of the TLS webhook listener.
	Addr string
	// CertFile and KeyFile are watched and reloaded on change (including
	// the symlink swap of a Secret volume).
	CertFile, KeyFile string
	// ClientCAFile, when set, requires client certificates signed by it.
	ClientCAFile string
	// ClientCN, when set with ClientCAFile, requires this common name.
	ClientCN string
	// HealthAddr serves /healthz and /readyz; MetricsAddr serves /metrics.
	// Empty disables either.
	HealthAddr, MetricsAddr string
	// ShutdownDelay keeps serving after readiness turns false, so endpoints
	// drop the pod before the listener closes.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout and ReadTimeout bound slow clients.
	ReadHeaderTimeout, ReadTimeout time.Duration
	// CertExpiryWindow: /readyz turns not ready this long before the serving
	// certificate expires (0: DefaultCertExpiryWindow; negative: only once
	// it has expired).
	CertExpiryWindow time.Duration
	// Metrics, if set, receives the certificate metrics.
	Metrics *Metrics
	// Now is the clock for certificate validity (tests; nil: time.Now).
	Now func() time.Time
	// MaxConnections caps the open connections of the TLS listener (0: no
	// cap); past it new connections wait in the kernel's accept queue until
	// one closes. Each connection costs buffers and a goroutine whatever it
	// sends.
	MaxConnections int
	// EnableHTTP2 turns on HTTP/2 (off by default: the apiserver speaks
	// HTTP/1.1 and HTTP/2 brings the rapid-reset class of attacks).
	EnableHTTP2 bool
	// ReadyDetails, if set, returns lines /readyz?verbose adds after its
	// status (the serving policy set; Kubernetes' own /readyz?verbose lists
	// its checks the same way). Plain /readyz answers only "ok".
	ReadyDetails func() []string
}

// Server is the webhook server. It is built on net/http rather than
// controller-runtime's webhook.Server because that one hard-codes its
// timeouts (no ReadTimeout) and shutdown; it still uses controller-runtime's
// certwatcher and admission types.
type Server struct {
	opts    ServerOptions
	mux     *http.ServeMux
	log     *zap.Logger
	gather  prometheus.Gatherer
	ready   func() error
	serving atomic.Bool
	closing atomic.Bool
	bound   chan struct{}
	addr    atomic.Value // net.Addr of the TLS listener
	health  atomic.Value
	metrics atomic.Value
	cert    atomic.Pointer[servingCert]
}

// NewServer returns a server; Handle registers paths before Start.
// ready reports whether the policies are loaded; gather serves /metrics.
func NewServer(opts ServerOptions, log *zap.Logger, gather prometheus.Gatherer, ready func() error) *Server {
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 25 * time.Second
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = 5 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 10 * time.Second
	}
	if opts.CertExpiryWindow == 0 {
		opts.CertExpiryWindow = DefaultCertExpiryWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, mux: http.NewServeMux(), log: log, gather: gather, ready: ready, bound: make(chan struct{})}
}

// Handle registers a handler on the TLS listener.
func (s *Server) Handle(path string, h http.Handler) { s.mux.Handle(path, h) }

// Addr returns the TLS listener's address once bound (after Bound is closed).
func (s *Server) Addr() net.Addr { a, _ := s.addr.Load().(net.Addr); return a }

// HealthAddr and MetricsAddr return the side listeners' addresses once bound.
func (s *Server) HealthAddr() net.Addr  { a, _ := s.health.Load().(net.Addr); return a }
func (s *Server) MetricsAddr() net.Addr { a, _ := s.metrics.Load().(net.Addr); return a }

// Bound is closed when all listeners are bound.
func (s *Server) Bound() <-chan struct{} { return s.bound }

// Ready reports readiness: listening, policies loaded, not shutting down,
// and a serving certificate that does not expire within CertExpiryWindow.
func (s *Server) Ready() error {
	if s.closing.Load() {
		return errors.New("shutting down")
	}
	if !s.serving.Load() {
		return errors.New("webhook listener not serving yet")
	}
	if sc := s.cert.Load(); sc != nil {
		if err := sc.ready(max(s.opts.CertExpiryWindow, 0)); err != nil {
			return err
		}
	}
	if s.ready != nil {
		return s.ready()
	}
	return nil
}

// TLSConfig builds the TLS configuration: TLS 1.2 minimum, AEAD cipher suites
// only on 1.2, HTTP/1.1 only unless HTTP/2 is enabled, and client
// certificate verification when a client CA is configured.
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), opts ServerOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"http/1.1"},
	}
	if opts.EnableHTTP2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	if opts.ClientCAFile != "" {
		pemBytes, err := os.ReadFile(opts.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("client CA %s: no PEM certificates", opts.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if cn := opts.ClientCN; cn != "" {
			cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
				for _, chain := range chains {
					if len(chain) > 0 && chain[0].Subject.CommonName == cn {
						return nil
					}
				}
				return fmt.Errorf("client certificate common name is not %q", cn)
			}
		}
	}
	return cfg, nil
}

// Start serves until ctx is cancelled, then shuts down gracefully: readiness
// turns false, the server keeps serving for ShutdownDelay, then stops
// accepting and lets in-flight requests finish.
func (s *Server) Start(ctx context.Context) error {
	// An expired or not-yet-valid pair stops the start: serving it would
	// fail every handshake while the probes say ready.
	cert, err := newServingCert(s.opts.CertFile, s.opts.KeyFile, s.opts.Now, s.log.Named("certs"), s.opts.Metrics)
	if err != nil {
		return fmt.Errorf("load serving certificate: %w", err)
	}
	s.cert.Store(cert)
	watcher := cert.watcher
	tlsCfg, err := TLSConfig(cert.GetCertificate, s.opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.opts.Addr, err)
	}
	s.addr.Store(ln.Addr())
	if s.opts.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, s.opts.MaxConnections)
	}

	srv := &http.Server{
		Handler:           s.mux,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.ReadTimeout + 5*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	if !s.opts.EnableHTTP2 {
		// A non-nil empty map disables net/http's automatic HTTP/2.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}

	side := []*http.Server{}
	serveSide := func(addr string, store *atomic.Value, h http.Handler) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		store.Store(l.Addr())
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
		side = append(side, hs)
		go func() {
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("side listener stopped", zap.String("addr", addr), zap.Error(err))
			}
		}()
		return nil
	}
	if err := serveSide(s.opts.HealthAddr, &s.health, s.healthMux()); err != nil {
		ln.Close()
		return err
	}
	if err := serveSide(s.opts.MetricsAddr, &s.metrics, promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{})); err != nil {
		ln.Close()
		return err
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go func() {
		if err := watcher.Start(watchCtx); err != nil {
			s.log.Error("certificate watcher stopped", zap.Error(err))
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	s.serving.Store(true)
	close(s.bound)
	s.log.Info("serving webhooks", zap.String("addr", ln.Addr().String()))

	select {
	case err := <-errc:
		return fmt.Errorf("webhook server: %w", err)
	case <-ctx.Done():
	}
	s.closing.Store(true)
	s.log.Info("shutting down: not ready", zap.Duration("delay", s.opts.ShutdownDelay))
	time.Sleep(s.opts.ShutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	for _, hs := range side {
		_ = hs.Shutdown(sctx)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("shut down cleanly")
	return nil
}

func (s *Server) healthMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc(PathReadyz, func(w http.ResponseWriter, r *http.Request) {
		var details string
		if s.opts.ReadyDetails != nil && r.URL.Query().Has("verbose") {
			details = "\n" + strings.Join(s.opts.ReadyDetails(), "\n") + "\n"
		}
		if err := s.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error()+details, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok" + details))
	})
	return mux
}

// CertPaths returns the tls.crt/tls.key paths inside dir.
func CertPaths(dir string) (cert, key string) {
	return filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
}
