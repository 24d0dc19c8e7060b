package bundles

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/policies/engine"
)

// Config is what the operator configures for all bundles.
type Config struct {
	// Bundles are fetched in parallel and stacked in this order.
	Bundles []Spec
	// MinDelay and MaxDelay bound the wait between polls (OPA picks a
	// random delay in between; whole seconds, as OPA counts them). A failed
	// download is retried sooner, backing off up to MaxDelay.
	MinDelay, MaxDelay time.Duration
	// CAFile, when set, is the PEM CA bundle trusted for the bundle servers
	// and registries (else the system roots).
	CAFile string
	// TokenFile, when set, holds a bearer token sent to every bundle server
	// and registry; it is read again on every request (rotated tokens work)
	// and never logged.
	TokenFile string
	// Verification, when not nil, holds the keys bundles must be signed with
	// (`opa sign`): an unsigned bundle or a bad signature is refused.
	Verification *bundle.VerificationConfig
	// MaxBytes bounds each file in a bundle, uncompressed (0: OPA's
	// default, 1 GiB).
	MaxBytes int64
	// Required: not ready until every bundle has activated once.
	Required bool
}

// Manager polls the bundles and activates each new one into Engine.
type Manager struct {
	Config Config
	// Engine serves the policy set; activations swap its registry.
	Engine *engine.Engine
	// Load builds the whole policy set: every other source, with the given
	// bundle layers stacked last (in Config.Bundles order).
	Load func(ctx context.Context, bundles []engine.Layer) (*engine.Registry, error)
	// AllowEmpty lets an activation leave no policies (serve
	// --allow-empty-policies).
	AllowEmpty bool
	// OnActivate, if set, is called after each activation attempt with its
	// error (nil on success), as engine.Reloader's OnReload.
	OnActivate func(reg *engine.Registry, err error)
	// Metrics receives the bundle metrics (nil: none).
	Metrics *Metrics
	// Log receives activations and failures (never credentials).
	Log *zap.Logger

	// swap serializes load-check-swap with the file reloader (Lock).
	swap sync.Mutex

	once   sync.Once
	mu     sync.Mutex // guards states' fields
	states []*state
}

// state is one bundle's progress.
type state struct {
	spec Spec
	// layer is the last good layer (nil until the first activation).
	layer       *engine.Layer
	revision    string
	etag        string
	activatedAt time.Time
	failedAt    time.Time // zero: the last attempt succeeded, or none yet
	failReason  string
}

func (m *Manager) init() {
	m.once.Do(func() {
		if m.Log == nil {
			m.Log = zap.NewNop()
		}
		for _, s := range m.Config.Bundles {
			m.states = append(m.states, &state{spec: s})
			if m.Metrics != nil {
				m.Metrics.init0(s.Name)
			}
		}
	})
}

// Lock is held during every activation from load to swap; give it to the
// file reloader (engine.Reloader.Lock), so that neither undoes the other.
func (m *Manager) Lock() sync.Locker { return &m.swap }

// Layers returns the bundles' last good layers, in order, for a load of the
// whole set by another source (a --policies directory changed). Bundles not
// activated yet are left out.
func (m *Manager) Layers() []engine.Layer {
	m.init()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.layersWith(-1, engine.Layer{})
}

// layersWith returns the good layers with layer i replaced by l (i < 0:
// none). m.mu is held.
func (m *Manager) layersWith(i int, l engine.Layer) []engine.Layer {
	var out []engine.Layer
	for j, s := range m.states {
		switch {
		case j == i:
			out = append(out, l)
		case s.layer != nil:
			out = append(out, *s.layer)
		}
	}
	return out
}

// Start starts one OPA downloader per bundle; each polls on its own
// goroutine until stop is called (stop waits for them and removes their
// OCI stores). An error (a store that cannot be created) starts nothing.
func (m *Manager) Start() (stop func(), err error) {
	m.init()
	var started []interface{ Stop(context.Context) }
	stop = func() {
		for _, d := range started {
			d.Stop(context.Background())
		}
	}
	for i, st := range m.states {
		d, err := m.downloader(i, st)
		if err != nil {
			stop()
			return nil, err
		}
		started = append(started, d)
	}
	return stop, nil
}

// Run is Start until ctx is done, then stop.
func (m *Manager) Run(ctx context.Context) error {
	stop, err := m.Start()
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	return nil
}

