package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis/portcullis/certs"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/version"
	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks"
	"github.com/portcullis/portcullis/webhooks/audit"
	"github.com/portcullis/portcullis/webhooks/bundles"
	"github.com/portcullis/portcullis/webhooks/registration"
)

// Certificate modes of `portcullis serve --cert-mode`.
const (
	// CertModeFile serves tls.crt/tls.key from --cert-dir (cert-manager or
	// any other tool writes them), or with no --cert-dir a self-signed
	// localhost certificate for local runs.
	CertModeFile = "file"
	// CertModeSelfSigned keeps a CA and serving certificate in a Secret and
	// the webhook configurations' caBundle up to date (certs.Manager).
	CertModeSelfSigned = "self-signed"
)

// ServeOptions configure `portcullis serve`.
type ServeOptions struct {
	Source PolicySourceOptions
	// Bundles are OPA bundles stacked over Source (package bundles).
	Bundles BundleOptions

	BindAddress string
	Port        int
	CertDir     string

	// Self-signed certificate mode.
	CertMode            string
	CertSecretName      string
	CertSecretNamespace string
	ServiceName         string
	WebhookConfigName   string
	CertExtraSANs       []string
	CertResyncInterval  time.Duration
	Kubeconfig          string
	// SyncWebhookRules adds the loaded policies' resources to the rules of
	// the two webhook configurations (package registration).
	SyncWebhookRules bool
	// CertExpiryWindow: /readyz turns not ready this long before the
	// serving certificate expires.
	CertExpiryWindow time.Duration

	HealthBindAddress  string
	MetricsBindAddress string
	ClientCAFile       string
	ClientCN           string
	EvalTimeout        time.Duration
	MaxBodyBytes       int64
	// AllowEmptyPolicies lets serve start, and reload, with no policies
	// (which admits everything); the benchmarks' floor server uses it.
	AllowEmptyPolicies bool
	ShutdownDelay      time.Duration
	ReadHeaderTimeout  time.Duration
	ReadTimeout        time.Duration
	EnableHTTP2        bool
	Perf               PerformanceOptions
	Cluster            ClusterOptions
	LogLevel           string
	LogFormat          string

	// Registry receives the metrics (default: controller-runtime's registry).
	Registry RegistererGatherer

	// Started, if set, is called once the server is listening (tests).
	Started func(*webhooks.Server)
	// KubeClient, if set, replaces the client built from --kubeconfig or
	// the in-cluster configuration (tests).
	KubeClient kubernetes.Interface
}

// NewServeOptions returns the defaults.
func NewServeOptions() *ServeOptions {
	return &ServeOptions{
		BindAddress:        "127.0.0.1",
		Port:               9443,
		CertMode:           CertModeFile,
		CertSecretName:     "portcullis-tls",
		ServiceName:        "portcullis",
		WebhookConfigName:  "portcullis",
		CertResyncInterval: certs.DefaultResyncInterval,
		CertExpiryWindow:   webhooks.DefaultCertExpiryWindow,
		HealthBindAddress:  "127.0.0.1:8081",
		MetricsBindAddress: "127.0.0.1:8080",
		EvalTimeout:        time.Second,
		MaxBodyBytes:       webhooks.DefaultMaxBodyBytes,
		Perf:               NewPerformanceOptions(),
		Cluster:            NewClusterOptions(),
		Bundles:            NewBundleOptions(),
		ShutdownDelay:      5 * time.Second,
		ReadHeaderTimeout:  5 * time.Second,
		ReadTimeout:        10 * time.Second,
		LogLevel:           "info",
		LogFormat:          "json",
	}
}

