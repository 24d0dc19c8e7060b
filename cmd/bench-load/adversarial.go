package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/certs"
)

// `bench-load adversarial` (behind `make bench-adversarial`) is the hostile
// tenant's load on loopback, against one `portcullis serve` with the default
// policies, bounded in time and request count:
//
//	(a) small pods in a closed loop, first alone, then during a flood of
//	    ~1 MB ConfigMaps full of credential-shaped URLs (the most expensive
//	    request a tenant who may create ConfigMaps can send): throughput, p99
//	    and the share answered 200, with and without the flood;
//	(b) a fresh server under -big-conns concurrent ~3 MB ConfigMaps: its
//	    peak RSS (VmHWM) against the Deployment's memory limit.
//
// The server runs like the Deployment's pod: GOMAXPROCS=1 pinned to one
// core (-server-cpu), and the soft memory limit the pod's cgroup limit
// gives it (90% of -memory-limit-mib, passed as --memory-limit because this
// machine has no cgroup limit). The targets (issue "Hardening"): at least
// 90% of small pods answered 200 during the flood; peak RSS under 75% of
// the memory limit. It exits non-zero when a target is missed.

type adversarialConfig struct {
	portcullis      string
	serverCPU       string
	duration        time.Duration
	smallConns      int
	floodConns      int
	floodBytes      int
	bigConns        int
	bigBytes        int
	bigDuration     time.Duration
	memoryLimitMiB  int
	maxRequests     int
	portcullisFlags string
	out             string
}

func adversarialMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c adversarialConfig
	fs := flag.NewFlagSet("adversarial", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.portcullis, "portcullis", "bin/portcullis", "portcullis binary")
	fs.StringVar(&c.serverCPU, "server-cpu", "0", "CPU the server is pinned to (taskset -c)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each small-pod phase (alone, during the flood)")
	fs.IntVar(&c.smallConns, "small-conns", 16, "keep-alive connections sending small pods (closed loop)")
	fs.IntVar(&c.floodConns, "flood-conns", 12, "connections sending expensive ConfigMaps (closed loop)")
	fs.IntVar(&c.floodBytes, "flood-bytes", 1<<20, "size of each flood ConfigMap")
	fs.IntVar(&c.bigConns, "big-conns", 160, "concurrent connections sending big bodies in the memory phase")
	fs.IntVar(&c.bigBytes, "big-bytes", 3000000, "size of each big body (under --max-body-bytes, 3 MiB)")
	fs.DurationVar(&c.bigDuration, "big-duration", 10*time.Second, "length of the memory phase")
	fs.IntVar(&c.memoryLimitMiB, "memory-limit-mib", 512, "the Deployment's memory limit (manifests/base/deployment.yaml)")
	fs.IntVar(&c.maxRequests, "max-requests", 200000, "cap on requests per phase and sender kind")
	fs.StringVar(&c.portcullisFlags, "portcullis-flags", "", "extra flags for the server (space separated)")
	fs.StringVar(&c.out, "out", "", "file the markdown report is written to (empty: none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	report, ok, err := adversarial(ctx, c, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "bench-load adversarial:", err)
		return 1
	}
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench-load adversarial:", err)
			return 1
		}
	}
	if !ok {
		return 1
	}
	return 0
}

// credentialConfigMap returns a ConfigMap review of about size bytes whose
// data is all "postgres://user:password@host" URLs (every value a finding),
// with the object's name marked so every request is a new object.
func credentialConfigMap(size int) (*body, error) {
	const value = "postgres://app:s3cr3t-canary@db.internal:5432/app?sslmode=require"
	data := map[string]any{}
	per := len(value) + len(`"DATABASE_URL_000000":"",`)
	for i := 0; i*per < size; i++ {
		data[fmt.Sprintf("DATABASE_URL_%06d", i)] = value
	}
	obj := map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": "flood-" + seqMark, "namespace": "tenant-a"},
		"data":       data,
	}
	return newBody("credential ConfigMap", review("ConfigMap", "configmaps", "", "v1", obj))
}

