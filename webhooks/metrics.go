package webhooks

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/portcullis/portcullis/policies/engine"
)

// Metrics are Portcullis' Prometheus metrics. They implement engine.Observer
// for per-policy counts and latencies.
type Metrics struct {
	// PolicyEvaluations counts evaluations by policy, phase and outcome.
	PolicyEvaluations *prometheus.CounterVec
	// PolicyDuration observes evaluation latency by policy and phase.
	PolicyDuration *prometheus.HistogramVec
	// Requests counts admission responses by phase, allowed and HTTP-level code.
	Requests *prometheus.CounterVec
	// RequestDuration observes whole-request latency by phase.
	RequestDuration *prometheus.HistogramVec
	// BadRequests counts requests answered with a non-200 status.
	BadRequests *prometheus.CounterVec
	// Panics counts recovered handler panics.
	Panics *prometheus.CounterVec
	// Reloads counts policy reloads by result (success, error, refused).
	Reloads *prometheus.CounterVec
	// PoliciesLoaded is the number of policies in the serving registry.
	PoliciesLoaded prometheus.Gauge
	// CertificateExpiry is the expiry time of the serving certificate in use.
	CertificateExpiry prometheus.Gauge
	// CertificateRejected counts rotated-in pairs refused (expired, not yet valid).
	CertificateRejected prometheus.Counter
	// Overload counts requests refused 429 by admission lane and by what
	// they did not get in time (bytes, slots).
	Overload *prometheus.CounterVec
	// DecisionCache counts decision-cache lookups by phase and result (hit, miss).
	DecisionCache *prometheus.CounterVec
	// PolicyErrors counts policies that could not be evaluated, by policy
	// and engine.PolicyError code (eval_builtin_error, timeout...).
	PolicyErrors *prometheus.CounterVec
}

// latencyBuckets span 50 µs to ~1.6 s: admission budgets are milliseconds.
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 16)

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		PolicyEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_policy_evaluations_total",
			Help: "Policy evaluations by policy, phase and outcome (allowed, denied, warned, audited, mutated, error, timeout).",
		}, []string{"policy", "phase", "outcome"}),
		PolicyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_policy_evaluation_duration_seconds",
			Help:    "Time to evaluate one policy for one request (also when the policies of a request are evaluated together in one query).",
			Buckets: latencyBuckets,
		}, []string{"policy", "phase"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_admission_requests_total",
			Help: "Admission requests answered, by phase, allowed and result code.",
		}, []string{"phase", "allowed", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_admission_request_duration_seconds",
			Help:    "Time from decoded request to decision.",
			Buckets: latencyBuckets,
		}, []string{"phase"}),
		BadRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_admission_bad_requests_total",
			Help: "Requests answered with a non-200 HTTP status, by phase and status.",
		}, []string{"phase", "code"}),
		Panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_admission_panics_total",
			Help: "Recovered panics in admission handlers.",
		}, []string{"phase"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_policy_reloads_total",
			Help: "Policy set reloads by result: success, error (the new set does not load), refused (it loads but has no policies or drops a required one). On error or refusal the last good set keeps serving.",
		}, []string{"result"}),
		PoliciesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_policies_loaded",
			Help: "Policies in the serving policy set.",
		}),
		CertificateExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_certificate_expiry_timestamp_seconds",
			Help: "Expiry (NotAfter, Unix seconds) of the serving certificate in use.",
		}),
		CertificateRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portcullis_certificate_rejected_total",
			Help: "Serving certificates written over the current one and refused because they were expired or not yet valid; the current one keeps being served.",
		}),
		Overload: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_admission_overload_rejections_total",
			Help: "Requests answered 429 by admission lane (small, large) and by what they did not get in time: bytes (the lane's budget of body bytes in flight) or slots (evaluation slots).",
		}, []string{"lane", "reason"}),
		DecisionCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_decision_cache_requests_total",
			Help: "Decision-cache lookups by phase and result (hit, miss). A hit skips policy evaluation: per-policy metrics count only evaluations.",
		}, []string{"phase", "result"}),
		PolicyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_policy_evaluation_errors_total",
			Help: "Policies that could not be evaluated, by policy and error code (OPA's, e.g. eval_builtin_error, or timeout, not_evaluated, invalid_output, invalid_edit); the failure mode decided the request.",
		}, []string{"policy", "code"}),
	}
	for _, c := range []prometheus.Collector{m.PolicyErrors, m.PolicyEvaluations, m.PolicyDuration, m.Requests, m.RequestDuration, m.BadRequests, m.Panics, m.Reloads, m.PoliciesLoaded, m.DecisionCache, m.Overload, m.CertificateExpiry, m.CertificateRejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// ObservePolicy implements engine.Observer.
func (m *Metrics) ObservePolicy(policy string, phase engine.Phase, outcome string, took time.Duration) {
	m.PolicyEvaluations.WithLabelValues(policy, string(phase), outcome).Inc()
	m.PolicyDuration.WithLabelValues(policy, string(phase)).Observe(took.Seconds())
}

// ObservePolicyError implements engine.ErrorObserver.
func (m *Metrics) ObservePolicyError(policy string, _ engine.Phase, code string) {
	m.PolicyErrors.WithLabelValues(policy, code).Inc()
}

// ObserveCache implements engine.CacheObserver.
func (m *Metrics) ObserveCache(phase engine.Phase, hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	m.DecisionCache.WithLabelValues(string(phase), result).Inc()
}

func (m *Metrics) observeRequest(phase engine.Phase, resp admission.Response, took time.Duration) {
	code := "200"
	if resp.Result != nil && resp.Result.Code != 0 {
		code = fmt.Sprint(resp.Result.Code)
	}
	m.Requests.WithLabelValues(string(phase), fmt.Sprint(resp.Allowed), code).Inc()
	m.RequestDuration.WithLabelValues(string(phase)).Observe(took.Seconds())
}
