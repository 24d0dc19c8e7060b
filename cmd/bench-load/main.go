// Command bench-load is the side-by-side load test behind `make bench-load`:
// three servers on loopback, each pinned to one core with GOMAXPROCS=1, the
// same AdmissionReviews sent over HTTPS keep-alive HTTP/1.1, bounded in time
// and request count.
//
//  1. floor: `portcullis serve` with an empty policy set (decode, encode, TLS);
//  2. portcullis: `portcullis serve` with the default policy set, /validate and /mutate;
//  3. opa: stock `opa run --server` with the same Rego modules and config and a
//     system.main rule building the AdmissionReview response (OPA's
//     admission-control tutorial), on POST / (OPA's default decision).
//
// For each server and body it measures saturation throughput (closed loop),
// p50/p99 latency at a fixed rate (open loop) and RSS, then prints a
// markdown table with the ratios and writes it to -out.
//
// Run it pinned to the other core: `taskset -c 1 bench-load ...` (the
// Makefile does).
//
// `bench-load adversarial [flags]` (behind `make bench-adversarial`) is a
// hostile tenant's load instead (adversarial.go): small pods during a flood
// of expensive ConfigMaps, and peak RSS under 160 concurrent ~3 MB bodies.
//
// `bench-load soak [flags]` (behind `make soak`) is the long run instead: one
// `portcullis serve` with the default policies at a fixed rate of mixed
// bodies for minutes, sampling RSS, goroutines, failures and latency every
// interval, and exiting non-zero unless no admission failed and memory and
// goroutines stayed flat after the warm-up (see soak.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis/portcullis/certs"
)

