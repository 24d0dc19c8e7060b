package audit

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the background audit's Prometheus series.
type Metrics struct {
	// Violations is portcullis_audit_violations{policy,namespace,enforcement}:
	// the violations the latest audit of each namespace found (namespace ""
	// for cluster-scoped objects).
	Violations *prometheus.GaugeVec
	// LastDuration and LastTimestamp describe the last full pass.
	LastDuration  prometheus.Gauge
	LastTimestamp prometheus.Gauge
	// Objects is the number of objects the last full pass evaluated.
	Objects prometheus.Gauge
	// Evaluations counts every object evaluation (full and incremental).
	Evaluations prometheus.Counter
	// Errors counts objects that could not be evaluated and reports that
	// could not be written.
	Errors *prometheus.CounterVec
	// Leader is 1 while this replica holds the audit Lease.
	Leader prometheus.Gauge
}

// NewMetrics registers the audit metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Violations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_audit_violations",
			Help: "Violations found by the latest background audit of each namespace, by policy and enforcement.",
		}, []string{"policy", "namespace", "enforcement"}),
		LastDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_audit_last_duration_seconds",
			Help: "Duration of the last full background audit pass.",
		}),
		LastTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_audit_last_timestamp_seconds",
			Help: "Unix time the last full background audit pass finished.",
		}),
		Objects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_audit_objects",
			Help: "Objects evaluated by the last full background audit pass.",
		}),
		Evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portcullis_audit_evaluations_total",
			Help: "Objects evaluated by the background audit (full passes and changes).",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_audit_errors_total",
			Help: "Background audit failures: kinds that could not be listed (list), objects that could not be evaluated (evaluate), reports that could not be written (report).",
		}, []string{"stage"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_audit_leader",
			Help: "1 while this replica holds the audit Lease and runs the background audit.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Violations, m.LastDuration, m.LastTimestamp, m.Objects, m.Evaluations, m.Errors, m.Leader} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register audit metrics: %w", err)
		}
	}
	return m, nil
}
