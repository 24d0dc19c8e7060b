package bundles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks/bundles/bundletest"
)

// svcPolicy is a custom policy denying Service types outside a list; word
// ends its message, so a test can tell versions apart.
func svcPolicy(word string, required bool) string {
	req := ""
	if required {
		req = "\n#   required: true"
	}
	return `# METADATA
# title: Service types
# custom:
#   kind: validating
#   resources: [services]` + req + `
package portcullis.svc_types

deny contains {"msg": "Service type NodePort ` + word + `"} if {
	input.request.object.spec.type == "NodePort"
}
`
}

// basePolicy is the layer under the bundles (the built-ins' stand-in).
const basePolicy = `# METADATA
# title: Base
# custom:
#   kind: validating
package portcullis.base

deny contains {"msg": "never"} if false
`

// fixture is a Manager over an engine whose other sources are one base
// layer (or none, with noBase), polling a bundle server every second.
type fixture struct {
	m       *Manager
	eng     *engine.Engine
	srv     *bundletest.Server
	logs    *observer.ObservedLogs
	mu      sync.Mutex
	reloads []error
}

func newFixture(t *testing.T, first []byte, noBase bool, key *bundletest.Key, required bool) *fixture {
	t.Helper()
	base := engine.Layer{Name: "base", FS: fstest.MapFS{"base/base.rego": {Data: []byte(basePolicy)}}}
	if noBase {
		base = engine.Layer{Name: "base", FS: fstest.MapFS{}}
	}
	load := func(ctx context.Context, layers []engine.Layer) (*engine.Registry, error) {
		return engine.Load(ctx, engine.Source{Layers: append([]engine.Layer{base}, layers...)})
	}
	reg, err := load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{eng: engine.New(reg, nil), srv: bundletest.NewServer(t, first)}
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ParseSpec("custom=" + f.srv.URL + "/bundles/custom.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Bundles: []Spec{spec}, MinDelay: time.Second, MaxDelay: time.Second, CAFile: f.srv.CAFile(), Required: required}
	if key != nil {
		cfg.Verification = bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"default": {Key: key.Public, Algorithm: "RS256"}}, "default", "", nil)
	}
	core, logs := observer.New(zap.DebugLevel)
	f.logs = logs
	f.m = &Manager{
		Config:  cfg,
		Engine:  f.eng,
		Load:    load,
		Metrics: metrics,
		Log:     zap.New(core),
		OnActivate: func(_ *engine.Registry, err error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.reloads = append(f.reloads, err)
		},
	}
	return f
}

