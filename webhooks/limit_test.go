package webhooks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/policies/engine"
)

// Over the evaluation cap, requests wait briefly for a slot, then fail fast
// with HTTP 429 naming the request UID, while the evaluations in progress
// finish normally; once a slot frees, requests are served again.
func TestWebhookOverloadCap(t *testing.T) {
	t.Parallel()
	const max = 2
	entered := make(chan struct{}, 10)
	unblock := make(chan struct{})
	eng := evaluatorFunc(func(ctx context.Context, _ engine.Phase, _ *admissionv1.AdmissionRequest, _ engine.Options) (*engine.Decision, error) {
		entered <- struct{}{}
		<-unblock
		return &engine.Decision{Allowed: true}, nil
	})
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	limiter := NewLimiter(max, 50*time.Millisecond)
	validate := webhook(eng, engine.Validating, nil, m)
	validate.Limiter = limiter
	mutate := webhook(eng, engine.Mutating, nil, m)
	mutate.Limiter = limiter // one cap across both paths
	body := readTestdata(t, "pod-allowed.json")

	// Fill both slots, one per path.
	var wg sync.WaitGroup
	held := make([]*httptest.ResponseRecorder, max)
	for i, wh := range []*Webhook{validate, mutate} {
		wg.Go(func() { held[i] = post(wh, body) })
	}
	for range max {
		<-entered
	}

	// The next request is refused after waiting about the queue wait.
	start := time.Now()
	rec := post(validate, body)
	took := time.Since(start)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", rec.Code, rec.Body)
	}
	if took < 40*time.Millisecond || took > 2*time.Second {
		t.Errorf("refused after %v; the queue wait is 50ms", took)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q", ra)
	}
	resp := decodeResponse(t, rec)
	want := "too many concurrent admission requests (limit 2, waited 50ms): retry later"
	if resp.Allowed || resp.Result.Code != http.StatusTooManyRequests || resp.Result.Message != want || string(resp.UID) != requestUID(t, body) {
		t.Errorf("response = allowed %v, code %d, message %q, uid %q", resp.Allowed, resp.Result.Code, resp.Result.Message, resp.UID)
	}
	if got := metricValue(t, m.BadRequests.WithLabelValues("validating", "429")); got != 1 {
		t.Errorf("429s counted: %v", got)
	}

	// The apiserver's ?timeout= shortens the wait to a quarter of it.
	start = time.Now()
	rec = do(validate, http.MethodPost, "/validate?timeout=40ms", "application/json", body)
	if rec.Code != http.StatusTooManyRequests || time.Since(start) > time.Second {
		t.Errorf("with ?timeout=40ms: status %d after %v", rec.Code, time.Since(start))
	}
	if msg := decodeResponse(t, rec).Result.Message; msg != "too many concurrent admission requests (limit 2, waited 10ms): retry later" {
		t.Errorf("message %q", msg)
	}

	close(unblock) // the held evaluations finish, freeing their slots
	wg.Wait()
	for i, r := range held {
		if r.Code != http.StatusOK || !decodeResponse(t, r).Allowed {
			t.Errorf("held request %d: status %d %s", i, r.Code, r.Body)
		}
	}
	if r := post(mutate, body); r.Code != http.StatusOK {
		t.Errorf("after the burst: status %d %s", r.Code, r.Body)
	}
}