// AddFlags registers the serve flags.
func (o *ServeOptions) AddFlags(fs *pflag.FlagSet) {
	o.Source.AddFlags(fs)
	o.Bundles.AddFlags(fs)
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "address the TLS webhook listener binds (0.0.0.0 in a cluster)")
	fs.IntVar(&o.Port, "port", o.Port, "TLS webhook port")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory with tls.crt and tls.key, reloaded on change; with --cert-mode=self-signed, where the server writes them (default: a new temporary directory; in file mode with no --cert-dir, a self-signed localhost certificate generated there)")
	fs.StringVar(&o.CertMode, "cert-mode", o.CertMode, "file: serve the certificate in --cert-dir (cert-manager, or any tool that writes it); self-signed: keep a CA and serving certificate in a Secret, write the CA into the webhook configurations' caBundle and rotate before expiry")
	fs.StringVar(&o.CertSecretName, "cert-secret-name", o.CertSecretName, "self-signed mode: the Secret (kubernetes.io/tls, plus the CA key) holding the certificates")
	fs.StringVar(&o.CertSecretNamespace, "cert-secret-namespace", o.CertSecretNamespace, "self-signed mode: the namespace of the Secret and of the Service (required)")
	fs.StringVar(&o.ServiceName, "service-name", o.ServiceName, "self-signed mode: the Service the apiserver calls; the certificate covers <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local")
	fs.StringVar(&o.WebhookConfigName, "webhook-config-name", o.WebhookConfigName, "self-signed mode: the ValidatingWebhookConfiguration and MutatingWebhookConfiguration whose caBundle the server keeps")
	fs.StringSliceVar(&o.CertExtraSANs, "cert-extra-sans", o.CertExtraSANs, "self-signed mode: further DNS names or IP addresses for the serving certificate (webhooks reached by URL)")
	fs.DurationVar(&o.CertResyncInterval, "cert-resync-interval", o.CertResyncInterval, "self-signed mode: how often the Secret is re-read and the caBundles checked")
	fs.BoolVar(&o.SyncWebhookRules, "sync-webhook-rules", o.SyncWebhookRules, "self-signed mode: add the rules the loaded policies need (METADATA custom.resources, as `portcullis webhooks` prints them) to the --webhook-config-name configurations, at start, after every reload and every --cert-resync-interval; rules are only ever added")
	fs.DurationVar(&o.CertExpiryWindow, "cert-expiry-window", o.CertExpiryWindow, "/readyz turns not ready this long before the serving certificate expires (a rotation that did not happen; 0: only once expired); a pair that is expired or not yet valid is refused at start and on rotation whatever this says")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "with --cert-mode=self-signed, --watch-namespaces or --audit-interval: kubeconfig file to reach the API server (default: the in-cluster service account)")
	fs.StringVar(&o.HealthBindAddress, "health-probe-bind-address", o.HealthBindAddress, "plain-HTTP address for /healthz and /readyz (empty disables)")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "plain-HTTP address for /metrics (empty disables)")
	fs.StringVar(&o.ClientCAFile, "client-ca", o.ClientCAFile, "PEM CA bundle: require client certificates signed by it")
	fs.StringVar(&o.ClientCN, "client-cn", o.ClientCN, "with --client-ca: require this client certificate common name")
	fs.DurationVar(&o.EvalTimeout, "eval-timeout", o.EvalTimeout, "server-side deadline for evaluating one request; keep it below the webhooks' timeoutSeconds")
	fs.Int64Var(&o.MaxBodyBytes, "max-body-bytes", o.MaxBodyBytes, "largest AdmissionReview accepted (413 beyond)")
	o.Perf.AddFlags(fs)
	fs.BoolVar(&o.AllowEmptyPolicies, "allow-empty-policies", o.AllowEmptyPolicies, "start (and hot-reload) with no policies, which admits every request; without it an empty policy set is a start-up error and a reload to one is refused")
	o.Cluster.AddFlags(fs)
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", o.ShutdownDelay, "on SIGTERM, keep serving this long after readiness turns false")
	fs.DurationVar(&o.ReadHeaderTimeout, "read-header-timeout", o.ReadHeaderTimeout, "bound on reading request headers")
	fs.DurationVar(&o.ReadTimeout, "read-timeout", o.ReadTimeout, "bound on reading a whole request")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", o.EnableHTTP2, "serve HTTP/2 (off: the apiserver uses HTTP/1.1)")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", o.LogFormat, "json or console")
}

