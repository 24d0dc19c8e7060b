package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultQueueWait is how long a request waits for an evaluation slot before
// it is refused: long enough to ride out a burst (16 connections queueing
// behind 4 evaluations of a 50 KB pod at ~10 ms each wait ~120 ms), far
// shorter than the webhook timeout (the wait is also capped at a quarter of
// the apiserver's ?timeout=), so an overloaded server answers quickly (and the
// apiserver applies the webhook's failurePolicy, or the client retries)
// instead of queueing requests until they time out anyway.
const DefaultQueueWait = 500 * time.Millisecond

// ErrOverloaded is returned by Limiter.Acquire when no slot freed in time.
var ErrOverloaded = errors.New("too many concurrent admission requests")

// Limiter caps the evaluations running at once across all webhook paths.
// Policy evaluation is CPU-bound: beyond a few per core, more concurrency
// only makes every request slower, and a queue that grows without bound
// turns a burst into timeouts for everyone.
type Limiter struct {
	slots chan struct{}
	wait  time.Duration
}

// NewLimiter allows max concurrent evaluations; a request waits at most wait
// (0: DefaultQueueWait) for a slot. max <= 0 means no limit (nil Limiter).
func NewLimiter(max int, wait time.Duration) *Limiter {
	if max <= 0 {
		return nil
	}
	if wait <= 0 {
		wait = DefaultQueueWait
	}
	return &Limiter{slots: make(chan struct{}, max), wait: wait}
}

// Max returns the number of concurrent evaluations allowed.
func (l *Limiter) Max() int { return cap(l.slots) }

// Acquire takes a slot, waiting at most the limiter's wait, and no longer
// than budget when budget is positive (the caller passes a fraction of the
// request's own deadline). It returns the function releasing the slot, or
// an error wrapping ErrOverloaded (or ctx's error).
func (l *Limiter) Acquire(ctx context.Context, budget time.Duration) (release func(), err error) {
	release = func() { <-l.slots }
	select {
	case l.slots <- struct{}{}:
		return release, nil
	default:
	}
	wait := l.wait
	if budget > 0 && budget < wait {
		wait = budget
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, fmt.Errorf("%w (limit %d, waited %v): retry later", ErrOverloaded, cap(l.slots), wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
