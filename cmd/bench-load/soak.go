package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/certs"
)

// The soak mix (`bench-load soak`, behind `make soak`). Every request picks,
// from its index (deterministically, so two runs send the same sequence):
//   - a body: 70% typical pod, 20% Deployment, 10% large pod;
//   - a path: /validate or /mutate, half each (the apiserver calls both
//     webhooks for every object);
//   - repeated or unique: 60% of the objects repeat, drawn from a pool of
//     soakPool objects per body that differ only in their UID (the pods of a
//     ReplicaSet scaling up, a Deployment re-applied unchanged: decision-cache
//     hits after the first), 40% are unique (a label value no other request
//     has: new or edited workloads, cache misses that also churn the LRU).
var soakMix = []struct {
	body   string
	weight int // percent
}{{"typical pod", 70}, {"deployment", 20}, {"large pod", 10}}

const (
	soakRepeatPercent = 60
	soakPool          = 50
)

type soakConfig struct {
	portcullis      string
	duration        time.Duration
	interval        time.Duration
	warmup          time.Duration
	rate, conns     int
	maxRequests     int
	gomaxprocs      int
	serverCPU       string
	portcullisFlags string
	rssTolerance    float64
	goroutineSlack  int
	keep            bool
}

// soakMain runs the soak subcommand and returns the exit code: 0 when the
// run passed, 1 when it failed its verdict or could not run, 2 on bad flags.
func soakMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c soakConfig
	fs := flag.NewFlagSet("bench-load soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.portcullis, "portcullis", "bin/portcullis", "portcullis binary")
	fs.DurationVar(&c.duration, "duration", 10*time.Minute, "length of the run")
	fs.DurationVar(&c.interval, "interval", 10*time.Second, "sampling interval (one table row each)")
	fs.DurationVar(&c.warmup, "warmup", time.Minute, "samples ending within this time are not judged for flatness (at most a quarter of -duration)")
	fs.IntVar(&c.rate, "rate", 500, "requests/s (open loop)")
	fs.IntVar(&c.conns, "conns", 16, "keep-alive connections")
	fs.IntVar(&c.maxRequests, "max-requests", 1_000_000, "cap on requests: the run fails to start when rate × duration exceeds it")
	fs.IntVar(&c.gomaxprocs, "gomaxprocs", runtime.NumCPU(), "GOMAXPROCS of the server")
	fs.StringVar(&c.serverCPU, "server-cpu", "", "CPUs the server is pinned to (taskset -c; empty: not pinned)")
	fs.StringVar(&c.portcullisFlags, "portcullis-flags", "", "extra flags for portcullis serve (space separated)")
	fs.Float64Var(&c.rssTolerance, "rss-tolerance", 0.10, "RSS: the last half's maximum may exceed the first half's by this fraction")
	fs.IntVar(&c.goroutineSlack, "goroutine-slack", 5, "goroutines: the last half's maximum may exceed the first half's by this many")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (server log)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.rate <= 0 || c.duration <= 0 || c.interval <= 0 || c.conns <= 0 {
		fmt.Fprintln(stderr, "bench-load soak: -rate, -duration, -interval and -conns must be positive")
		return 2
	}
	if n := float64(c.rate) * c.duration.Seconds(); n > float64(c.maxRequests) {
		fmt.Fprintf(stderr, "bench-load soak: %d/s for %s is %.0f requests, over -max-requests %d\n", c.rate, c.duration, n, c.maxRequests)
		return 2
	}
	passed, err := soak(ctx, c, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "bench-load soak:", err)
		return 1
	}
	if !passed {
		return 1
	}
	return 0
}

// soakSample is one interval of a soak run.
type soakSample struct {
	at         time.Duration // end of the interval, since the load started
	ok, failed int
	p50, p99   time.Duration
	rssMB      float64
	goroutines int // go_goroutines, least of three reads 100 ms apart; -1: /metrics could not be read
}

// flatness is the soak's pass criterion for memory and goroutines.
type flatness struct {
	warmup         time.Duration // samples with at ≤ warmup are not judged
	rssTolerance   float64       // fraction
	goroutineSlack int
}