// partsReader streams a body's parts with a fresh UID and sequence number
// without copying the (large) constant parts.
func (b *body) reader() (io.Reader, int64) {
	n := b.seq.Add(1)
	uid := "bench-" + strconv.FormatUint(n, 10)
	seq := strconv.FormatUint(n, 10)
	readers := make([]io.Reader, 0, 2*len(b.parts))
	size := int64(0)
	for i, p := range b.parts {
		readers = append(readers, bytes.NewReader(p))
		size += int64(len(p))
		if i < len(b.marks) {
			m := uid
			if b.marks[i] == seqMark {
				m = seq
			}
			readers = append(readers, strings.NewReader(m))
			size += int64(len(m))
		}
	}
	return io.MultiReader(readers...), size
}

// shotStream posts one body from its parts and returns status and answer.
func shotStream(ctx context.Context, c *http.Client, url string, b *body) (int, []byte, error) {
	r, size := b.reader()
	return post(ctx, c, url, r, size)
}

// statuses counts answers by HTTP status (0: transport error).
type statuses struct {
	mu sync.Mutex
	n  map[int]int
}

func (s *statuses) add(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[int]int{}
	}
	s.n[code]++
}

func (s *statuses) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := make([]int, 0, len(s.n))
	total := 0
	for c, n := range s.n {
		codes = append(codes, c)
		total += n
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "transport error"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, s.n[c]))
	}
	return fmt.Sprintf("%d sent (%s)", total, strings.Join(parts, ", "))
}