// Validate checks the flags.
func (o *ServeOptions) Validate() error {
	if err := o.Source.Validate(); err != nil {
		return err
	}
	if err := o.Bundles.Validate(); err != nil {
		return err
	}
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("--port %d: out of range", o.Port)
	}
	if o.EvalTimeout <= 0 {
		return errors.New("--eval-timeout must be positive")
	}
	if o.CertExpiryWindow < 0 {
		return errors.New("--cert-expiry-window must not be negative")
	}
	if err := o.Perf.Validate(); err != nil {
		return err
	}
	if err := o.Cluster.Validate(); err != nil {
		return err
	}
	if o.MaxBodyBytes <= 0 {
		return errors.New("--max-body-bytes must be positive")
	}
	if err := o.Perf.validateBodies(o.MaxBodyBytes); err != nil {
		return err
	}
	if o.ClientCN != "" && o.ClientCAFile == "" {
		return errors.New("--client-cn needs --client-ca")
	}
	if err := o.validateCertMode(); err != nil {
		return err
	}
	if _, err := zapcore.ParseLevel(o.LogLevel); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if o.LogFormat != "json" && o.LogFormat != "console" {
		return fmt.Errorf("--log-format %q: must be json or console", o.LogFormat)
	}
	return nil
}

// validateCertMode checks --cert-mode and the flags that go with it. The
// self-signed flags are refused in file mode rather than ignored: a manifest
// that forgot --cert-mode=self-signed would otherwise serve a certificate
// nobody trusts.
func (o *ServeOptions) validateCertMode() error {
	switch o.CertMode {
	case CertModeFile:
		d := NewServeOptions()
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"--cert-secret-name", o.CertSecretName != d.CertSecretName},
			{"--cert-secret-namespace", o.CertSecretNamespace != d.CertSecretNamespace},
			{"--service-name", o.ServiceName != d.ServiceName},
			{"--webhook-config-name", o.WebhookConfigName != d.WebhookConfigName},
			{"--cert-extra-sans", len(o.CertExtraSANs) > 0},
			{"--cert-resync-interval", o.CertResyncInterval != d.CertResyncInterval},
			{"--kubeconfig", o.Kubeconfig != d.Kubeconfig && !o.Cluster.needsCluster()},
			{"--sync-webhook-rules", o.SyncWebhookRules},
		} {
			if f.set && f.name == "--kubeconfig" {
				return fmt.Errorf("--kubeconfig needs --cert-mode=%s, --watch-namespaces or --audit-interval", CertModeSelfSigned)
			}
			if f.set {
				return fmt.Errorf("%s needs --cert-mode=%s", f.name, CertModeSelfSigned)
			}
		}
		return nil
	case CertModeSelfSigned:
		if o.CertSecretNamespace == "" {
			return fmt.Errorf("--cert-mode=%s needs --cert-secret-namespace", CertModeSelfSigned)
		}
		for _, f := range []struct {
			name, value string
			check       func(string) []string
		}{
			{"--cert-secret-name", o.CertSecretName, validation.IsDNS1123Subdomain},
			{"--cert-secret-namespace", o.CertSecretNamespace, validation.IsDNS1123Label},
			{"--service-name", o.ServiceName, validation.IsDNS1035Label},
			{"--webhook-config-name", o.WebhookConfigName, validation.IsDNS1123Subdomain},
		} {
			if errs := f.check(f.value); len(errs) > 0 {
				return fmt.Errorf("%s %q: %s", f.name, f.value, strings.Join(errs, "; "))
			}
		}
		for _, h := range o.CertExtraSANs {
			if net.ParseIP(h) == nil && len(validation.IsDNS1123Subdomain(h)) > 0 {
				return fmt.Errorf("--cert-extra-sans %q: not an IP address or DNS name", h)
			}
		}
		if o.CertResyncInterval <= 0 {
			return errors.New("--cert-resync-interval must be positive")
		}
		return nil
	default:
		return fmt.Errorf("--cert-mode %q: must be %s or %s", o.CertMode, CertModeFile, CertModeSelfSigned)
	}
}

