package webhooks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
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

	// A request that arrives while the slots are busy and gets one within the
	// wait is served.
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- post(validate, body) }()
	time.Sleep(10 * time.Millisecond)
	close(unblock) // the held evaluations finish, freeing their slots
	wg.Wait()
	for i, r := range held {
		if r.Code != http.StatusOK || !decodeResponse(t, r).Allowed {
			t.Errorf("held request %d: status %d %s", i, r.Code, r.Body)
		}
	}
	if r := <-done; r.Code != http.StatusOK {
		t.Errorf("queued request: status %d %s", r.Code, r.Body)
	}
	if r := post(mutate, body); r.Code != http.StatusOK {
		t.Errorf("after the burst: status %d %s", r.Code, r.Body)
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
