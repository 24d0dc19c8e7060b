package bundles

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis/portcullis/webhooks/bundles/bundletest"
)

// TestManagerOCI: a bundle pushed to an OCI registry (in-process, on
// loopback) as `oras push REF bundle.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip`
// does activates; polls of the same digest change nothing; a new push
// activates.
func TestManagerOCI(t *testing.T) {
	var heads atomic.Int32 // manifest HEADs: OPA's polls (ociTarget.Resolve)
	var down atomic.Bool   // the registry answers 503
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	reg := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			heads.Add(1)
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(reg.Close)
	ref := strings.TrimPrefix(reg.URL, "https://") + "/policies/custom:v1"
	bundletest.PushOCI(t, ref, bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("is not allowed", false)}, "v1", nil), reg.Client().Transport)

	f := newFixture(t, nil, false, nil, false)
	spec, err := ParseSpec("oci://" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != ref || spec.Service != reg.URL || spec.Resource != ref {
		t.Fatalf("spec = %+v", spec)
	}
	f.m.Config.Bundles = []Spec{spec}
	f.m.Config.CAFile = f.srv.CAFile() // httptest servers share one certificate
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "first activation", func() bool { return f.eng.Registry().Policy("svc_types") != nil })
	first := f.eng.Registry()
	if etag := f.state().etag; len(etag) != 64 {
		t.Errorf("etag %q: want the layer's sha256 digest", etag)
	}
	polled := heads.Load()
	waitFor(t, "two more polls", func() bool { return heads.Load() >= polled+2 })
	if f.eng.Registry() != first {
		t.Error("a poll of the same digest swapped the registry")
	}
	if ok, failed := f.activations(); ok != 1 || len(failed) != 0 {
		t.Errorf("activations: %d ok, failed %v; want exactly 1", ok, failed)
	}
	// The registry goes down: the failure is recorded, the set stays; back
	// up with the same digest, the failure clears without a reactivation.
	lastFailed := func() float64 { return testutil.ToFloat64(f.m.Metrics.LastFailed.WithLabelValues(spec.Name)) }
	down.Store(true)
	waitFor(t, "a failed download", func() bool { return lastFailed() == 1 })
	down.Store(false)
	waitFor(t, "recovery", func() bool { return lastFailed() == 0 })
	if f.eng.Registry() != first || f.state().failReason != "" {
		t.Errorf("recovery reactivated or kept the failure: %q", f.state().failReason)
	}
	bundletest.PushOCI(t, ref, bundletest.Tarball(t, map[string]string{"svc/svc.rego": svcPolicy("is forbidden here", false)}, "v2", nil), reg.Client().Transport)
	waitFor(t, "second activation", func() bool { return f.eng.Registry() != first })
	if got := f.state().revision; got != "v2" {
		t.Errorf("revision = %q, want v2", got)
	}
}