func newServeCommand(streams IO) *cobra.Command {
	o := NewServeOptions()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the admission webhook server",
		Long: `Run the validating (/validate) and mutating (/mutate) admission webhooks over TLS.

With no flags it runs on an embedded default: the built-in policies and a
self-signed certificate for localhost, listening on 127.0.0.1:9443.`,
		Args: cobra.NoArgs,
		RunE: runE(o, streams),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// NewLogger builds the zap logger for the flags and makes it controller-runtime's
// logger too (left unset, controller-runtime's delegating logger leaks memory).
func NewLogger(level, format string, out zapcore.WriteSyncer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	log := zap.New(zapcore.NewCore(enc, out, lvl))
	ctrllog.SetLogger(zapr.NewLogger(log))
	return log, nil
}

// debugPrinter sends the policies' print() output to log at debug level,
// tagged with the policy and the call's file:line; it is nil (print
// compiled out, nothing spent on it) when log is above debug: print output
// can quote the objects under review, so it goes to the debug log only,
// never into a response.
func debugPrinter(log *zap.Logger) engine.PrintFunc {
	if !log.Core().Enabled(zapcore.DebugLevel) {
		return nil
	}
	return func(policy, location, message string) {
		log.Debug("policy print", zap.String("policy", policy), zap.String("location", location), zap.String("output", message))
	}
}

// Run is the composition root: it builds the logger, metrics, registry,
// engine, reloader, certificates and server, and serves until ctx is done.
// Policies that do not load stop it here: never serve allow-all.
func (o *ServeOptions) Run(ctx context.Context, streams IO) error {
	log, err := NewLogger(o.LogLevel, o.LogFormat, zapcore.AddSync(streams.Err))
	if err != nil {
		return usageError(err)
	}
	defer func() { _ = log.Sync() }()

	promReg := o.Registry
	if promReg == nil {
		promReg = ctrlmetrics.Registry
		// The process-wide registry also carries the Go runtime and process
		// collectors (go_goroutines, go_memstats_*, process_resident_memory_bytes),
		// what dashboards and `make soak` read; controller-runtime registers
		// them only in its manager, which this server does not use.
		for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
			if err := promReg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
				return fmt.Errorf("register runtime metrics: %w", err)
			}
		}
	}
	metrics, err := webhooks.NewMetrics(promReg)
	if err != nil {
		return err
	}
	setMetrics, err := webhooks.NewPolicySetMetrics(promReg)
	if err != nil {
		return err
	}
	if err := promReg.Register(version.NewCollector(version.Get())); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return fmt.Errorf("register build info: %w", err)
	}
	log.Info("starting", zap.String("version", version.Get().Version), zap.String("commit", version.Get().Commit))
	o.Source.Print = debugPrinter(log)
	var bundleMgr *bundles.Manager
	if len(o.Bundles.Bundles) > 0 {
		cfg, err := o.Bundles.config()
		if err != nil {
			return usageError(err)
		}
		bm, err := bundles.NewMetrics(promReg)
		if err != nil {
			return err
		}
		bundleMgr = &bundles.Manager{Config: cfg, Metrics: bm, Log: log.Named("bundles"), AllowEmpty: o.AllowEmptyPolicies}
		o.Source.Bundles = bundleMgr.Layers
	}
	reg, err := o.Source.Load(ctx)
	if err != nil {
		return usageError(err)
	}
	if len(reg.Policies()) == 0 && !o.AllowEmptyPolicies {
		return usageError(errNoPolicies)
	}
	logLoadFindings(log, reg)
	o.Perf.applyGC(log)
	var (
		kcfg      *rest.Config
		kclient   kubernetes.Interface
		nsLabels  *audit.NamespaceInformer
		nsFactory informers.SharedInformerFactory
	)
	engOpts := o.Perf.engineOptions()
	if o.Cluster.needsCluster() {
		if kcfg, err = kubeConfig(o.Kubeconfig); err != nil {
			return err
		}
		if kclient = o.KubeClient; kclient == nil {
			if kclient, err = kubernetes.NewForConfig(kcfg); err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
		}
		if nsLabels, nsFactory, err = o.startNamespaces(ctx, kclient, log); err != nil {
			return err
		}
		if nsLabels != nil {
			engOpts = append(engOpts, engine.WithNamespaceLabels(nsLabels))
		}
	}
	eng := engine.New(reg, metrics, engOpts...)
	status := &policySetStatus{eng: eng, metrics: metrics, set: setMetrics, log: log}
	status.serving(reg)
	readyDetails, ready := status.details, func() error { return nil }
	if bundleMgr != nil {
		readyDetails = func() []string { return append(status.details(), bundleMgr.Details()...) }
		ready = bundleMgr.Ready
	}
	var auditCtrl *audit.Controller
	if o.Cluster.AuditInterval > 0 {
		if auditCtrl, err = o.newAuditController(kcfg, kclient, nsFactory, eng, promReg, log); err != nil {
			return err
		}
		auditDone := make(chan struct{})
		go func() {
			defer close(auditDone)
			if err := auditCtrl.Run(ctx); err != nil {
				log.Error("background audit stopped", zap.Error(err))
			}
		}()
		// On shutdown, let the audit release its Lease before exiting.
		defer func() {
			select {
			case <-auditDone:
			case <-time.After(5 * time.Second):
			}
		}()
	}
	log.Info("policies loaded", zap.Int("count", len(reg.Policies())), zap.Strings("ids", policyIDs(reg)), zap.String("hash", reg.Hash()))

	certDir, err := o.certificates(ctx, streams, log)
	if err != nil {
		return err
	}
	certFile, keyFile := webhooks.CertPaths(certDir)

	srv := webhooks.NewServer(webhooks.ServerOptions{
		Addr:              net.JoinHostPort(o.BindAddress, strconv.Itoa(o.Port)),
		CertFile:          certFile,
		KeyFile:           keyFile,
		ClientCAFile:      o.ClientCAFile,
		ClientCN:          o.ClientCN,
		HealthAddr:        o.HealthBindAddress,
		MetricsAddr:       o.MetricsBindAddress,
		ShutdownDelay:     o.ShutdownDelay,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		EnableHTTP2:       o.EnableHTTP2,
		MaxConnections:    o.Perf.MaxConnections,
		ReadyDetails:      readyDetails,
		CertExpiryWindow:  certExpiryWindow(o.CertExpiryWindow),
		Metrics:           metrics,
	}, log, promReg, ready)
	lanes, err := o.Perf.admission() // one set of lanes across both paths
	if err != nil {
		return usageError(err)
	}
	for path, phase := range map[string]engine.Phase{webhooks.PathValidate: engine.Validating, webhooks.PathMutate: engine.Mutating} {
		srv.Handle(path, &webhooks.Webhook{
			Admission:    lanes,
			Handler:      &webhooks.Handler{Engine: eng, Phase: phase, Timeout: o.EvalTimeout, Log: log.Named("decision"), Metrics: metrics},
			MaxBodyBytes: o.MaxBodyBytes,
			Log:          log.Named("webhook"),
			Metrics:      metrics,
			Phase:        string(phase),
		})
	}

	// rulesChanged wakes the webhook-rules sync after a reload.
	rulesChanged := make(chan struct{}, 1)
	if o.SyncWebhookRules {
		client, err := o.client()
		if err != nil {
			return err
		}
		resolver := registration.NewResolver(nil)
		syncer := &registration.Syncer{Client: client, Name: o.WebhookConfigName}
		go syncer.Run(ctx, o.CertResyncInterval, func() registration.Rules { return resolver.Derive(eng.Registry().Policies()) }, rulesChanged, log.Named("rules"))
	}

	// reloaded follows every new policy set, from files or from a bundle.
	reloaded := func(reg *engine.Registry, err error) {
		status.onReload(reg, err)
		if err == nil {
			select {
			case rulesChanged <- struct{}{}:
			default:
			}
			if auditCtrl != nil {
				auditCtrl.Reloaded()
			}
		}
	}
	if bundleMgr != nil {
		bundleMgr.Engine = eng
		bundleMgr.OnActivate = reloaded
		bundleMgr.Load = func(ctx context.Context, layers []engine.Layer) (*engine.Registry, error) {
			src, err := o.Source.SourceWith(layers)
			if err != nil {
				return nil, err
			}
			return engine.Load(ctx, src)
		}
		stopBundles, err := bundleMgr.Start()
		if err != nil {
			return err
		}
		// On shutdown, stop the downloaders and remove their OCI stores.
		defer stopBundles()
	}
	if paths := o.Source.WatchPaths(); len(paths) > 0 {
		rl := &engine.Reloader{
			Engine:     eng,
			Load:       o.Source.Load,
			Paths:      paths,
			AllowEmpty: o.AllowEmptyPolicies,
			OnReload:   reloaded,
		}
		if bundleMgr != nil {
			rl.Lock = bundleMgr.Lock()
		}
		go func() {
			if err := rl.Run(ctx); err != nil {
				log.Error("policy watcher stopped", zap.Error(err))
			}
		}()
	}
	if o.Started != nil {
		go func() {
			select {
			case <-srv.Bound():
				o.Started(srv)
			case <-ctx.Done():
			}
		}()
	}
	return srv.Start(ctx)
}