// downloader builds and starts the OPA downloader of bundle i.
func (m *Manager) downloader(i int, st *state) (interface{ Stop(context.Context) }, error) {
	client, err := m.client(st.spec)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", st.spec.Name, err)
	}
	minS, maxS := int64(m.Config.MinDelay/time.Second), int64(m.Config.MaxDelay/time.Second)
	cfg := download.Config{Polling: download.PollingConfig{MinDelaySeconds: &minS, MaxDelaySeconds: &maxS}}
	if err := cfg.ValidateAndInjectDefaults(); err != nil {
		return nil, fmt.Errorf("bundle %s: polling: %w", st.spec.Name, err)
	}
	cb := func(ctx context.Context, u download.Update) error { return m.handle(ctx, i, u) }
	parser := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	// The callbacks of one downloader run one after another, on its own
	// goroutine; its context is cancelled by Stop.
	switch st.spec.Kind {
	case KindOCI:
		store, err := os.MkdirTemp("", "portcullis-oci-")
		if err != nil {
			return nil, fmt.Errorf("bundle %s: OCI store: %w", st.spec.Name, err)
		}
		d := download.NewOCI(cfg, client, st.spec.Resource, store).
			WithCallback(cb).
			WithBundleVerificationConfig(m.Config.Verification).
			WithBundleParserOpts(parser)
		if m.Config.MaxBytes > 0 {
			d = d.WithSizeLimitBytes(m.Config.MaxBytes)
		}
		d.Start(context.Background())
		return stopRemove{d, store}, nil
	default:
		d := download.New(cfg, client, st.spec.Resource).
			WithCallback(cb).
			WithBundleVerificationConfig(m.Config.Verification).
			WithBundleParserOpts(parser).
			WithBundleName(st.spec.Name)
		if m.Config.MaxBytes > 0 {
			d = d.WithSizeLimitBytes(m.Config.MaxBytes)
		}
		d.Start(context.Background())
		return d, nil
	}
}

// stopRemove stops an OCI downloader and removes its blob store.
type stopRemove struct {
	d   *download.OCIDownloader
	dir string
}

func (s stopRemove) Stop(ctx context.Context) {
	s.d.Stop(ctx)
	_ = os.RemoveAll(s.dir)
}

// client builds OPA's REST client for a bundle: the service URL, the CA,
// the bearer token file. Documented at
// https://www.openpolicyagent.org/docs/configuration#services.
func (m *Manager) client(s Spec) (rest.Client, error) {
	cfg := map[string]any{"name": s.Name, "url": s.Service}
	if s.Kind == KindOCI {
		cfg["type"] = "oci"
	}
	if m.Config.CAFile != "" {
		cfg["tls"] = map[string]any{"ca_cert": m.Config.CAFile}
	}
	if m.Config.TokenFile != "" {
		cfg["credentials"] = map[string]any{"bearer": map[string]any{"token_path": m.Config.TokenFile}}
	}
	doc, err := json.Marshal(cfg)
	if err != nil {
		return rest.Client{}, err
	}
	return rest.New(doc, nil, rest.Logger(newOPALogger(m.Log.Named("opa").With(zap.String("bundle", s.Name)))))
}

// handle is the downloaders' callback: a failed download is recorded, a
// bundle not modified (HTTP 304, the same OCI digest) changes nothing, a new
// bundle is activated.
func (m *Manager) handle(ctx context.Context, i int, u download.Update) error {
	m.init()
	st := m.states[i]
	if u.Error != nil {
		m.failed(st, classify(u.Error), u.Error)
		return nil // the downloader retries with backoff on its own
	}
	if u.Bundle == nil {
		m.Log.Debug("bundle not modified", zap.String("bundle", st.spec.Name), zap.String("etag", u.ETag))
		m.recovered(st, u.ETag)
		return nil
	}
	m.mu.Lock()
	same := st.layer != nil && u.ETag != "" && u.ETag == st.etag
	m.mu.Unlock()
	if same {
		// The version serving, downloaded again after a failed poll (OPA's
		// HTTP downloader forgets the ETag on an error): nothing to do.
		m.recovered(st, u.ETag)
		return nil
	}
	l, err := Layer(st.spec.Name, u.Bundle)
	if err != nil {
		m.failed(st, ReasonInvalid, err)
		return nil
	}
	m.activate(ctx, i, l, u.Bundle.Manifest.Revision, u.ETag)
	return nil
}

