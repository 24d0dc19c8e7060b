package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is one measured point.
type result struct {
	requests   int
	errors     map[int]int // HTTP status (0: transport error) → count
	elapsed    time.Duration
	latencies  []time.Duration
	dropped    int // open loop: requests not sent in time (the server fell behind)
	allowed    *bool
	patched    bool
	firstError string
}

func (r *result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r *result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

func (r *result) errorCount() int {
	n := 0
	for _, c := range r.errors {
		n += c
	}
	return n
}

// newClient returns an HTTPS client speaking HTTP/1.1 over at most conns
// keep-alive connections, trusting only the benchmark CA.
func newClient(caPEM []byte, conns int) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no CA certificate")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only, like the apiserver
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, nil
}

// shot sends one request and returns the status (0 on transport error) and the body.
func shot(ctx context.Context, c *http.Client, url string, b []byte) (int, []byte, error) {
	return post(ctx, c, url, bytes.NewReader(b), int64(len(b)))
}

// post sends a JSON body of size bytes read from r and returns the status
// (0 on transport error) and the answer.
func post(ctx context.Context, c *http.Client, url string, r io.Reader, size int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, r)
	if err != nil {
		return 0, nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// recorder collects results from concurrent workers.
type recorder struct {
	mu  sync.Mutex
	res result
}

func (r *recorder) add(status int, body []byte, err error, took time.Duration, inspect bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.requests++
	if err != nil || status != http.StatusOK {
		if r.res.errors == nil {
			r.res.errors = map[int]int{}
		}
		r.res.errors[status]++
		if r.res.firstError == "" {
			msg := string(body)
			if err != nil {
				msg = err.Error()
			}
			if len(msg) > 300 {
				msg = msg[:300]
			}
			r.res.firstError = fmt.Sprintf("status %d: %s", status, msg)
		}
		return
	}
	r.res.latencies = append(r.res.latencies, took)
	if inspect && r.res.allowed == nil {
		var rv struct {
			Response struct {
				Allowed bool   `json:"allowed"`
				Patch   []byte `json:"patch"`
			} `json:"response"`
		}
		if json.Unmarshal(body, &rv) == nil {
			a := rv.Response.Allowed
			r.res.allowed = &a
			r.res.patched = len(rv.Response.Patch) > 0
		}
	}
}

// saturate keeps conns requests in flight (closed loop) for d or until max
// requests, after a warm-up that is not counted.
func saturate(ctx context.Context, c *http.Client, url string, b *body, unique bool, conns int, warmup, d time.Duration, max int) *result {
	run := func(d time.Duration, max int, rec *recorder) time.Duration {
		deadline := time.Now().Add(d)
		var sent atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range conns {
			wg.Go(func() {
				for time.Now().Before(deadline) && sent.Add(1) <= int64(max) && ctx.Err() == nil {
					payload := b.render(unique)
					t0 := time.Now()
					status, out, err := shot(ctx, c, url, payload)
					rec.add(status, out, err, time.Since(t0), true)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	run(warmup, max, &recorder{})
	rec := &recorder{}
	rec.res.elapsed = run(d, max, rec)
	return &rec.res
}

// fixedRate sends rate requests/s (open loop) for d over conns connections.
// Latency counts from the moment a request was due, not from when a
// connection became free, so a server falling behind shows in the figures
// (no coordinated omission). Requests still not sent a second after d ends
// are dropped and counted.
func fixedRate(ctx context.Context, c *http.Client, url string, b *body, unique bool, conns int, rate int, d time.Duration) *result {
	rec := &recorder{}
	rec.res.elapsed, rec.res.dropped = openLoop(ctx, conns, rate, d, func(_ int, due time.Time) {
		payload := b.render(unique)
		status, out, err := shot(ctx, c, url, payload)
		rec.add(status, out, err, time.Since(due), true)
	})
	return &rec.res
}

// openLoop calls send rate times a second for d (rate×d calls in all) from
// conns workers, each call with its index and the time it was due. The
// schedule never waits for answers: when every worker is busy the due calls
// queue and are sent as soon as a worker is free, still carrying their due
// time. Calls still queued a second after d ends are dropped, not sent, and
// counted; so are calls never scheduled because ctx ended. It returns the
// elapsed time and the number dropped.
func openLoop(ctx context.Context, conns, rate int, d time.Duration, send func(i int, due time.Time)) (time.Duration, int) {
	total := int(float64(rate) * d.Seconds())
	// A bounded queue (two seconds of requests) keeps a long run's memory
	// flat; the scheduler blocking on it changes no due time.
	type call struct {
		i   int
		due time.Time
	}
	due := make(chan call, min(total, 2*rate)+1)
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	var dropped atomic.Int64
	for range conns {
		wg.Go(func() {
			for c := range due {
				if time.Now().After(end.Add(time.Second)) || ctx.Err() != nil {
					dropped.Add(1)
					continue
				}
				send(c.i, c.due)
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	scheduled := 0
schedule:
	for i := range total {
		t := start.Add(time.Duration(i) * interval)
		if w := time.Until(t); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				break schedule
			}
		}
		select {
		case due <- call{i, t}:
			scheduled++
		case <-ctx.Done():
			break schedule
		}
	}
	close(due)
	wg.Wait()
	return time.Since(start), int(dropped.Load()) + total - scheduled
}