func (f *fixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// waitFor polls cond for up to 20 s (the bundle is polled every second).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// state returns a copy of the bundle's state.
func (f *fixture) state() state {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return *f.m.states[0]
}

func (f *fixture) failures(reason string) float64 {
	return testutil.ToFloat64(f.m.Metrics.Failures.WithLabelValues("custom", reason))
}

func (f *fixture) activations() (ok int, failed []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, err := range f.reloads {
		if err == nil {
			ok++
		} else {
			failed = append(failed, err)
		}
	}
	return ok, failed
}

// TestManagerActivatesAndPollsWithETag: the bundle activates as a layer
// over the base (both policies served, file names under the bundle's
// name); further polls are answered 304 and change nothing (no new
// activation, the same registry); a new version activates without restart.
func TestManagerActivatesAndPollsWithETag(t *testing.T) {
	f := newFixture(t, bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("is not allowed", false)}, "v1", nil), false, nil, true)
	if err := f.m.Ready(); err == nil || err.Error() != "bundles not activated yet (--bundle-required): custom" {
		t.Fatalf("Ready before activation = %v", err)
	}
	f.run(t)
	waitFor(t, "first activation", func() bool { return f.eng.Registry().Policy("svc_types") != nil })
	reg := f.eng.Registry()
	if reg.Policy("base") == nil {
		t.Error("the base layer's policy is gone")
	}
	if got, want := reg.Policy("svc_types").File, "custom/svc/svc.rego"; got != want {
		t.Errorf("policy file = %q, want %q", got, want)
	}
	if err := f.m.Ready(); err != nil {
		t.Errorf("Ready after activation = %v", err)
	}
	waitFor(t, "two polls answered 304", func() bool { _, fresh := f.srv.Counts(); return fresh >= 2 })
	if f.eng.Registry() != reg {
		t.Error("a 304 swapped the registry")
	}
	if ok, failed := f.activations(); ok != 1 || len(failed) != 0 {
		t.Errorf("activations: %d ok, failed %v; want exactly 1 ok", ok, failed)
	}
	if full, _ := f.srv.Counts(); full != 1 {
		t.Errorf("full downloads = %d, want 1", full)
	}
	details := f.m.Details()
	if len(details) != 1 || !strings.HasPrefix(details[0], `bundle custom: revision "v1", etag "\"`) {
		t.Errorf("Details = %q", details)
	}

	// The server fails for a while: counted and shown; back with the same
	// version (downloaded in full: OPA forgets the ETag after an error), the
	// failure clears without an activation.
	lastFailed := func() float64 { return testutil.ToFloat64(f.m.Metrics.LastFailed.WithLabelValues("custom")) }
	f.srv.SetDown(true)
	waitFor(t, "a failed download", func() bool { return lastFailed() == 1 && f.failures(ReasonDownload) >= 1 })
	if d := f.m.Details(); len(d) != 1 || !strings.Contains(d[0], "; last attempt refused (download)") {
		t.Errorf("Details while down = %q", d)
	}
	f.srv.SetDown(false)
	waitFor(t, "recovery", func() bool { return lastFailed() == 0 })
	if ok, failed := f.activations(); ok != 1 || len(failed) != 0 || f.eng.Registry() != reg {
		t.Errorf("after recovery: %d activations, failed %v, registry replaced %v; want 1, none, false", ok, failed, f.eng.Registry() != reg)
	}

	f.srv.Set(bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("is forbidden here", false)}, "v2", nil))
	waitFor(t, "revision v2", func() bool { return f.eng.Registry() != reg })
	if ok, failed := f.activations(); ok != 2 || len(failed) != 0 {
		t.Errorf("activations: %d ok, failed %v; want 2 ok", ok, failed)
	}
	if got := testutil.ToFloat64(f.m.Metrics.Info.WithLabelValues("custom", "v2", f.state().etag)); got != 1 {
		t.Errorf("portcullis_bundle_info for v2 = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(f.m.Metrics.Info); n != 1 {
		t.Errorf("portcullis_bundle_info series = %d, want 1 (the old revision's dropped)", n)
	}
	if v := testutil.ToFloat64(f.m.Metrics.LastFailed.WithLabelValues("custom")); v != 0 {
		t.Errorf("portcullis_bundle_last_attempt_failed = %v, want 0", v)
	}
	if testutil.ToFloat64(f.m.Metrics.Activated.WithLabelValues("custom")) == 0 {
		t.Error("no last activation timestamp")
	}
}