// soakVerdict judges a run and returns why it failed (nothing: it passed).
// Every admission must succeed, warm-up included, and none may be dropped.
// After the warm-up the samples are split into a first and a last half
// (the middle sample, if any, goes to the last half); the last half's
// maximum RSS may exceed the first half's by at most rssTolerance and its
// maximum goroutine count the first half's by at most goroutineSlack.
// Maxima rather than means, so a steady climb fails but the sawtooth of the
// garbage collector does not.
func soakVerdict(samples []soakSample, dropped int, f flatness) []string {
	var why []string
	failed := 0
	for _, s := range samples {
		failed += s.failed
	}
	if failed > 0 {
		why = append(why, fmt.Sprintf("%d failed admissions", failed))
	}
	if dropped > 0 {
		why = append(why, fmt.Sprintf("%d requests not sent: the server fell behind", dropped))
	}
	var judged []soakSample
	for _, s := range samples {
		if s.at > f.warmup {
			judged = append(judged, s)
		}
	}
	if len(judged) < 2 {
		return append(why, fmt.Sprintf("%d samples after the %s warm-up: at least 2 needed to judge flatness", len(judged), f.warmup))
	}
	first, last := judged[:len(judged)/2], judged[len(judged)/2:]
	rss1, rss2 := maxOf(first, func(s soakSample) float64 { return s.rssMB }), maxOf(last, func(s soakSample) float64 { return s.rssMB })
	if rss2 > rss1*(1+f.rssTolerance) {
		why = append(why, fmt.Sprintf("RSS grew: last half's maximum %.1f MB > first half's %.1f MB + %.0f%%", rss2, rss1, 100*f.rssTolerance))
	}
	for _, s := range judged {
		if s.goroutines < 0 {
			return append(why, fmt.Sprintf("goroutine count unknown at %s", s.at))
		}
	}
	g1, g2 := maxOf(first, func(s soakSample) float64 { return float64(s.goroutines) }), maxOf(last, func(s soakSample) float64 { return float64(s.goroutines) })
	if g2 > g1+float64(f.goroutineSlack) {
		why = append(why, fmt.Sprintf("goroutines grew: last half's maximum %.0f > first half's %.0f + %d", g2, g1, f.goroutineSlack))
	}
	return why
}

func maxOf(ss []soakSample, v func(soakSample) float64) float64 {
	m := v(ss[0])
	for _, s := range ss[1:] {
		m = max(m, v(s))
	}
	return m
}

// soakWindows hands the recorder of the current interval to completing
// requests; the sampler swaps it under the same lock, so no result lands in
// an interval already reported.
type soakWindows struct {
	mu  sync.Mutex
	cur *recorder
}

func (w *soakWindows) add(status int, body []byte, err error, took time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur.add(status, body, err, took, false)
}

func (w *soakWindows) swap() *result {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.cur
	w.cur = &recorder{}
	return &old.res
}

// soakPick chooses a request's body, path and object from its index.
type soakPick struct {
	body   int // index into soakMix
	mutate bool
	seq    string // "" for a unique object
}

func pick(i int) soakPick {
	h := splitmix(uint64(i))
	var p soakPick
	roll := int(h % 100)
	for j, m := range soakMix {
		if roll < m.weight {
			p.body = j
			break
		}
		roll -= m.weight
	}
	p.mutate = (h>>8)&1 == 1
	if int((h>>16)%100) < soakRepeatPercent {
		p.seq = "rs-" + strconv.Itoa(int((h>>32)%soakPool))
	}
	return p
}

// splitmix is SplitMix64's finaliser: a well-mixed hash of the index.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var errDenied = errors.New("admission denied")