// A request that arrives while every slot is busy waits for one and is
// served when it frees. The queue wait is long so that a slow machine cannot
// turn the wait into a 429 (the refusal itself is TestWebhookOverloadCap's).
func TestWebhookQueuedRequestServedWhenSlotFrees(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 2)
	unblock := make(chan struct{})
	var calls atomic.Int32
	eng := evaluatorFunc(func(ctx context.Context, _ engine.Phase, _ *admissionv1.AdmissionRequest, _ engine.Options) (*engine.Decision, error) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-unblock
		}
		return &engine.Decision{Allowed: true}, nil
	})
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	validate := webhook(eng, engine.Validating, nil, m)
	validate.Limiter = NewLimiter(1, time.Minute)
	body := readTestdata(t, "pod-allowed.json")

	held := make(chan *httptest.ResponseRecorder)
	go func() { held <- post(validate, body) }()
	<-entered // the only slot is taken
	queued := make(chan *httptest.ResponseRecorder)
	go func() { queued <- post(validate, body) }()
	time.Sleep(10 * time.Millisecond) // usually queued by now; either way it must be served
	close(unblock)
	if r := <-held; r.Code != http.StatusOK {
		t.Errorf("held request: status %d %s", r.Code, r.Body)
	}
	if r := <-queued; r.Code != http.StatusOK || !decodeResponse(t, r).Allowed {
		t.Errorf("queued request: status %d %s", r.Code, r.Body)
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	if NewLimiter(0, time.Second) != nil {
		t.Error("a zero cap is not 'no limit'")
	}
	l := NewLimiter(1, time.Hour)
	if l.Max() != 1 {
		t.Errorf("Max = %d", l.Max())
	}
	release, err := l.Acquire(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// The caller's context ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	// The budget caps the wait.
	if _, err := l.Acquire(context.Background(), 5*time.Millisecond); !errors.Is(err, ErrOverloaded) {
		t.Errorf("err = %v, want ErrOverloaded", err)
	}
	release()
	release2, err := l.Acquire(context.Background(), 0)
	if err != nil {
		t.Fatalf("slot not released: %v", err)
	}
	release2()
}

// blockingEvaluator blocks the requests whose UID is in block until
// unblock is closed, signalling entered; others are allowed at once.
type blockingEvaluator struct {
	block   map[string]bool
	entered chan string
	unblock chan struct{}
}

func (b *blockingEvaluator) Evaluate(ctx context.Context, _ engine.Phase, req *admissionv1.AdmissionRequest, _ engine.Options) (*engine.Decision, error) {
	if b.block[string(req.UID)] {
		b.entered <- string(req.UID)
		<-b.unblock
	}
	return &engine.Decision{Allowed: true}, nil
}

// withUID returns body with its request UID replaced and padded with
// trailing blanks to size bytes (JSON allows them; Content-Length grows).
func withUID(t testing.TB, body []byte, uid string, size int) []byte {
	t.Helper()
	old := `"uid": "` + requestUID(t, body) + `"`
	out := bytes.Replace(body, []byte(old), []byte(`"uid": "`+uid+`"`), 1)
	if len(out) < size {
		out = append(out, bytes.Repeat([]byte(" "), size-len(out))...)
	}
	return out
}

// countingReader counts the bytes read from it; known sets Content-Length.
type countingReader struct {
	r    io.Reader
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// postCounting posts body through a countingReader; contentLength -1 sends
// it as a body of unknown length (chunked).
func postCounting(h http.Handler, body []byte, contentLength int64) (*httptest.ResponseRecorder, *countingReader) {
	cr := &countingReader{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, "/validate", cr)
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, cr
}

func newAdmission(t testing.TB, o AdmissionOptions) *Admission {
	t.Helper()
	a, err := NewAdmission(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Expensive requests (bodies over the threshold) queue and fail among
// themselves: with the large lane's slot taken and its queue refused, small
// requests are still served at once from their own slots.
func TestAdmissionLanes(t *testing.T) {
	t.Parallel()
	small := readTestdata(t, "pod-allowed.json")
	big1 := withUID(t, small, "big-1", 8000)
	big2 := withUID(t, small, "big-2", 8000)
	ev := &blockingEvaluator{block: map[string]bool{"big-1": true, "big-2": true}, entered: make(chan string, 4), unblock: make(chan struct{})}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	wh := webhook(ev, engine.Validating, nil, m)
	wh.Admission = newAdmission(t, AdmissionOptions{
		LargeRequestBytes: 4096, SmallEvaluations: 2, LargeEvaluations: 1,
		SmallBytes: 1 << 20, LargeBytes: 1 << 20, QueueWait: 50 * time.Millisecond,
	})
	if got := wh.Admission.Lane(int64(len(small))).Name(); got != LaneSmall {
		t.Errorf("a %d-byte body takes the %s lane", len(small), got)
	}
	for _, n := range []int64{8000, -1} {
		if got := wh.Admission.Lane(n).Name(); got != LaneLarge {
			t.Errorf("Content-Length %d takes the %s lane", n, got)
		}
	}

	held := make(chan *httptest.ResponseRecorder)
	go func() { held <- post(wh, big1) }()
	if uid := <-ev.entered; uid != "big-1" {
		t.Fatalf("entered %s", uid)
	}
	// The large lane is full: the next expensive request is refused.
	rec := post(wh, big2)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("second large request: status %d: %s", rec.Code, rec.Body)
	}
	resp := decodeResponse(t, rec)
	if want := "too many concurrent admission requests (limit 1, waited 50ms): retry later"; resp.Result.Message != want || resp.UID != "big-2" {
		t.Errorf("second large request: uid %q, message %q, want %q", resp.UID, resp.Result.Message, want)
	}
	// Small requests are not behind it.
	for i := range 5 {
		if rec := post(wh, small); rec.Code != http.StatusOK || !decodeResponse(t, rec).Allowed {
			t.Fatalf("small request %d during the large one: status %d: %s", i, rec.Code, rec.Body)
		}
	}
	if got := metricValue(t, m.Overload.WithLabelValues(LaneLarge, "slots")); got != 1 {
		t.Errorf("large-lane slot refusals counted: %v", got)
	}
	if got := metricValue(t, m.Overload.WithLabelValues(LaneSmall, "slots")); got != 0 {
		t.Errorf("small-lane slot refusals counted: %v", got)
	}
	close(ev.unblock)
	if rec := <-held; rec.Code != http.StatusOK {
		t.Errorf("held large request: status %d: %s", rec.Code, rec.Body)
	}
}

// The byte budget is taken before the body is read: a body that does not
// fit is refused without reading a byte of it; a body of unknown length is
// charged as it is read and stops at what the budget gave it; an oversize
// Content-Length is refused 413 unread; released bytes serve the next one.
func TestAdmissionByteBudget(t *testing.T) {
	t.Parallel()
	base := readTestdata(t, "pod-allowed.json")
	const budget = 100_000
	heldBody := withUID(t, base, "held", 8300)
	ev := &blockingEvaluator{block: map[string]bool{"held": true}, entered: make(chan string, 4), unblock: make(chan struct{})}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	wh := webhook(ev, engine.Validating, nil, m)
	wh.MaxBodyBytes = 200_000
	wh.Admission = newAdmission(t, AdmissionOptions{
		LargeRequestBytes: 4096, SmallEvaluations: 4, LargeEvaluations: 4,
		SmallBytes: 1 << 20, LargeBytes: budget, QueueWait: 50 * time.Millisecond,
	})

	held := make(chan *httptest.ResponseRecorder)
	go func() { held <- post(wh, heldBody) }()
	<-ev.entered // 8300 bytes of the budget are in flight

	// Known length that does not fit: refused unread.
	tooMuch := withUID(t, base, "too-much", budget-8000)
	rec, cr := postCounting(wh, tooMuch, int64(len(tooMuch)))
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("known length over the budget left: status %d: %s", rec.Code, rec.Body)
	}
	resp := decodeResponse(t, rec)
	if want := "too many request bytes in flight (large lane, budget 100000 bytes): retry later"; resp.Result.Message != want {
		t.Errorf("message %q, want %q", resp.Result.Message, want)
	}
	if rec.Header().Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	if n := cr.read.Load(); n != 0 {
		t.Errorf("%d bytes of a refused body were read", n)
	}
	// Unknown length: charged 64 KiB at a time; the second step does not fit.
	rec, cr = postCounting(wh, withUID(t, base, "chunked", 95_000), -1)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("chunked body over the budget left: status %d: %s", rec.Code, rec.Body)
	}
	if n := cr.read.Load(); n != chargeStep {
		t.Errorf("read %d bytes of a chunked body, want the %d charged", n, chargeStep)
	}
	// Oversize by Content-Length: 413 before reading.
	huge := withUID(t, base, "huge", 200_001)
	rec, cr = postCounting(wh, huge, int64(len(huge)))
	if rec.Code != http.StatusRequestEntityTooLarge || cr.read.Load() != 0 {
		t.Errorf("oversize: status %d after reading %d bytes", rec.Code, cr.read.Load())
	}
	if got := metricValue(t, m.Overload.WithLabelValues(LaneLarge, "bytes")); got != 2 {
		t.Errorf("byte-budget refusals counted: %v", got)
	}

	close(ev.unblock)
	if rec := <-held; rec.Code != http.StatusOK {
		t.Errorf("held request: status %d: %s", rec.Code, rec.Body)
	}
	// Everything was released: the whole budget serves one body, known or not.
	full := withUID(t, base, "full", budget)
	for _, n := range []int64{int64(len(full)), -1} {
		if rec, _ := postCounting(wh, full, n); rec.Code != http.StatusOK {
			t.Errorf("Content-Length %d after release: status %d: %s", n, rec.Code, rec.Body)
		}
	}
}

func TestNewAdmissionErrors(t *testing.T) {
	t.Parallel()
	ok := AdmissionOptions{LargeRequestBytes: 10, SmallBytes: 10, LargeBytes: 10}
	for name, tc := range map[string]struct {
		edit func(*AdmissionOptions)
		want string
	}{
		"no threshold":           {func(o *AdmissionOptions) { o.LargeRequestBytes = 0 }, "the large-request threshold must be positive"},
		"small budget too small": {func(o *AdmissionOptions) { o.SmallBytes = 9 }, "the small lane's byte budget (9) must hold one body at the large-request threshold (10)"},
		"no large budget":        {func(o *AdmissionOptions) { o.LargeBytes = 0 }, "the large lane's byte budget must be positive"},
	} {
		o := ok
		tc.edit(&o)
		if _, err := NewAdmission(o); err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	if _, err := NewAdmission(ok); err != nil {
		t.Error(err)
	}
}