// TestManagerRefusesBadBundles: each bad version after a good one is
// refused for its reason, with OPA's or the engine's message, and the last
// good set keeps serving (the same registry).
func TestManagerRefusesBadBundles(t *testing.T) {
	key, other := bundletest.NewRSAKey(t), bundletest.NewRSAKey(t)
	good := map[string]string{"svc/svc.rego": svcPolicy("is not allowed", true)}
	for _, tc := range []struct {
		name     string
		noBase   bool
		keyed    bool
		small    bool // --bundle-max-bytes 32 KiB
		bad      func(t *testing.T) []byte
		reason   string
		wantMsgs []string
	}{
		{
			name: "unsigned with keys configured", keyed: true,
			bad:      func(t *testing.T) []byte { return bundletest.Tarball(t, good, "v2", nil) },
			reason:   ReasonSignature,
			wantMsgs: []string{"bundle missing .signatures.json file"},
		},
		{
			name: "signed with another key", keyed: true,
			bad:      func(t *testing.T) []byte { return bundletest.Tarball(t, good, "v2", &other) },
			reason:   ReasonSignature,
			wantMsgs: []string{"failed to verify JWT signature"},
		},
		{
			name: "signature of other content", keyed: true,
			bad: func(t *testing.T) []byte {
				b := bundle.Bundle{Manifest: bundle.Manifest{Revision: "v2"}, Data: map[string]any{}, Modules: []bundle.ModuleFile{
					{URL: "/svc/svc.rego", Path: "/svc/svc.rego", Raw: []byte(svcPolicy("v2", true))},
				}}
				b.Manifest.Init()
				if err := b.GenerateSignature(bundle.NewSigningConfig(key.Private, "RS256", ""), "", false); err != nil {
					t.Fatal(err)
				}
				b.Modules[0].Raw = []byte(svcPolicy("tampered", true))
				return bundletest.Write(t, b)
			},
			reason:   ReasonSignature,
			wantMsgs: []string{"svc/svc.rego: digest mismatch"},
		},
		{
			name: "Rego syntax error",
			bad: func(t *testing.T) []byte {
				return bundletest.Tarball(t, map[string]string{"svc/svc.rego": "package portcullis.svc_types\n\ndeny contains"}, "v2", nil)
			},
			reason:   ReasonDownload,
			wantMsgs: []string{"/svc/svc.rego:3", "rego_parse_error"},
		},
		{
			name: "sandbox-refused builtin",
			bad: func(t *testing.T) []byte {
				p := strings.Replace(svcPolicy("x", true), `input.request.object.spec.type == "NodePort"`, `http.send({"method": "GET", "url": "https://example.com"})`, 1)
				return bundletest.Tarball(t, map[string]string{"svc/svc.rego": p}, "v2", nil)
			},
			reason:   ReasonLoad,
			wantMsgs: []string{"custom/svc/svc.rego:10", "http.send"},
		},
		{
			name: "drops a required policy",
			bad: func(t *testing.T) []byte {
				return bundletest.Tarball(t, map[string]string{"lib/x.rego": "package portcullis.lib.x\n\nx := 1\n"}, "v2", nil)
			},
			reason:   ReasonRefused,
			wantMsgs: []string{"reload refused: the new policy set drops required policies svc_types"},
		},
		{
			name: "no policies left", noBase: true,
			bad: func(t *testing.T) []byte {
				return bundletest.Tarball(t, map[string]string{"lib/x.rego": "package portcullis.lib.x\n\nx := 1\n"}, "v2", nil)
			},
			reason:   ReasonRefused,
			wantMsgs: []string{"reload refused: the new policy set has no policies (serving them would admit everything)"},
		},
		{
			name: "a file over --bundle-max-bytes", small: true,
			bad: func(t *testing.T) []byte {
				return bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("x", true) + "# " + strings.Repeat("x", 64<<10) + "\n"}, "v2", nil)
			},
			reason:   ReasonDownload,
			wantMsgs: []string{"bundle file /svc/svc.rego size (", "bytes) exceeds configured size_limit_bytes (32768 bytes)"},
		},
		{
			name: "data outside portcullis.config",
			bad: func(t *testing.T) []byte {
				return bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("x", true), "data.json": `{"inventory": {"hosts": [1]}}`}, "v2", nil)
			},
			reason:   ReasonInvalid,
			wantMsgs: []string{"invalid bundle: data outside portcullis.config is not read by any policy: inventory.hosts"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var k *bundletest.Key
			if tc.keyed {
				k = &key
			}
			f := newFixture(t, bundletest.Tarball(t, good, "v1", k), tc.noBase, k, false)
			if tc.small {
				f.m.Config.MaxBytes = 32 << 10
			}
			f.run(t)
			waitFor(t, "first activation", func() bool { return f.eng.Registry().Policy("svc_types") != nil })
			reg := f.eng.Registry()
			f.srv.Set(tc.bad(t))
			waitFor(t, tc.reason+" failure", func() bool { return f.failures(tc.reason) >= 1 })
			if f.eng.Registry() != reg {
				t.Error("the last good set was replaced")
			}
			if v := testutil.ToFloat64(f.m.Metrics.LastFailed.WithLabelValues("custom")); v != 1 {
				t.Errorf("portcullis_bundle_last_attempt_failed = %v, want 1", v)
			}
			for _, r := range []string{ReasonDownload, ReasonSignature, ReasonInvalid, ReasonLoad, ReasonRefused} {
				if r != tc.reason && f.failures(r) != 0 {
					t.Errorf("failures{reason=%s} = %v, want 0", r, f.failures(r))
				}
			}
			var logged string
			for _, e := range f.logs.FilterMessage("bundle refused; keeping the last good policy set").All() {
				logged = fmt.Sprint(e.ContextMap()["error"])
			}
			for _, want := range tc.wantMsgs {
				if !strings.Contains(logged, want) {
					t.Errorf("logged error %q does not contain %q", logged, want)
				}
			}
			d := f.m.Details()
			if len(d) != 1 || !strings.HasPrefix(d[0], `bundle custom: revision "v1"`) || !strings.Contains(d[0], "; last attempt refused ("+tc.reason+")") {
				t.Errorf("Details = %q", d)
			}
		})
	}
}

