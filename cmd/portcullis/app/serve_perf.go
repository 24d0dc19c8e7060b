package app

import (
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks"
)

// DefaultGOGC is serve's garbage-collector target (Go's default is 100).
// Evaluating Rego allocates heavily and the live heap is small (tens of MB),
// so at 100 the collector runs very often; at 200 throughput on the
// bench-load bodies rose by 10–30% for ~15 MB more RSS (README, Performance).
const DefaultGOGC = 200

// DefaultMemoryLimit keeps the raised GOGC from growing the heap past what a
// small webhook pod is given: near it the collector runs as often as needed.
const DefaultMemoryLimit = 64 << 20

// PerformanceOptions are serve's load-related settings.
type PerformanceOptions struct {
	// MaxConcurrentEvaluations caps evaluations in flight across /validate
	// and /mutate (0: 4 per GOMAXPROCS; negative: no cap).
	MaxConcurrentEvaluations int
	// QueueWait is how long a request over the cap waits for a slot before
	// it is answered 429 (never more than a quarter of the apiserver's timeout).
	QueueWait time.Duration
	// DecisionCacheSize is the number of decisions cached per policy set (0 disables).
	DecisionCacheSize int
	// DecisionCacheBytes bounds the cache's approximate memory.
	DecisionCacheBytes int64
	// GOGC is the garbage-collector target percentage; the GOGC environment
	// variable, when set, wins over the default but not over the flag.
	GOGC int
	// MemoryLimit is the runtime's soft memory limit in bytes (0: none); the
	// GOMEMLIMIT environment variable, when set, wins over the default.
	MemoryLimit int64

	flags *pflag.FlagSet
}

// NewPerformanceOptions returns the defaults.
func NewPerformanceOptions() PerformanceOptions {
	return PerformanceOptions{
		QueueWait:          webhooks.DefaultQueueWait,
		DecisionCacheSize:  engine.DefaultCacheEntries,
		DecisionCacheBytes: engine.DefaultCacheBytes,
		GOGC:               DefaultGOGC,
		MemoryLimit:        DefaultMemoryLimit,
	}
}

// AddFlags registers the flags.
func (o *PerformanceOptions) AddFlags(fs *pflag.FlagSet) {
	o.flags = fs
	fs.IntVar(&o.MaxConcurrentEvaluations, "max-concurrent-evaluations", o.MaxConcurrentEvaluations, "evaluations in flight at once across both webhooks; more wait up to --queue-wait, then get HTTP 429 (0: 4 x GOMAXPROCS; negative: no cap)")
	fs.DurationVar(&o.QueueWait, "queue-wait", o.QueueWait, "how long a request over --max-concurrent-evaluations waits for a slot (at most a quarter of the apiserver's timeout)")
	fs.IntVar(&o.DecisionCacheSize, "decision-cache-size", o.DecisionCacheSize, "decisions cached per policy set, keyed by everything the policies can read but the request UID (0 disables)")
	fs.Int64Var(&o.DecisionCacheBytes, "decision-cache-bytes", o.DecisionCacheBytes, "approximate memory bound of the decision cache")
	fs.IntVar(&o.GOGC, "gogc", o.GOGC, "garbage-collector target percentage (Go's default is 100; the GOGC environment variable overrides the default but not this flag)")
	fs.Int64Var(&o.MemoryLimit, "memory-limit", o.MemoryLimit, "soft memory limit of the Go runtime in bytes: past it the collector runs more often, whatever --gogc says (0: none; the GOMEMLIMIT environment variable overrides the default but not this flag)")
}

// Validate checks the flags.
func (o *PerformanceOptions) Validate() error {
	if o.QueueWait <= 0 {
		return errors.New("--queue-wait must be positive")
	}
	if o.DecisionCacheSize < 0 {
		return errors.New("--decision-cache-size must not be negative")
	}
	if o.DecisionCacheBytes <= 0 {
		return errors.New("--decision-cache-bytes must be positive")
	}
	if o.GOGC <= 0 {
		return errors.New("--gogc must be positive")
	}
	if o.MemoryLimit < 0 {
		return errors.New("--memory-limit must not be negative")
	}
	return nil
}

// applyGC sets the collector target and the memory limit, unless the
// environment sets them and the flags do not, and logs what is in force.
func (o *PerformanceOptions) applyGC(log *zap.Logger) {
	changed := func(name string) bool { return o.flags != nil && o.flags.Changed(name) }
	if os.Getenv("GOGC") == "" || changed("gogc") {
		debug.SetGCPercent(o.GOGC)
	}
	if (os.Getenv("GOMEMLIMIT") == "" || changed("memory-limit")) && o.MemoryLimit > 0 {
		debug.SetMemoryLimit(o.MemoryLimit)
	}
	gogc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gogc)
	log.Info("garbage collector", zap.Int("GOGC", gogc), zap.Int64("memoryLimit", debug.SetMemoryLimit(-1)))
}

// engineOptions configure the decision cache.
func (o *PerformanceOptions) engineOptions() []engine.EngineOption {
	return []engine.EngineOption{engine.WithDecisionCache(o.DecisionCacheSize, o.DecisionCacheBytes)}
}

// limiter is the evaluation cap shared by both webhooks (nil: none).
func (o *PerformanceOptions) limiter() *webhooks.Limiter {
	n := o.MaxConcurrentEvaluations
	if n == 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	return webhooks.NewLimiter(n, o.QueueWait)
}
