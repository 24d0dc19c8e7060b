package webhooks

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PolicySetMetrics say which policy set serves, since when, and whether the
// last reload failed (the set serving is then older than the files).
type PolicySetMetrics struct {
	// Info is 1 for the serving set's hash (portcullis_policy_set_info{hash}).
	Info *prometheus.GaugeVec
	// LoadedTimestamp is when the serving set was loaded, in Unix seconds.
	LoadedTimestamp prometheus.Gauge
	// LastReloadFailed is 1 when the last reload attempt failed or was
	// refused, 0 after a successful one.
	LastReloadFailed prometheus.Gauge
}

// NewPolicySetMetrics creates the metrics and registers them with reg.
func NewPolicySetMetrics(reg prometheus.Registerer) (*PolicySetMetrics, error) {
	m := &PolicySetMetrics{
		Info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_policy_set_info",
			Help: "1 for the hash (SHA-256 of the Rego files and the merged configuration) of the policy set serving.",
		}, []string{"hash"}),
		LoadedTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_policy_set_loaded_timestamp_seconds",
			Help: "When the serving policy set was loaded (Unix seconds); time() minus it is the set's age.",
		}),
		LastReloadFailed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_policy_last_reload_failed",
			Help: "1 when the last policy reload failed or was refused (the last good set keeps serving), 0 after a successful one.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Info, m.LoadedTimestamp, m.LastReloadFailed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register policy set metrics: %w", err)
		}
	}
	return m, nil
}

// Serving records the set now serving.
func (m *PolicySetMetrics) Serving(hash string, loadedAt time.Time) {
	m.Info.Reset()
	m.Info.WithLabelValues(hash).Set(1)
	m.LoadedTimestamp.Set(float64(loadedAt.UnixNano()) / 1e9)
}