// TestManagerSignedBundleActivates: a bundle signed as `opa sign` signs it
// activates with the matching key configured.
func TestManagerSignedBundleActivates(t *testing.T) {
	key := bundletest.NewRSAKey(t)
	f := newFixture(t, bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("is not allowed", false)}, "v1", &key), false, &key, false)
	f.run(t)
	waitFor(t, "activation", func() bool { return f.eng.Registry().Policy("svc_types") != nil })
	if f.failures(ReasonSignature) != 0 {
		t.Errorf("signature failures = %v", f.failures(ReasonSignature))
	}
}

// TestLayerConfig: data.portcullis.config is the layer's configuration.
func TestLayerConfig(t *testing.T) {
	b := &bundle.Bundle{Data: map[string]any{"portcullis": map[string]any{"config": map[string]any{"exempt_namespaces": []any{"x"}}}}}
	l, err := Layer("team", b)
	if err != nil {
		t.Fatal(err)
	}
	if string(l.Config) != `{"exempt_namespaces":["x"]}` || l.Name != "bundle team" || l.Prefix != "team" {
		t.Errorf("layer = %+v, config %s", l, l.Config)
	}
	for _, tc := range []struct {
		b    bundle.Bundle
		want string
	}{
		{bundle.Bundle{Data: map[string]any{"portcullis": map[string]any{"config": "x"}}}, "invalid bundle: portcullis.config must be an object"},
		{bundle.Bundle{Data: map[string]any{"portcullis": map[string]any{"other": 1.0, "config": map[string]any{}}}}, "invalid bundle: data outside portcullis.config is not read by any policy: portcullis.other"},
		{bundle.Bundle{Patch: bundle.Patch{Data: []bundle.PatchOperation{{Op: "upsert", Path: "/a", Value: 1}}}}, "invalid bundle: delta bundles are not supported (serve a snapshot bundle)"},
		{bundle.Bundle{WasmModules: []bundle.WasmModuleFile{{Path: "/policy.wasm"}}}, "invalid bundle: Wasm and plan modules are not supported (build the bundle from Rego: opa build -b DIR)"},
		{bundle.Bundle{Modules: []bundle.ModuleFile{{Path: "/a/../../etc/x.rego"}}}, `invalid bundle: module path "/a/../../etc/x.rego"`},
	} {
		_, err := Layer("team", &tc.b)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalidBundle) {
			t.Errorf("Layer = %v, want %q", err, tc.want)
		}
	}
}

// TestClassify pins the OPA verification messages counted as signature
// failures.
func TestClassify(t *testing.T) {
	for msg, want := range map[string]string{
		"bundle missing .signatures.json file":               ReasonSignature,
		"failed to verify JWT signature: x":                  ReasonSignature,
		"/svc/svc.rego: digest mismatch (want: 01, got: 02)": ReasonSignature,
		"verification key corresponding to ID x not found":   ReasonSignature,
		"scope mismatch":                ReasonSignature,
		"server replied with Not Found": ReasonDownload,
		"/svc/svc.rego:3: rego_parse_error: unexpected eof token": ReasonDownload,
	} {
		if got := classify(errors.New(msg)); got != want {
			t.Errorf("classify(%q) = %s, want %s", msg, got, want)
		}
	}
}

// TestManagerBearerTokenNotLogged: the token of --bundle-token-file reaches
// the bundle server and appears in no log line, at debug level, on success
// and on a refused download.
func TestManagerBearerTokenNotLogged(t *testing.T) {
	const canary = "canary-token-7f3a9b"
	f := newFixture(t, bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("is not allowed", false)}, "v1", nil), false, nil, false)
	f.srv.SetToken(canary)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.m.Config.TokenFile = tokenFile
	f.run(t)
	waitFor(t, "activation with the token", func() bool { return f.eng.Registry().Policy("svc_types") != nil })
	f.srv.SetToken("another") // before the new body: no poll fetches it with the old token
	f.srv.Set(bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("v2", false)}, "v2", nil))
	waitFor(t, "a refused download (401)", func() bool { return f.failures(ReasonDownload) >= 1 })
	if f.logs.Len() == 0 {
		t.Fatal("nothing logged")
	}
	for _, e := range f.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, canary) {
			t.Errorf("token logged: %s", line)
		}
	}
}