// certificates returns the directory the server loads its certificate
// from. In self-signed mode it first brings the Secret, the caBundles and
// the directory up to date, and keeps them so in the background until ctx
// is done.
func (o *ServeOptions) certificates(ctx context.Context, streams IO, log *zap.Logger) (string, error) {
	if o.CertMode != CertModeSelfSigned {
		if o.CertDir != "" {
			return o.CertDir, nil
		}
		return o.selfSigned(streams)
	}
	dir := o.CertDir
	if dir == "" {
		d, err := os.MkdirTemp("", "portcullis-certs-")
		if err != nil {
			return "", fmt.Errorf("create certificate directory: %w", err)
		}
		dir = d
	}
	client, err := o.client()
	if err != nil {
		return "", err
	}
	mgr := &certs.Manager{
		Client:            client,
		Namespace:         o.CertSecretNamespace,
		SecretName:        o.CertSecretName,
		ServiceName:       o.ServiceName,
		ExtraHosts:        o.CertExtraSANs,
		WebhookConfigName: o.WebhookConfigName,
		Dir:               dir,
		ResyncInterval:    o.CertResyncInterval,
		Log:               log.Named("certs"),
	}
	if err := mgr.Start(ctx); err != nil {
		return "", err
	}
	go mgr.Run(ctx)
	return dir, nil
}

