package bundles

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons, the reason label of portcullis_bundle_failures_total.
const (
	// ReasonDownload: the bundle could not be fetched or read (network,
	// HTTP status, registry, a tarball OPA cannot read, a Rego syntax error
	// OPA's reader reports).
	ReasonDownload = "download"
	// ReasonSignature: verification keys are configured and the bundle is
	// unsigned or its signature does not verify.
	ReasonSignature = "signature"
	// ReasonInvalid: OPA read it but Portcullis cannot serve it
	// (ErrInvalidBundle).
	ReasonInvalid = "invalid"
	// ReasonLoad: the policy set with the bundle does not load (compile
	// error, sandbox-refused built-in, bad METADATA or configuration).
	ReasonLoad = "load"
	// ReasonRefused: the set loads but engine.CheckReload refuses it (no
	// policies left, a required policy dropped).
	ReasonRefused = "refused"
)

// Metrics are the bundle metrics, one series per bundle (label bundle, the
// --bundle name).
type Metrics struct {
	// Activated is when the bundle last activated, in Unix seconds
	// (portcullis_bundle_last_activation_timestamp_seconds{bundle}).
	Activated *prometheus.GaugeVec
	// Failures counts refused downloads and activations by reason
	// (portcullis_bundle_failures_total{bundle,reason}).
	Failures *prometheus.CounterVec
	// LastFailed is 1 while the bundle's last attempt failed or was refused
	// (the previous revision keeps serving), 0 once a version activates or
	// the serving one is fetched again
	// (portcullis_bundle_last_attempt_failed{bundle}).
	LastFailed *prometheus.GaugeVec
	// Info is 1 for the serving revision and ETag (HTTPS) or layer digest
	// (OCI) of each bundle (portcullis_bundle_info{bundle,revision,etag}).
	Info *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Activated: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_bundle_last_activation_timestamp_seconds",
			Help: "When the bundle last activated (Unix seconds); absent until its first activation.",
		}, []string{"bundle"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_bundle_failures_total",
			Help: "Bundle downloads and activations refused (the last good policy set keeps serving), by reason: download, signature, invalid, load, refused.",
		}, []string{"bundle", "reason"}),
		LastFailed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_bundle_last_attempt_failed",
			Help: "1 while the bundle's last download or activation failed or was refused (the previous revision keeps serving), 0 once a version activates or the serving one is fetched again.",
		}, []string{"bundle"}),
		Info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_bundle_info",
			Help: "1 for the revision (the bundle manifest's) and etag (HTTP ETag, or the OCI layer digest) each bundle serves.",
		}, []string{"bundle", "revision", "etag"}),
	}
	for _, c := range []prometheus.Collector{m.Activated, m.Failures, m.LastFailed, m.Info} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register bundle metrics: %w", err)
		}
	}
	return m, nil
}

// init0 creates every bundle's failure series at zero, so that rate() and
// alerts see the counter before its first failure.
func (m *Metrics) init0(name string) {
	for _, r := range []string{ReasonDownload, ReasonSignature, ReasonInvalid, ReasonLoad, ReasonRefused} {
		m.Failures.WithLabelValues(name, r)
	}
	m.LastFailed.WithLabelValues(name).Set(0)
}

// activated records a successful activation.
func (m *Metrics) activated(name, revision, etag string, at float64) {
	m.Activated.WithLabelValues(name).Set(at)
	m.LastFailed.WithLabelValues(name).Set(0)
	m.Info.DeletePartialMatch(prometheus.Labels{"bundle": name})
	m.Info.WithLabelValues(name, revision, etag).Set(1)
}
