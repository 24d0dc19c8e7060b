// Command bench-load is the side-by-side load test behind `make bench-load`:
// servers on loopback, pinned with taskset, the same AdmissionReviews sent
// over HTTPS keep-alive HTTP/1.1, bounded in time and request count.
//
// One core (-server-cpu, GOMAXPROCS=1), three servers:
//
//  1. floor: `portcullis serve` with an empty policy set (decode, encode, TLS);
//  2. portcullis: `portcullis serve` with the default policy set, /validate and /mutate;
//  3. opa: stock `opa run --server` with the same Rego modules and config and a
//     system.main rule building the AdmissionReview response (OPA's
//     admission-control tutorial), on POST / (OPA's default decision).
//
// For each server and body it measures saturation throughput (closed loop),
// p50/p99 latency at a fixed rate (open loop) and RSS (report.go renders the
// table and the ratios).
//
// Then, for each further core count of -cores (default 2 and 4), portcullis
// and stock OPA are restarted with GOMAXPROCS=N, pinned to N CPUs
// (scaling.go chooses them, away from the load generator while the machine
// has enough), and /validate and OPA are measured with unique objects:
// saturation and p99 at each -scale-rates rate (also measured on one core).
// A count above the machine's CPUs is reported n/a. Last, the targets are
// judged from the run's figures: met, missed or n/a.
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
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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
	cores, rates        string // -cores, -scale-rates as given
	coreCounts          []int  // parsed -cores
	scaleRates          []int  // parsed -scale-rates
}

// validate parses the list flags.
func (c *config) validate() error {
	var err error
	if c.coreCounts, err = positiveInts("cores", c.cores); err != nil {
		return err
	}
	if len(c.coreCounts) == 0 {
		return fmt.Errorf("-cores %q: no core count", c.cores)
	}
	if c.scaleRates, err = positiveInts("scale-rates", c.rates); err != nil {
		return err
	}
	if c.rate < 1 {
		return fmt.Errorf("-rate %d: want at least 1", c.rate)
	}
	return nil
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
	flag.StringVar(&c.cores, "cores", "1,2,4", "core counts (GOMAXPROCS, taskset over that many CPUs): 1 is the one-core table, more cores the scaling table (/validate and OPA); counts above the machine's CPUs print n/a")
	flag.StringVar(&c.rates, "scale-rates", "500,2000", "requests/s of the scaling table's fixed-rate points (/validate and OPA, every core count)")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-load:", err)
		os.Exit(2)
	}

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

// Server labels, as printed in the tables.
const (
	labelFloor    = "floor (no policies) /validate"
	labelValidate = "portcullis /validate"
	labelMutate   = "portcullis /mutate"
	labelOPA      = "stock OPA POST /"
)