// client returns the KubeClient of tests, else one built by kubeClient.
func (o *ServeOptions) client() (kubernetes.Interface, error) {
	if o.KubeClient != nil {
		return o.KubeClient, nil
	}
	return o.kubeClient()
}

// certExpiryWindow maps the flag (0: not ready only once expired) to the
// server's option (where 0 means the default).
func certExpiryWindow(flag time.Duration) time.Duration {
	if flag == 0 {
		return -1
	}
	return flag
}

// kubeClient builds a clientset from --kubeconfig, or in a pod from its
// service account.
func (o *ServeOptions) kubeClient() (kubernetes.Interface, error) {
	cfg, err := kubeConfig(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
}

// selfSigned generates a CA and a localhost serving certificate into a new
// temporary directory and tells the user how to call the server.
func (o *ServeOptions) selfSigned(streams IO) (string, error) {
	dir, err := os.MkdirTemp("", "portcullis-certs-")
	if err != nil {
		return "", fmt.Errorf("create certificate directory: %w", err)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if ip := net.ParseIP(o.BindAddress); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		hosts = append(hosts, o.BindAddress)
	}
	b, err := certs.Generate(hosts, 365*24*time.Hour, 30*24*time.Hour, time.Now())
	if err != nil {
		return "", err
	}
	if err := b.WriteDir(dir); err != nil {
		return "", err
	}
	sample := filepath.Join(dir, "sample-review.json")
	if err := os.WriteFile(sample, []byte(sampleReview), 0o600); err != nil {
		return "", fmt.Errorf("write sample review: %w", err)
	}
	host := o.BindAddress
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	fmt.Fprintf(streams.Out, "Self-signed certificate for %v in %s\nCA bundle: %s\nTry:\n  curl --cacert %s -H 'Content-Type: application/json' --data @%s https://%s/validate\n",
		hosts, dir, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.crt"), sample, net.JoinHostPort(host, strconv.Itoa(o.Port)))
	return dir, nil
}

// RegistererGatherer is a Prometheus registry.
type RegistererGatherer interface {
	prometheus.Registerer
	prometheus.Gatherer
}

func policyIDs(reg *engine.Registry) []string {
	var ids []string
	for _, p := range reg.Policies() {
		ids = append(ids, p.ID)
	}
	return ids
}

// sampleReview is a privileged pod: the built-in policies refuse it.
const sampleReview = `{
  "apiVersion": "admission.k8s.io/v1",
  "kind": "AdmissionReview",
  "request": {
    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "namespace": "default",
    "name": "sample",
    "operation": "CREATE",
    "userInfo": {"username": "alice"},
    "object": {
      "apiVersion": "v1",
      "kind": "Pod",
      "metadata": {"name": "sample", "namespace": "default"},
      "spec": {"containers": [{"name": "app", "image": "nginx:latest", "securityContext": {"privileged": true}}]}
    }
  }
}
`

// logLoadFindings logs a registry's load warnings and which layer's
// policies replaced which.
func logLoadFindings(log *zap.Logger, reg *engine.Registry) {
	for _, w := range reg.Warnings {
		log.Warn("policy configuration", zap.String("warning", w))
	}
	for _, n := range reg.Notices {
		log.Info("policy layers", zap.String("replaced", n))
	}
}