// checkAdmitted returns an error unless out is an AdmissionReview that
// allows the request: every soak body is admitted by the default policies,
// so a denial is a failure too.
func checkAdmitted(out []byte) error {
	var rv struct {
		Response *struct {
			Allowed bool `json:"allowed"`
			Status  *struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(out, &rv); err != nil || rv.Response == nil {
		return fmt.Errorf("not an AdmissionReview response: %.200s", out)
	}
	if !rv.Response.Allowed {
		msg := ""
		if rv.Response.Status != nil {
			msg = rv.Response.Status.Message
		}
		return fmt.Errorf("%w: %.200s", errDenied, msg)
	}
	return nil
}

func soak(ctx context.Context, c soakConfig, stdout io.Writer) (bool, error) {
	tmp, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return false, err
	}
	if c.keep {
		fmt.Fprintln(stdout, "temporary directory:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	certDir := filepath.Join(tmp, "certs")
	bundle, err := certs.Generate([]string{"localhost", "127.0.0.1"}, 24*time.Hour, 24*time.Hour, time.Now())
	if err != nil {
		return false, err
	}
	if err := bundle.WriteDir(certDir); err != nil {
		return false, err
	}
	all, err := bodies()
	if err != nil {
		return false, err
	}
	bs := make([]*body, len(soakMix))
	for i, m := range soakMix {
		for _, b := range all {
			if b.name == m.body {
				bs[i] = b
			}
		}
		if bs[i] == nil {
			return false, fmt.Errorf("no body %q", m.body)
		}
	}

	mp, err := freePort()
	if err != nil {
		return false, err
	}
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(mp) + "/metrics"
	extra := append([]string{"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(mp)}, strings.Fields(c.portcullisFlags)...)
	env := []string{"GOMAXPROCS=" + strconv.Itoa(c.gomaxprocs)} // overrides start's GOMAXPROCS=1 (the last value wins)
	srv, err := startPortcullis("portcullis", tmp, c.serverCPU, c.portcullis, certDir, env, extra)
	if err != nil {
		return false, err
	}
	defer srv.stop()
	if err := srv.wait(ctx); err != nil {
		return false, err
	}
	client, err := newClient(bundle.CACert, c.conns)
	if err != nil {
		return false, err
	}
	mc := &http.Client{Timeout: 5 * time.Second}
	// goroutines is the least of three reads 100 ms apart: a request in
	// flight holds goroutines for a moment, and a stall of the machine (not
	// of the server) piles them up for a moment; a leak holds them for good
	// and shows in every read.
	goroutines := func() int {
		least := -1
		for i := range 3 {
			if i > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			if n, err := scrapeGoroutines(ctx, mc, metricsURL); err == nil && (least < 0 || n < least) {
				least = n
			}
		}
		return least
	}
	warmup := min(c.warmup, c.duration/4)
	fmt.Fprintf(stdout, "soak: %d requests/s for %s (%d requests) over %d keep-alive connections to one portcullis serve (default policies, GOMAXPROCS=%d, pinned to %q); "+
		"bodies %s; /validate and /mutate half each; %d%% repeated objects (pool of %d per body), the rest unique; a row every %s; flatness judged after %s\n",
		c.rate, c.duration, int(float64(c.rate)*c.duration.Seconds()), c.conns, c.gomaxprocs, c.serverCPU, mixString(), soakRepeatPercent, soakPool, c.interval, warmup)
	baseline := goroutines()
	rss0, _ := srv.memory()
	fmt.Fprintf(stdout, "idle before load: RSS %.1f MB, %d goroutines\n\n", rss0, baseline)
	fmt.Fprintln(stdout, soakHeader)

	// Per class (body × path × repeated/unique) over the whole run, for the summary.
	classes := map[string]*recorder{}
	var classMu sync.Mutex
	class := func(p soakPick) *recorder {
		key := fmt.Sprintf("%-11s %-9s", soakMix[p.body].body, map[bool]string{false: "/validate", true: "/mutate"}[p.mutate])
		if p.seq == "" {
			key += " unique"
		} else {
			key += " repeated"
		}
		classMu.Lock()
		defer classMu.Unlock()
		r := classes[key]
		if r == nil {
			r = &recorder{}
			classes[key] = r
		}
		return r
	}
	win := &soakWindows{cur: &recorder{}}
	var samples []soakSample
	start := time.Now()
	sample := func(at time.Duration) {
		r := win.swap()
		rss, _ := srv.memory()
		s := soakSample{at: at, ok: len(r.latencies), failed: r.errorCount(), p50: r.quantile(0.5), p99: r.quantile(0.99), rssMB: rss, goroutines: goroutines()}
		samples = append(samples, s)
		line := s.row()
		if r.firstError != "" {
			line += "  first failure: " + r.firstError
		}
		fmt.Fprintln(stdout, line)
	}
	// The sampler takes every row but the last, which is taken once the
	// load has ended and the last answers are in.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		for k := 1; time.Duration(k)*c.interval < c.duration; k++ {
			select {
			case <-time.After(time.Until(start.Add(time.Duration(k) * c.interval))):
				sample(time.Duration(k) * c.interval)
			case <-loadCtx.Done():
				return
			}
		}
	}()
	urls := [2]string{srv.url + "/validate?timeout=10s", srv.url + "/mutate?timeout=10s"}
	_, dropped := openLoop(loadCtx, c.conns, c.rate, c.duration, func(i int, due time.Time) {
		p := pick(i)
		u := urls[0]
		if p.mutate {
			u = urls[1]
		}
		status, out, err := shot(loadCtx, client, u, bs[p.body].renderSeq(p.seq))
		took := time.Since(due)
		if err == nil && status == http.StatusOK {
			err = checkAdmitted(out)
		}
		win.add(status, out, err, took)
		class(p).add(status, out, err, took, false)
	})
	stopLoad()
	<-samplerDone
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	sample(time.Since(start).Round(time.Second))

	// Idle again: close the client's connections and let the server settle.
	client.CloseIdleConnections()
	time.Sleep(3 * time.Second)
	rssEnd, hwm := srv.memory()
	after := goroutines()

	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "Whole run by class (latency from when each request was due):")
	keys := make([]string, 0, len(classes))
	for k := range classes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := &classes[k].res
		fmt.Fprintf(stdout, "  %-32s %7d ok %5d failed  p50 %s  p99 %s\n", k, len(r.latencies), r.errorCount(), ms(r.quantile(0.5)), ms(r.quantile(0.99)))
	}
	fmt.Fprintf(stdout, "\nidle after load (connections closed, 3 s later): RSS %.1f MB (peak VmHWM %.1f MB), %d goroutines (%d before load)\n", rssEnd, hwm, after, baseline)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, soakTable(samples))

	f := flatness{warmup: warmup, rssTolerance: c.rssTolerance, goroutineSlack: c.goroutineSlack}
	why := soakVerdict(samples, dropped, f)
	if after < 0 || baseline < 0 || after > baseline+c.goroutineSlack {
		why = append(why, fmt.Sprintf("goroutines did not return to baseline once idle: %d after the load, %d before", after, baseline))
	}
	ok, failed := 0, 0
	for _, s := range samples {
		ok += s.ok
		failed += s.failed
	}
	fmt.Fprintf(stdout, "\n%d admissions ok, %d failed, %d not sent.\n", ok, failed, dropped)
	fmt.Fprintln(stdout, flatSummary(samples, f))
	if len(why) > 0 {
		fmt.Fprintln(stdout, "verdict: FAIL")
		for _, w := range why {
			fmt.Fprintln(stdout, "  -", w)
		}
		return false, nil
	}
	fmt.Fprintln(stdout, "verdict: PASS (zero failed admissions; RSS and goroutines flat after warm-up; goroutines back to baseline once idle)")
	return true, nil
}