type config struct {
	portcullis, opa     string
	duration, rateDur   time.Duration
	warmup              time.Duration
	rate, conns, max    int
	out                 string
	serverCPU           string
	onlyServers, bodies string
	portcullisFlags     string
	portcullisEnv       string
	opaEnv              string
	cached              bool
	keep                bool
	dump                string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "adversarial" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := adversarialMain(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "soak" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := soakMain(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	var c config
	flag.StringVar(&c.portcullis, "portcullis", "bin/portcullis", "portcullis binary")
	flag.StringVar(&c.opa, "opa", "bin/opa", "stock opa binary (go build -o bin/opa github.com/open-policy-agent/opa)")
	flag.DurationVar(&c.duration, "duration", 7*time.Second, "length of each saturation point")
	flag.DurationVar(&c.rateDur, "rate-duration", 7*time.Second, "length of each fixed-rate point")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured warm-up before each saturation point")
	flag.IntVar(&c.rate, "rate", 500, "requests/s of the fixed-rate points")
	flag.IntVar(&c.conns, "conns", 16, "keep-alive connections per server")
	flag.IntVar(&c.max, "max-requests", 300000, "cap on requests per point")
	flag.StringVar(&c.out, "out", "bench-load.md", "file the markdown table is written to (empty: none)")
	flag.StringVar(&c.serverCPU, "server-cpu", "0", "CPU the servers are pinned to (taskset -c)")
	flag.StringVar(&c.onlyServers, "servers", "floor,validate,mutate,opa", "points to run: floor, validate, mutate, opa")
	flag.StringVar(&c.bodies, "bodies", "", "comma-separated body names to run (default all)")
	flag.StringVar(&c.portcullisFlags, "portcullis-flags", "", "extra flags for both portcullis servers (space separated)")
	flag.StringVar(&c.portcullisEnv, "portcullis-env", "", "extra environment for both portcullis servers (space separated K=V)")
	flag.StringVar(&c.opaEnv, "opa-env", "", "extra environment for opa (space separated K=V)")
	flag.BoolVar(&c.cached, "cached", true, "also measure identical objects (decision cache hits) on the portcullis points")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (logs, OPA bundle)")
	flag.StringVar(&c.dump, "dump", "", "write the request bodies (unique-mode samples) into this directory and exit")
	flag.Parse()

	if c.dump != "" {
		if err := dump(c.dump); err != nil {
			fmt.Fprintln(os.Stderr, "bench-load:", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-load:", err)
		os.Exit(1)
	}
}

// point is one row of the table.
type point struct {
	body, server      string
	sat, satCache     *result
	fixed, fixedCache *result
	rss, hwm          float64
}

func run(ctx context.Context, c config, stdout io.Writer) error {
	tmp, err := os.MkdirTemp("", "bench-load-")
	if err != nil {
		return err
	}
	if c.keep {
		fmt.Fprintln(stdout, "temporary directory:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	certDir := filepath.Join(tmp, "certs")
	bundle, err := certs.Generate([]string{"localhost", "127.0.0.1"}, 24*time.Hour, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	if err := bundle.WriteDir(certDir); err != nil {
		return err
	}
	empty := filepath.Join(tmp, "empty-policies")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return err
	}
	opaDir := filepath.Join(tmp, "opa-bundle")
	if err := writeOPABundle(ctx, opaDir); err != nil {
		return err
	}
	bs, err := bodies()
	if err != nil {
		return err
	}
	if c.bodies != "" {
		var keep []*body
		for _, b := range bs {
			if strings.Contains(","+c.bodies+",", ","+b.name+",") {
				keep = append(keep, b)
			}
		}
		bs = keep
	}
	want := map[string]bool{}
	for _, s := range strings.Split(c.onlyServers, ",") {
		want[strings.TrimSpace(s)] = true
	}

	pflags := strings.Fields(c.portcullisFlags)
	penv := strings.Fields(c.portcullisEnv)
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	startAll := func() (floor, full, opa *server, err error) {
		if want["floor"] {
			if floor, err = startPortcullis("floor", tmp, c.serverCPU, c.portcullis, certDir, penv, append([]string{"--builtin=false", "--policies", empty, "--allow-empty-policies"}, pflags...)); err != nil {
				return
			}
			servers = append(servers, floor)
		}
		if want["validate"] || want["mutate"] {
			if full, err = startPortcullis("portcullis", tmp, c.serverCPU, c.portcullis, certDir, penv, pflags); err != nil {
				return
			}
			servers = append(servers, full)
		}
		if want["opa"] {
			if opa, err = startOPA(tmp, c.serverCPU, c.opa, certDir, opaDir, bundle.CACert, strings.Fields(c.opaEnv)); err != nil {
				return
			}
			servers = append(servers, opa)
		}
		for _, s := range servers {
			if err = s.wait(ctx); err != nil {
				return
			}
		}
		return
	}
	floor, full, opa, err := startAll()
	if err != nil {
		return err
	}
	client, err := newClient(bundle.CACert, c.conns)
	if err != nil {
		return err
	}
	if opa != nil {
		if err := checkOPA(ctx, client, opa, bs[0].render(true)); err != nil {
			return err
		}
	}

	fmt.Fprintf(stdout, "bench-load: %d connections, %s saturation points (+%s warm-up), %d req/s fixed-rate points of %s; servers on CPU %s, load generator GOMAXPROCS=%d\n",
		c.conns, c.duration, c.warmup, c.rate, c.rateDur, c.serverCPU, runtime.GOMAXPROCS(0))
	type plan struct {
		label string
		s     *server
		path  string
		cache bool
	}
	// Portcullis paths carry the apiserver's ?timeout= (10 s, its default).
	plans := []plan{
		{"floor (no policies) /validate", floor, "/validate?timeout=10s", false},
		{"portcullis /validate", full, "/validate?timeout=10s", c.cached},
		{"portcullis /mutate", full, "/mutate?timeout=10s", c.cached},
		{"stock OPA POST /", opa, "/", false},
	}
	keys := []string{"floor", "validate", "mutate", "opa"}
	var points []*point
	for i, pl := range plans {
		if pl.s == nil || !want[keys[i]] {
			continue
		}
		for _, b := range bs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p := &point{body: b.name, server: pl.label}
			url := pl.s.url + pl.path
			p.sat = saturate(ctx, client, url, b, true, c.conns, c.warmup, c.duration, c.max)
			p.rss, _ = pl.s.memory()
			if pl.cache {
				p.satCache = saturate(ctx, client, url, b, false, c.conns, c.warmup, c.duration, c.max)
			}
			p.fixed = fixedRate(ctx, client, url, b, true, c.conns, c.rate, c.rateDur)
			if pl.cache {
				p.fixedCache = fixedRate(ctx, client, url, b, false, c.conns, c.rate, c.rateDur)
			}
			if rss, _ := pl.s.memory(); rss > p.rss {
				p.rss = rss
			}
			_, p.hwm = pl.s.memory()
			fmt.Fprintf(stdout, "  %-32s %-12s %s\n", pl.label, b.name, p.summary())
			points = append(points, p)
		}
	}
	table := report(c, bs, points)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, table)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(table), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "written to", c.out)
	}
	return nil
}

func (p *point) summary() string {
	s := fmt.Sprintf("sat %7.0f/s", p.sat.rps())
	if p.satCache != nil {
		s += fmt.Sprintf("  cached %7.0f/s", p.satCache.rps())
	}
	s += fmt.Sprintf("  @rate p50 %s p99 %s", ms(p.fixed.quantile(0.5)), ms(p.fixed.quantile(0.99)))
	if p.fixedCache != nil {
		s += fmt.Sprintf(" (cached p50 %s p99 %s)", ms(p.fixedCache.quantile(0.5)), ms(p.fixedCache.quantile(0.99)))
	}
	s += fmt.Sprintf("  RSS %.0f MB (HWM %.0f)", p.rss, p.hwm)
	if n := p.sat.errorCount() + p.fixed.errorCount(); n > 0 {
		first := p.sat.firstError
		if first == "" {
			first = p.fixed.firstError
		}
		s += fmt.Sprintf("  ERRORS %d (%s)", n, first)
	}
	if p.satCache != nil && p.satCache.errorCount() > 0 {
		s += fmt.Sprintf("  cached ERRORS %d (%s)", p.satCache.errorCount(), p.satCache.firstError)
	}
	if p.sat.allowed != nil {
		s += fmt.Sprintf("  allowed=%v", *p.sat.allowed)
	}
	if p.sat.patched {
		s += " patched"
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func report(c config, bs []*body, points []*point) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Each server pinned to one core (GOMAXPROCS=1), load from the other core; HTTPS keep-alive HTTP/1.1, %d connections. "+
		"Saturation: closed loop, %s per point, unique objects (no two requests alike; \"cached\": identical objects but for the UID). "+
		"Latency: open loop at %d requests/s for %s, measured from when each request was due. RSS: VmRSS after the point (VmHWM for the whole run in brackets). "+
		"Portcullis runs with its defaults (decision log on, extra flags: %q); stock OPA with its defaults but no per-request access log lines (--log-level-request debug), which favours OPA.\n\n",
		c.conns, c.duration, c.rate, c.rateDur, c.portcullisFlags)
	r := fmt.Sprint(c.rate)
	b.WriteString("| body | server | saturation req/s | cached req/s | p50 @" + r + "/s | p99 @" + r + "/s | cached p50 / p99 @" + r + "/s | RSS MB |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	byKey := map[string]*point{}
	for _, p := range points {
		byKey[p.body+"|"+p.server] = p
		cached := "—"
		if p.satCache != nil {
			cached = fmt.Sprintf("%.0f", p.satCache.rps())
		}
		p99 := ms(p.fixed.quantile(0.99)) + overloaded(c, p.fixed)
		cachedLat := "—"
		if p.fixedCache != nil {
			cachedLat = ms(p.fixedCache.quantile(0.5)) + " / " + ms(p.fixedCache.quantile(0.99)) + overloaded(c, p.fixedCache)
		}
		errs := ""
		if n := p.sat.errorCount() + p.fixed.errorCount(); n > 0 {
			errs = fmt.Sprintf(" (%d errors)", n)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f%s | %s | %s | %s | %s | %.0f (%.0f) |\n", p.body, p.server, p.sat.rps(), errs, cached, ms(p.fixed.quantile(0.5)), p99, cachedLat, p.rss, p.hwm)
	}
	b.WriteString("\nRatios (saturation throughput, same run):\n\n| body | /validate ÷ OPA | /validate cached ÷ OPA | /mutate ÷ OPA | /validate ÷ floor | /mutate ÷ floor |\n|---|---:|---:|---:|---:|---:|\n")
	ratio := func(a, b *result) string {
		if a == nil || b == nil || b.rps() == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", a.rps()/b.rps())
	}
	for _, bd := range bs {
		v := byKey[bd.name+"|portcullis /validate"]
		m := byKey[bd.name+"|portcullis /mutate"]
		o := byKey[bd.name+"|stock OPA POST /"]
		f := byKey[bd.name+"|floor (no policies) /validate"]
		get := func(p *point) *result {
			if p == nil {
				return nil
			}
			return p.sat
		}
		var vc *result
		if v != nil {
			vc = v.satCache
		}
		fmt.Fprintf(&b, "| %s (%.1f KB) | %s | %s | %s | %s | %s |\n", bd.name, float64(bd.size)/1024,
			ratio(get(v), get(o)), ratio(vc, get(o)), ratio(get(m), get(o)), ratio(get(v), get(f)), ratio(get(m), get(f)))
	}
	return b.String()
}

// dump writes one sample of each body, for Go benchmarks and profiling.
func dump(dir string) error {
	bs, err := bodies()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, b := range bs {
		name := strings.ReplaceAll(b.name, " ", "-") + ".json"
		if err := os.WriteFile(filepath.Join(dir, name), b.render(true), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// overloaded flags a fixed-rate point the server could not keep up with.
func overloaded(c config, r *result) string {
	if r.rps() < 0.95*float64(c.rate) || r.dropped > 0 {
		return fmt.Sprintf(" (overloaded: %.0f/s served)", float64(len(r.latencies))/r.elapsed.Seconds())
	}
	return ""
}
