package app

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
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

// DefaultMemoryLimitRatio is the share of the container's cgroup memory
// limit taken as the runtime's soft memory limit when --memory-limit is not
// given: near it the collector runs as often as needed, so the raised GOGC
// cannot grow the heap into an OOM kill, while the rest covers what the Go
// heap does not count (stacks, kernel buffers, fragmentation). With no
// cgroup limit (a local run) there is no soft limit. A fixed default (it was
// 64 MiB) is wrong both ways: below the ~90 MB working set the collector
// thrashes (252 GC cycles instead of 35, ~3.5x less throughput), above the
// pod's limit it does not protect it.
const DefaultMemoryLimitRatio = 0.9

// DefaultParallelMinBytes is the object size from which serve splits a
// validating request over idle cores. Below it (a typical pod is ~4 KB) the
// policies' shared work (the pod spec, the container list), done once per
// query, costs about what a second core saves.
const DefaultParallelMinBytes = 16 << 10

// DefaultMaxConnections caps the webhook listener's open connections.
// kube-apiservers keep a few dozen each; 512 leaves room for several of them
// and for clients that open one per request, while bounding the buffers
// and goroutines connections cost (~50 KB each).
const DefaultMaxConnections = 512

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
	// MemoryLimit is the runtime's soft memory limit in bytes; when the flag
	// is not given, the GOMEMLIMIT environment variable, else
	// DefaultMemoryLimitRatio of the cgroup memory limit (0 given: none).
	MemoryLimit int64
	// MaxConnections caps open connections to the webhook port (0: no cap).
	MaxConnections int
	// LargeRequestBytes sorts requests into the small and the large lane.
	LargeRequestBytes int64
	// MaxConcurrentLargeEvaluations caps the large lane's evaluations
	// (0: GOMAXPROCS/2, at least 1).
	MaxConcurrentLargeEvaluations int
	// SmallBytesInFlight and LargeBytesInFlight are each lane's budget of
	// request bodies in flight.
	SmallBytesInFlight, LargeBytesInFlight int64
	// ParallelMinBytes is the object size from which a validating request's
	// policies may be evaluated in several queries at once on idle cores
	// (see engine.WithParallelism; 0: never).
	ParallelMinBytes int

	// cgroupLimit reads the container's memory limit (tests replace it).
	cgroupLimit memlimit.Provider

	flags *pflag.FlagSet
}

// NewPerformanceOptions returns the defaults.
func NewPerformanceOptions() PerformanceOptions {
	return PerformanceOptions{
		QueueWait:          webhooks.DefaultQueueWait,
		DecisionCacheSize:  engine.DefaultCacheEntries,
		DecisionCacheBytes: engine.DefaultCacheBytes,
		GOGC:               DefaultGOGC,
		MaxConnections:     DefaultMaxConnections,
		LargeRequestBytes:  webhooks.DefaultLargeRequestBytes,
		SmallBytesInFlight: webhooks.DefaultSmallBytesInFlight,
		LargeBytesInFlight: webhooks.DefaultLargeBytesInFlight,
		ParallelMinBytes:   DefaultParallelMinBytes,
		cgroupLimit:        memlimit.FromCgroup,
	}
}

// AddFlags registers the flags.
func (o *PerformanceOptions) AddFlags(fs *pflag.FlagSet) {
	o.flags = fs
	fs.IntVar(&o.MaxConcurrentEvaluations, "max-concurrent-evaluations", o.MaxConcurrentEvaluations, "small-lane evaluations in flight at once across both webhooks; more wait up to --queue-wait, then get HTTP 429 (0: 4 x GOMAXPROCS; negative: no cap)")
	fs.Int64Var(&o.LargeRequestBytes, "large-request-bytes", o.LargeRequestBytes, "requests with a bigger body (by Content-Length; chunked ones too) take the large lane, with its own evaluation slots and byte budget, so they cannot starve small ones")
	fs.IntVar(&o.MaxConcurrentLargeEvaluations, "max-concurrent-large-evaluations", o.MaxConcurrentLargeEvaluations, "large-lane evaluations in flight at once (0: GOMAXPROCS/2, at least 1; negative: no cap)")
	fs.Int64Var(&o.SmallBytesInFlight, "small-bytes-in-flight", o.SmallBytesInFlight, "small lane: request bodies in flight (read, waiting or evaluated), taken before a body is read; past it requests wait up to --queue-wait, then get HTTP 429")
	fs.Int64Var(&o.LargeBytesInFlight, "large-bytes-in-flight", o.LargeBytesInFlight, "large lane: request bodies in flight, as --small-bytes-in-flight (at least --max-body-bytes)")
	fs.IntVar(&o.MaxConnections, "max-connections", o.MaxConnections, "open connections to the webhook port at once; more wait in the kernel's accept queue (0: no cap)")
	fs.DurationVar(&o.QueueWait, "queue-wait", o.QueueWait, "how long a request over --max-concurrent-evaluations waits for a slot (at most a quarter of the apiserver's timeout)")
	fs.IntVar(&o.DecisionCacheSize, "decision-cache-size", o.DecisionCacheSize, "decisions cached per policy set, keyed by everything the policies can read but the request UID (0 disables)")
	fs.Int64Var(&o.DecisionCacheBytes, "decision-cache-bytes", o.DecisionCacheBytes, "approximate memory bound of the decision cache")
	fs.IntVar(&o.ParallelMinBytes, "parallel-min-bytes", o.ParallelMinBytes, "objects at least this long are evaluated by several validating queries at once on the cores no other evaluation uses (GOMAXPROCS > 1; decisions are the same; 0: never)")
	fs.IntVar(&o.GOGC, "gogc", o.GOGC, "garbage-collector target percentage (Go's default is 100; the GOGC environment variable overrides the default but not this flag)")
	fs.Int64Var(&o.MemoryLimit, "memory-limit", o.MemoryLimit, "soft memory limit of the Go runtime in bytes: past it the collector runs more often, whatever --gogc says (default: 90% of the container's cgroup memory limit, none without one; the GOMEMLIMIT environment variable overrides the default but not this flag; 0: none)")
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
	if o.MaxConnections < 0 {
		return errors.New("--max-connections must not be negative")
	}
	if o.LargeRequestBytes <= 0 {
		return errors.New("--large-request-bytes must be positive")
	}
	if o.ParallelMinBytes < 0 {
		return errors.New("--parallel-min-bytes must not be negative")
	}
	if o.SmallBytesInFlight < o.LargeRequestBytes {
		return errors.New("--small-bytes-in-flight must be at least --large-request-bytes")
	}
	return nil
}