// activate loads the whole set with layer l as bundle i, checks it as a
// reload is checked and swaps it in; a failure keeps the last good set (and
// bundle i's last good layer).
func (m *Manager) activate(ctx context.Context, i int, l engine.Layer, revision, etag string) {
	st := m.states[i]
	m.swap.Lock()
	m.mu.Lock()
	layers := m.layersWith(i, l)
	m.mu.Unlock()
	reg, err := m.Load(ctx, layers)
	reason := ReasonLoad
	if err == nil {
		if err = engine.CheckReload(m.Engine.Registry(), reg, m.AllowEmpty); err != nil {
			reason = ReasonRefused
		}
	}
	if err == nil {
		m.Engine.Swap(reg)
		now := time.Now()
		m.mu.Lock()
		st.layer, st.revision, st.etag, st.activatedAt = &l, revision, etag, now
		st.failedAt, st.failReason = time.Time{}, ""
		m.mu.Unlock()
		if m.Metrics != nil {
			m.Metrics.activated(st.spec.Name, revision, etag, float64(now.UnixNano())/1e9)
		}
	}
	m.swap.Unlock()
	if err != nil {
		err = fmt.Errorf("bundle %s: %w", st.spec.Name, err)
		m.failed(st, reason, err)
	} else {
		m.Log.Info("bundle activated", zap.String("bundle", st.spec.Name), zap.String("revision", revision), zap.String("etag", etag), zap.String("hash", reg.Hash()))
	}
	if m.OnActivate != nil {
		m.OnActivate(reg, err)
	}
}

// recovered clears a download failure once the version serving is fetched
// again unchanged (an OCI digest or an HTTP 304 for its ETag). A refused
// version still published keeps its failure: its ETag is not the serving one.
func (m *Manager) recovered(st *state, etag string) {
	m.mu.Lock()
	ok := !st.failedAt.IsZero() && st.failReason == ReasonDownload && st.layer != nil && etag != "" && etag == st.etag
	if ok {
		st.failedAt, st.failReason = time.Time{}, ""
	}
	m.mu.Unlock()
	if ok {
		if m.Metrics != nil {
			m.Metrics.LastFailed.WithLabelValues(st.spec.Name).Set(0)
		}
		m.Log.Info("bundle reachable again", zap.String("bundle", st.spec.Name), zap.String("etag", etag))
	}
}

// failed records a refused download or activation.
func (m *Manager) failed(st *state, reason string, err error) {
	m.mu.Lock()
	st.failedAt, st.failReason = time.Now(), reason
	m.mu.Unlock()
	if m.Metrics != nil {
		m.Metrics.Failures.WithLabelValues(st.spec.Name, reason).Inc()
		m.Metrics.LastFailed.WithLabelValues(st.spec.Name).Set(1)
	}
	m.Log.Error("bundle refused; keeping the last good policy set", zap.String("bundle", st.spec.Name), zap.String("reason", reason), zap.Error(err))
}

// signatureErrors are the messages of OPA's bundle verification
// (bundle/verify.go, bundle.Reader.checkSignaturesAndDescriptors) that make a
// failure a signature failure; TestClassify pins them.
var signatureErrors = []string{
	".signatures.json",
	"verification key",
	"JWT",
	"scope mismatch",
	"digest mismatch",
	"not included in bundle signature",
	"no hashing algorithm provided",
	"verifier",
	"failed to parse PEM block",
	"unknown signature algorithm",
}

// classify says whether a download failure is a signature failure.
func classify(err error) string {
	msg := err.Error()
	for _, s := range signatureErrors {
		if strings.Contains(msg, s) {
			return ReasonSignature
		}
	}
	return ReasonDownload
}

// Ready reports whether every bundle has activated once; without
// Config.Required it is always nil.
func (m *Manager) Ready() error {
	m.init()
	if !m.Config.Required {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var waiting []string
	for _, s := range m.states {
		if s.layer == nil {
			waiting = append(waiting, s.spec.Name)
		}
	}
	if len(waiting) > 0 {
		return fmt.Errorf("bundles not activated yet (--bundle-required): %s", strings.Join(waiting, ", "))
	}
	return nil
}

// Details are the /readyz?verbose lines, one per bundle.
func (m *Manager) Details() []string {
	m.init()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var out []string
	for _, s := range m.states {
		line := "bundle " + s.spec.Name + ": "
		if s.layer == nil {
			line += "not activated yet"
		} else {
			line += fmt.Sprintf("revision %q, etag %q, activated %s ago", s.revision, s.etag, now.Sub(s.activatedAt).Round(time.Second))
		}
		if !s.failedAt.IsZero() {
			line += fmt.Sprintf("; last attempt refused (%s) %s ago, see the log", s.failReason, now.Sub(s.failedAt).Round(time.Second))
		}
		out = append(out, line)
	}
	return out
}
