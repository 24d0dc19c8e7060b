package app

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks"
)

// errNoPolicies refuses to start serve on an empty policy set.
var errNoPolicies = errors.New("no policies loaded: an empty policy set admits everything (--allow-empty-policies to serve one anyway)")

// policySetStatus follows the serving policy set and the reloads, for the
// metrics, the log and /readyz?verbose.
type policySetStatus struct {
	eng     *engine.Engine
	metrics *webhooks.Metrics
	set     *webhooks.PolicySetMetrics
	log     *zap.Logger

	mu         sync.Mutex
	failedAt   time.Time // zero: the last reload succeeded (or none yet)
	failedWhat string
}

// serving records the set the engine serves now.
func (s *policySetStatus) serving(reg *engine.Registry) {
	s.metrics.PoliciesLoaded.Set(float64(len(reg.Policies())))
	s.set.Serving(reg.Hash(), reg.LoadedAt())
}

// onReload is the Reloader's callback: count, log, record.
func (s *policySetStatus) onReload(reg *engine.Registry, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.metrics.Reloads.WithLabelValues("success").Inc()
		s.set.LastReloadFailed.Set(0)
		s.failedAt, s.failedWhat = time.Time{}, ""
		s.serving(reg)
		logLoadFindings(s.log, reg)
		s.log.Info("policies reloaded", zap.Int("count", len(reg.Policies())), zap.Strings("ids", policyIDs(reg)), zap.String("hash", reg.Hash()))
		return
	}
	result, what := "error", "failed"
	if errors.Is(err, engine.ErrReloadRefused) {
		result, what = "refused", "refused"
	}
	s.metrics.Reloads.WithLabelValues(result).Inc()
	s.set.LastReloadFailed.Set(1)
	s.failedAt, s.failedWhat = time.Now(), what
	s.log.Error("policy reload "+what+"; keeping the last good policy set", zap.Error(err), zap.String("hash", s.eng.Registry().Hash()))
}

// details are the /readyz?verbose lines.
func (s *policySetStatus) details() []string {
	reg := s.eng.Registry()
	lines := []string{fmt.Sprintf("policy set sha256:%s: %d policies, loaded %s ago", reg.Hash(), len(reg.Policies()), time.Since(reg.LoadedAt()).Round(time.Second))}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failedAt.IsZero() {
		return append(lines, "last reload: ok")
	}
	return append(lines, fmt.Sprintf("last reload: %s %s ago, the set above keeps serving (see the log)", s.failedWhat, time.Since(s.failedAt).Round(time.Second)))
}