// closedLoop sends b from conns workers until d passes or max requests.
func closedLoop(ctx context.Context, c *http.Client, url string, b *body, conns int, d time.Duration, max int, st *statuses) time.Duration {
	deadline := time.Now().Add(d)
	var sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) && sent.Add(1) <= int64(max) && ctx.Err() == nil {
				status, _, _ := shotStream(ctx, c, url, b)
				st.add(status)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func share200(r *result) float64 {
	if r.requests == 0 {
		return 0
	}
	return 100 * float64(r.requests-r.errorCount()) / float64(r.requests)
}

func adversarial(ctx context.Context, c adversarialConfig, stdout io.Writer) (string, bool, error) {
	tmp, err := os.MkdirTemp("", "bench-adversarial-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	certDir := filepath.Join(tmp, "certs")
	bundle, err := certs.Generate([]string{"localhost", "127.0.0.1"}, 24*time.Hour, 24*time.Hour, time.Now())
	if err != nil {
		return "", false, err
	}
	if err := bundle.WriteDir(certDir); err != nil {
		return "", false, err
	}
	bs, err := bodies()
	if err != nil {
		return "", false, err
	}
	small := bs[0] // typical pod
	flood, err := credentialConfigMap(c.floodBytes)
	if err != nil {
		return "", false, err
	}
	big, err := credentialConfigMap(c.bigBytes)
	if err != nil {
		return "", false, err
	}
	limit := int64(c.memoryLimitMiB) << 20
	// What automemlimit derives from the pod's cgroup limit (90%).
	flags := append([]string{"--memory-limit", strconv.FormatInt(limit*9/10, 10)}, strings.Fields(c.portcullisFlags)...)
	startServer := func(name string) (*server, error) {
		s, err := startPortcullis(name, tmp, c.serverCPU, c.portcullis, certDir, nil, flags)
		if err != nil {
			return nil, err
		}
		if err := s.wait(ctx); err != nil {
			s.stop()
			return nil, err
		}
		return s, nil
	}

	// (a) small pods alone, then during the flood.
	s, err := startServer("adversarial-flood")
	if err != nil {
		return "", false, err
	}
	url := s.url + "/validate?timeout=10s" // as the apiserver calls it
	smallClient, err := newClient(bundle.CACert, c.smallConns)
	if err != nil {
		s.stop()
		return "", false, err
	}
	fmt.Fprintf(stdout, "small pods alone, %d connections, %v ...\n", c.smallConns, c.duration)
	alone := saturate(ctx, smallClient, url, small, true, c.smallConns, time.Second, c.duration, c.maxRequests)
	floodClient, err := newClient(bundle.CACert, c.floodConns)
	if err != nil {
		s.stop()
		return "", false, err
	}
	fmt.Fprintf(stdout, "small pods during a flood of %d KB credential ConfigMaps on %d connections ...\n", flood.size>>10, c.floodConns)
	floodCtx, stopFlood := context.WithCancel(ctx)
	var floodSt statuses
	floodDone := make(chan struct{})
	go func() {
		closedLoop(floodCtx, floodClient, url, flood, c.floodConns, c.duration+3*time.Second, c.maxRequests, &floodSt)
		close(floodDone)
	}()
	time.Sleep(time.Second) // the flood is in full swing before measuring
	during := saturate(ctx, smallClient, url, small, true, c.smallConns, 0, c.duration, c.maxRequests)
	stopFlood()
	<-floodDone
	floodRSS, floodHWM := s.memory()
	s.stop()

	// (b) peak RSS of a fresh server under big concurrent bodies.
	s, err = startServer("adversarial-memory")
	if err != nil {
		return "", false, err
	}
	bigClient, err := newClient(bundle.CACert, c.bigConns)
	if err != nil {
		s.stop()
		return "", false, err
	}
	_, idleHWM := s.memory()
	fmt.Fprintf(stdout, "%d concurrent %.1f MB ConfigMaps for %v ...\n", c.bigConns, float64(big.size)/1e6, c.bigDuration)
	var bigSt statuses
	var peak atomic.Uint64 // MB × 1000, sampled
	sampleCtx, stopSample := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
				rss, _ := s.memory()
				if v := uint64(rss * 1000); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	closedLoop(ctx, bigClient, s.url+"/validate?timeout=10s", big, c.bigConns, c.bigDuration, c.maxRequests, &bigSt)
	stopSample()
	<-sampled
	_, hwm := s.memory()
	s.stop()
	if ctx.Err() != nil {
		return "", false, ctx.Err()
	}

	memTarget := 0.75 * float64(c.memoryLimitMiB)
	okFlood := share200(during) >= 90
	okMem := hwm > 0 && hwm*(1<<20)/1e6 < memTarget*(1<<20)/1e6
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "One `portcullis serve` (default policies, GOMAXPROCS=1, --memory-limit %d = 90%% of %d MiB) on loopback; small = the typical pod (%.1f KB), unique objects, %d connections closed loop; flood = %d connections closed loop of %.2f MB ConfigMaps, each value a URL with user:password@.\n\n",
		limit*9/10, c.memoryLimitMiB, float64(small.size)/1e3, c.smallConns, c.floodConns, float64(flood.size)/1e6)
	b.WriteString("| phase | small pods/s | p50 | p99 | small pods answered 200 |\n|---|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		r    *result
	}{{"small pods alone", alone}, {"during the flood", during}} {
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.1f%% (%d of %d) |\n", row.name, row.r.rps(), ms(row.r.quantile(0.5)), ms(row.r.quantile(0.99)), share200(row.r), row.r.requests-row.r.errorCount(), row.r.requests)
	}
	fmt.Fprintf(&b, "\nFlood requests: %s. Server RSS after the flood %.0f MB (peak %.0f MB).\n\n", floodSt.String(), floodRSS, floodHWM)
	fmt.Fprintf(&b, "Memory: %d connections closed loop of %.2f MB ConfigMaps for %v: %s; peak RSS (VmHWM) **%.0f MiB** (sampled %.0f MiB; idle %.0f MiB), limit %d MiB, target < %.0f MiB.\n\n",
		c.bigConns, float64(big.size)/1e6, c.bigDuration, bigSt.String(), hwm, float64(peak.Load())/1000, idleHWM, c.memoryLimitMiB, memTarget)
	b.WriteString("| target | result |\n|---|---|\n")
	fmt.Fprintf(&b, "| ≥ 90%% of small pods answered 200 during the flood | %s: %.1f%% |\n", verdict(okFlood), share200(during))
	fmt.Fprintf(&b, "| peak RSS under 160 concurrent ~3 MB bodies < 75%% of %d MiB | %s: %.0f MiB |\n", c.memoryLimitMiB, verdict(okMem), hwm)
	if during.firstError != "" {
		fmt.Fprintf(&b, "\nFirst small-pod failure during the flood: %s\n", during.firstError)
	}
	fmt.Fprint(stdout, "\n"+b.String())
	return b.String(), okFlood && okMem, nil
}