func mixString() string {
	var parts []string
	for _, m := range soakMix {
		parts = append(parts, fmt.Sprintf("%d%% %s", m.weight, m.body))
	}
	return strings.Join(parts, ", ")
}

const soakHeader = "     t      ok  failed       p50       p99   RSS MB  goroutines"

func (s soakSample) row() string {
	g := strconv.Itoa(s.goroutines)
	if s.goroutines < 0 {
		g = "?"
	}
	return fmt.Sprintf("%6s  %6d  %6d  %8s  %8s  %7.1f  %10s", s.at.Round(time.Second), s.ok, s.failed,
		fmt.Sprintf("%.2f", float64(s.p50.Microseconds())/1000), fmt.Sprintf("%.2f", float64(s.p99.Microseconds())/1000), s.rssMB, g)
}

// soakTable is the whole run, one row per interval (p50/p99 in ms).
func soakTable(samples []soakSample) string {
	var b strings.Builder
	b.WriteString(soakHeader + "\n")
	for _, s := range samples {
		b.WriteString(s.row() + "\n")
	}
	return b.String()
}

// flatSummary states the figures the flatness verdict compares.
func flatSummary(samples []soakSample, f flatness) string {
	var judged []soakSample
	for _, s := range samples {
		if s.at > f.warmup {
			judged = append(judged, s)
		}
	}
	if len(judged) < 2 {
		return "flatness: too few samples after warm-up"
	}
	first, last := judged[:len(judged)/2], judged[len(judged)/2:]
	rss := func(s soakSample) float64 { return s.rssMB }
	gor := func(s soakSample) float64 { return float64(s.goroutines) }
	return fmt.Sprintf("after the %s warm-up: RSS max %.1f MB (first half, to %s) → %.1f MB (last half), limit %.1f MB; goroutines max %.0f → %.0f, limit %.0f",
		f.warmup, maxOf(first, rss), first[len(first)-1].at, maxOf(last, rss), maxOf(first, rss)*(1+f.rssTolerance),
		maxOf(first, gor), maxOf(last, gor), maxOf(first, gor)+float64(f.goroutineSlack))
}

// scrapeGoroutines reads go_goroutines from a Prometheus text endpoint.
func scrapeGoroutines(ctx context.Context, c *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return parseGoroutines(resp.Body)
}

func parseGoroutines(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || name != "go_goroutines" {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, fmt.Errorf("go_goroutines %q: %w", value, err)
		}
		return int(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no go_goroutines in /metrics")
}
