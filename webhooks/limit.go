package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/semaphore"
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

// ErrBodyBudget is returned when a request's body could not get its share of
// the lane's byte budget in time.
var ErrBodyBudget = errors.New("too many request bytes in flight")

// Lane names, also the "lane" label of the overload metric.
const (
	LaneSmall = "small"
	LaneLarge = "large"
)

// Default admission lanes (README, Performance: "Cost isolation").
const (
	// DefaultLargeRequestBytes: bodies over 256 KiB take the large lane.
	// Pods, even large ones (50 KB with 20 containers), stay well below;
	// ConfigMaps and Secrets of hundreds of KB, and CRs, go above.
	DefaultLargeRequestBytes = 256 << 10
	// DefaultSmallBytesInFlight bounds the small lane's bodies: 32 bodies
	// at the threshold, thousands of ordinary pods.
	DefaultSmallBytesInFlight = 8 << 20
	// DefaultLargeBytesInFlight bounds the large lane's bodies: 8 bodies at
	// the default --max-body-bytes.
	DefaultLargeBytesInFlight = 8 * DefaultMaxBodyBytes
)

// chargeStep is how much of the budget a body of unknown length (chunked)
// takes at a time while it is read.
const chargeStep = 64 << 10

// AdmissionOptions configure Admission.
type AdmissionOptions struct {
	// LargeRequestBytes: a body with a bigger Content-Length, or none
	// (chunked), takes the large lane.
	LargeRequestBytes int64
	// SmallEvaluations and LargeEvaluations are each lane's evaluation
	// slots (<= 0: no cap for that lane).
	SmallEvaluations, LargeEvaluations int
	// SmallBytes and LargeBytes are each lane's budget of body bytes in
	// flight: read, decoding, waiting for a slot or being evaluated.
	SmallBytes, LargeBytes int64
	// QueueWait bounds the wait for bytes and for a slot together
	// (0: DefaultQueueWait).
	QueueWait time.Duration
}

// Admission is the cost isolation of the webhook server: it decides when a
// request may read its body and when it may be evaluated. Requests are
// sorted into two lanes by body size, before the body is read, so that
// expensive requests (big ConfigMaps, whatever the policies make of them)
// queue and fail among themselves while small ones (pods) keep their own
// slots and bytes. Each lane has
//
//   - a budget of body bytes in flight, taken before the body is read (the
//     whole Content-Length at once; a chunked body step by step as it is
//     read), held until the response is written: memory stays bounded
//     however many connections send at once;
//   - evaluation slots (a Limiter), taken after the body is decoded, so a
//     slow client cannot hold a slot while it trickles its body.
//
// A request that gets neither in QueueWait (at most a quarter of the
// apiserver's ?timeout=) is answered 429.
type Admission struct {
	largeRequest int64
	wait         time.Duration
	small, large *Lane
}

// Lane is one admission lane.
type Lane struct {
	name   string
	budget int64
	bytes  *semaphore.Weighted
	slots  *Limiter
}

// NewAdmission validates the options and builds the lanes.
func NewAdmission(o AdmissionOptions) (*Admission, error) {
	if o.LargeRequestBytes <= 0 {
		return nil, errors.New("the large-request threshold must be positive")
	}
	if o.SmallBytes < o.LargeRequestBytes {
		return nil, fmt.Errorf("the small lane's byte budget (%d) must hold one body at the large-request threshold (%d)", o.SmallBytes, o.LargeRequestBytes)
	}
	if o.LargeBytes <= 0 {
		return nil, errors.New("the large lane's byte budget must be positive")
	}
	if o.QueueWait <= 0 {
		o.QueueWait = DefaultQueueWait
	}
	lane := func(name string, slots int, bytes int64) *Lane {
		return &Lane{name: name, budget: bytes, bytes: semaphore.NewWeighted(bytes), slots: NewLimiter(slots, o.QueueWait)}
	}
	return &Admission{
		largeRequest: o.LargeRequestBytes,
		wait:         o.QueueWait,
		small:        lane(LaneSmall, o.SmallEvaluations, o.SmallBytes),
		large:        lane(LaneLarge, o.LargeEvaluations, o.LargeBytes),
	}, nil
}

// Lane returns the lane of a request with this Content-Length (-1: unknown).
func (a *Admission) Lane(contentLength int64) *Lane {
	if contentLength < 0 || contentLength > a.largeRequest {
		return a.large
	}
	return a.small
}

// Name is the lane's name (LaneSmall or LaneLarge).
func (l *Lane) Name() string { return l.name }

// Budget is the lane's byte budget.
func (l *Lane) Budget() int64 { return l.budget }

// Slots is the lane's evaluation limiter (nil: no cap).
func (l *Lane) Slots() *Limiter { return l.slots }

// Ticket is the share of a lane's byte budget one request holds.
type Ticket struct {
	lane     *Lane
	charged  int64
	deadline time.Time
	ctx      context.Context
}

// Reserve takes n bytes (n <= 0: none yet; see Reader) of the lane's budget,
// waiting until deadline at most. A body bigger than the whole budget is
// charged the whole budget: it then runs alone in its lane.
func (l *Lane) Reserve(ctx context.Context, n int64, deadline time.Time) (*Ticket, error) {
	t := &Ticket{lane: l, deadline: deadline, ctx: ctx}
	if n > 0 {
		if err := t.grow(n); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// grow adds n bytes to the ticket.
func (t *Ticket) grow(n int64) error {
	if left := t.lane.budget - t.charged; n > left {
		n = left
	}
	if n <= 0 {
		return nil
	}
	if !t.lane.bytes.TryAcquire(n) {
		ctx, cancel := context.WithDeadline(t.ctx, t.deadline)
		defer cancel()
		if err := t.lane.bytes.Acquire(ctx, n); err != nil {
			if t.ctx.Err() != nil {
				return t.ctx.Err()
			}
			return fmt.Errorf("%w (%s lane, budget %d bytes): retry later", ErrBodyBudget, t.lane.name, t.lane.budget)
		}
	}
	t.charged += n
	return nil
}

// Release returns the ticket's bytes to the lane.
func (t *Ticket) Release() {
	if t.charged > 0 {
		t.lane.bytes.Release(t.charged)
		t.charged = 0
	}
}

// Reader wraps a body of unknown length so that every byte read has been
// charged to the ticket first, chargeStep at a time.
func (t *Ticket) Reader(r io.Reader) io.Reader { return &chargedReader{r: r, t: t} }

type chargedReader struct {
	r    io.Reader
	t    *Ticket
	read int64
}

func (c *chargedReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.read >= c.t.charged {
		if c.t.charged >= c.t.lane.budget {
			// Alone with the whole budget: what is left is bounded by the
			// body limit the caller applies.
			return c.r.Read(p)
		}
		if err := c.t.grow(chargeStep); err != nil {
			return 0, err
		}
	}
	if room := c.t.charged - c.read; int64(len(p)) > room && c.t.charged < c.t.lane.budget {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}