// point is one server, body and core count.
type point struct {
	body, server      string
	cores             int
	sat, satCache     *result
	fixed, fixedCache *result         // at -rate: the one-core table (nil on more cores)
	byRate            map[int]*result // unique objects at each fixed rate measured, -rate included
	rss, hwm          float64
	anon              float64 // RssAnon (MB): the heap and stacks part of rss
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
	if len(bs) == 0 {
		return fmt.Errorf("-bodies %q: no such body", c.bodies)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(c.onlyServers, ",") {
		want[strings.TrimSpace(s)] = true
	}
	usable := usableCPUs()
	m := machine{cpus: usable, loadBefore: loadAverage()}
	_, noTaskset := exec.LookPath("taskset")
	setups, err := planCores(c.coreCounts, c.serverCPU, usable, loadCPUs(usable), noTaskset == nil)
	if err != nil {
		return err
	}
	client, err := newClient(bundle.CACert, c.conns)
	if err != nil {
		return err
	}
	e := env{c: c, tmp: tmp, certDir: certDir, empty: empty, opaDir: opaDir, caPEM: bundle.CACert, client: client, bodies: bs, want: want}

	fmt.Fprintf(stdout, "bench-load: %d connections, %s saturation points (+%s warm-up), %d req/s fixed-rate points of %s; cores %s (scaling rates %s req/s); load generator GOMAXPROCS=%d\n",
		c.conns, c.duration, c.warmup, c.rate, c.rateDur, joinInts(c.coreCounts), joinInts(c.scaleRates), runtime.GOMAXPROCS(0))
	var points []*point
	for _, s := range setups {
		fmt.Fprintf(stdout, "%s: %s\n", cores(s.n), s)
		if s.missing != "" {
			continue
		}
		ps, err := e.measure(ctx, s, stdout)
		points = append(points, ps...)
		if err != nil {
			if len(points) > 0 {
				m.loadAfter = loadAverage()
				fmt.Fprintf(stdout, "\nPartial report (the run failed at %s, %s not written):\n\n%s", cores(s.n), c.out, report(c, m, bs, points, setups))
			}
			return err
		}
	}
	m.loadAfter = loadAverage()
	table := report(c, m, bs, points, setups)
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

// env is what every core count's measurement shares.
type env struct {
	c                           config
	tmp, certDir, empty, opaDir string
	caPEM                       []byte
	client                      *http.Client
	bodies                      []*body
	want                        map[string]bool
}

// measure starts the servers of one core count (GOMAXPROCS=n, pinned to
// s.cpus), measures them and stops them. One core: floor, /validate,
// /mutate and OPA, with identical objects too (the one-core table); more
// cores: /validate and OPA with unique objects (the scaling table).
func (e *env) measure(ctx context.Context, s coreSetup, stdout io.Writer) ([]*point, error) {
	c := e.c
	cpu := ""
	if s.pinned {
		cpu = s.cpus.String()
	}
	procs := "GOMAXPROCS=" + strconv.Itoa(s.n) // after start's GOMAXPROCS=1: the last value wins
	penv := append([]string{procs}, strings.Fields(c.portcullisEnv)...)
	oenv := append([]string{procs}, strings.Fields(c.opaEnv)...)
	pflags := strings.Fields(c.portcullisFlags)
	suffix := ""
	if s.n > 1 {
		suffix = fmt.Sprintf("-%dcores", s.n)
	}
	one := s.n == 1
	var servers []*server
	defer func() {
		for _, srv := range servers {
			srv.stop()
		}
	}()
	var floor, full, opa *server
	if one && e.want["floor"] {
		srv, err := startPortcullis("floor", e.tmp, cpu, c.portcullis, e.certDir, penv, append([]string{"--builtin=false", "--policies", e.empty, "--allow-empty-policies"}, pflags...))
		if err != nil {
			return nil, err
		}
		floor = srv
		servers = append(servers, srv)
	}
	if e.want["validate"] || (one && e.want["mutate"]) {
		srv, err := startPortcullis("portcullis"+suffix, e.tmp, cpu, c.portcullis, e.certDir, penv, pflags)
		if err != nil {
			return nil, err
		}
		full = srv
		servers = append(servers, srv)
	}
	if e.want["opa"] {
		srv, err := startOPA("opa"+suffix, e.tmp, cpu, c.opa, e.certDir, e.opaDir, e.caPEM, oenv)
		if err != nil {
			return nil, err
		}
		opa = srv
		servers = append(servers, srv)
	}
	for _, srv := range servers {
		if err := srv.wait(ctx); err != nil {
			return nil, err
		}
	}
	if opa != nil {
		if err := checkOPA(ctx, e.client, opa, e.bodies[0].render(true)); err != nil {
			return nil, err
		}
	}
	type plan struct {
		key, label string
		s          *server
		path       string
		cache      bool
		rates      bool // the scaling rates too
	}
	scaling := len(c.coreCounts) > 1
	// Portcullis paths carry the apiserver's ?timeout= (10 s, its default).
	plans := []plan{
		{"floor", labelFloor, floor, "/validate?timeout=10s", false, false},
		{"validate", labelValidate, full, "/validate?timeout=10s", one && c.cached, scaling},
		{"mutate", labelMutate, full, "/mutate?timeout=10s", one && c.cached, false},
		{"opa", labelOPA, opa, "/", false, scaling},
	}
	var points []*point
	for _, pl := range plans {
		if pl.s == nil || !e.want[pl.key] || (!one && !pl.rates) {
			continue
		}
		for _, b := range e.bodies {
			if ctx.Err() != nil {
				return points, ctx.Err()
			}
			p := &point{body: b.name, server: pl.label, cores: s.n, byRate: map[int]*result{}}
			url := pl.s.url + pl.path
			p.sat = saturate(ctx, e.client, url, b, true, c.conns, c.warmup, c.duration, c.max)
			p.rss, _, p.anon = pl.s.memoryDetail()
			if pl.cache {
				p.satCache = saturate(ctx, e.client, url, b, false, c.conns, c.warmup, c.duration, c.max)
			}
			if one {
				p.fixed = fixedRate(ctx, e.client, url, b, true, c.conns, c.rate, c.rateDur)
				p.byRate[c.rate] = p.fixed
				if pl.cache {
					p.fixedCache = fixedRate(ctx, e.client, url, b, false, c.conns, c.rate, c.rateDur)
				}
			}
			if pl.rates {
				for _, r := range c.scaleRates {
					if p.byRate[r] == nil {
						p.byRate[r] = fixedRate(ctx, e.client, url, b, true, c.conns, r, c.rateDur)
					}
				}
			}
			rss, _, anon := pl.s.memoryDetail()
			p.rss, p.anon = max(p.rss, rss), max(p.anon, anon)
			_, p.hwm = pl.s.memory()
			fmt.Fprintf(stdout, "  %-32s %-12s %-7s  %s\n", pl.label, b.name, cores(s.n), p.summary())
			points = append(points, p)
		}
	}
	return points, nil
}

func (p *point) summary() string {
	s := fmt.Sprintf("sat %7.0f/s", p.sat.rps())
	if p.satCache != nil {
		s += fmt.Sprintf("  cached %7.0f/s", p.satCache.rps())
	}
	for _, r := range slices.Sorted(maps.Keys(p.byRate)) {
		f := p.byRate[r]
		s += fmt.Sprintf("  @%d/s p50 %s p99 %s", r, ms(f.quantile(0.5)), ms(f.quantile(0.99)))
		if f == p.fixed && p.fixedCache != nil {
			s += fmt.Sprintf(" (cached p50 %s p99 %s)", ms(p.fixedCache.quantile(0.5)), ms(p.fixedCache.quantile(0.99)))
		}
		if f.dropped > 0 {
			s += fmt.Sprintf(" (%d not sent)", f.dropped)
		}
	}
	s += fmt.Sprintf("  RSS %.0f MB (HWM %.0f)", p.rss, p.hwm)
	if n, first := p.errors(); n > 0 {
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

// errors counts the failed requests of the unique-object measurements
// (saturation and every fixed rate) and returns the first failure.
func (p *point) errors() (int, string) {
	n, first := p.sat.errorCount(), p.sat.firstError
	for _, r := range slices.Sorted(maps.Keys(p.byRate)) {
		f := p.byRate[r]
		n += f.errorCount()
		if first == "" {
			first = f.firstError
		}
	}
	return n, first
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
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