// validateBodies checks the byte budgets against --max-body-bytes: the large
// lane must hold one body of the largest size.
func (o *PerformanceOptions) validateBodies(maxBody int64) error {
	if o.LargeBytesInFlight < maxBody {
		return fmt.Errorf("--large-bytes-in-flight (%d) must be at least --max-body-bytes (%d)", o.LargeBytesInFlight, maxBody)
	}
	return nil
}

// applyGC sets the collector target and the memory limit (see
// memoryLimit) and logs what is in force.
func (o *PerformanceOptions) applyGC(log *zap.Logger) {
	if os.Getenv("GOGC") == "" || o.changed("gogc") {
		debug.SetGCPercent(o.GOGC)
	}
	limit, source := o.memoryLimit(os.Getenv("GOMEMLIMIT"))
	if limit >= 0 {
		debug.SetMemoryLimit(limit)
	}
	gogc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gogc)
	log.Info("garbage collector", zap.Int("GOGC", gogc), zap.Int64("memoryLimit", debug.SetMemoryLimit(-1)), zap.String("memoryLimitFrom", source))
}

func (o *PerformanceOptions) changed(name string) bool {
	return o.flags != nil && o.flags.Changed(name)
}

// noMemoryLimit is the runtime's "no limit" (math.MaxInt64).
const noMemoryLimit = int64(^uint64(0) >> 1)

// memoryLimit decides the soft memory limit: the flag when given (0: none),
// else GOMEMLIMIT when set (left to the runtime: -1), else
// DefaultMemoryLimitRatio of the cgroup limit (automemlimit reads cgroup v1
// and v2: https://pkg.go.dev/github.com/KimMachineGun/automemlimit/memlimit),
// else none. It also returns where the value came from, for the log.
func (o *PerformanceOptions) memoryLimit(envGOMEMLIMIT string) (limit int64, source string) {
	switch {
	case o.changed("memory-limit"):
		if o.MemoryLimit == 0 {
			return noMemoryLimit, "--memory-limit=0 (none)"
		}
		return o.MemoryLimit, "--memory-limit"
	case envGOMEMLIMIT != "":
		return -1, "GOMEMLIMIT"
	case o.MemoryLimit > 0:
		// Set programmatically (tests, embedders) without the flag.
		return o.MemoryLimit, "MemoryLimit"
	}
	provider := o.cgroupLimit
	if provider == nil {
		provider = memlimit.FromCgroup
	}
	cg, err := provider()
	if err != nil || cg == 0 || cg >= uint64(noMemoryLimit) {
		return noMemoryLimit, "none (no cgroup memory limit)"
	}
	return int64(float64(cg) * DefaultMemoryLimitRatio), fmt.Sprintf("%.0f%% of the cgroup memory limit %d", DefaultMemoryLimitRatio*100, cg)
}

// engineOptions configure the decision cache and parallel evaluation.
func (o *PerformanceOptions) engineOptions() []engine.EngineOption {
	return []engine.EngineOption{
		engine.WithDecisionCache(o.DecisionCacheSize, o.DecisionCacheBytes),
		engine.WithParallelism(o.ParallelMinBytes),
	}
}

// admission builds the two admission lanes shared by both webhooks.
func (o *PerformanceOptions) admission() (*webhooks.Admission, error) {
	small := o.MaxConcurrentEvaluations
	if small == 0 {
		small = 4 * runtime.GOMAXPROCS(0)
	}
	large := o.MaxConcurrentLargeEvaluations
	if large == 0 {
		large = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return webhooks.NewAdmission(webhooks.AdmissionOptions{
		LargeRequestBytes: o.LargeRequestBytes,
		SmallEvaluations:  small,
		LargeEvaluations:  large,
		SmallBytes:        o.SmallBytesInFlight,
		LargeBytes:        o.LargeBytesInFlight,
		QueueWait:         o.QueueWait,
	})
}
