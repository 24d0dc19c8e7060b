package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/utils/cpuset"
)

// fake is a measured point with the given figures: rps over 7 s, and 100
// latencies whose p50 and p99 (as result.quantile picks them) are p50 and p99.
func fake(rps float64, p50, p99 time.Duration) *result {
	r := &result{requests: int(rps * 7), elapsed: 7 * time.Second}
	for i := range 100 {
		d := p50
		if i >= 98 {
			d = p99
		}
		r.latencies = append(r.latencies, d)
	}
	return r
}

// pt is a point of one server, body and core count: saturation sat, and
// p99 at each rate given (p50 a tenth of it).
func pt(body, server string, cores int, sat float64, hwm float64, p99s map[int]time.Duration) *point {
	p := &point{body: body, server: server, cores: cores, sat: fake(sat, 0, 0), byRate: map[int]*result{}, rss: hwm - 4, hwm: hwm, anon: hwm * 0.4}
	for rate, p99 := range p99s {
		p.byRate[rate] = fake(float64(rate), p99/10, p99)
	}
	if cores == 1 {
		p.fixed = p.byRate[500]
	}
	return p
}

func twoCoreMachine(t *testing.T, counts ...int) []coreSetup {
	t.Helper()
	s, err := planCores(counts, "0", cpuset.New(0, 1), cpuset.New(1), true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(counts ...int) config {
	return config{conns: 16, duration: 7 * time.Second, warmup: time.Second, rate: 500, rateDur: 7 * time.Second,
		coreCounts: counts, scaleRates: []int{500, 2000}}
}

// runPoints is a whole run on a 2-core machine: one-core table (with
// cached figures on the portcullis points, an overloaded large pod, errors
// on one OPA point) and the 2-core scaling points.
func runPoints(bs []*body) []*point {
	ms := time.Millisecond
	var points []*point
	for i, b := range bs {
		f := float64(i + 1)
		fl := pt(b.name, labelFloor, 1, 14000/f, 45, map[int]time.Duration{500: 2 * ms})
		v := pt(b.name, labelValidate, 1, 800/f, 80, map[int]time.Duration{500: 1900 * time.Microsecond, 2000: 900 * ms})
		v.satCache, v.fixedCache = fake(12000/f, 0, 0), fake(500, ms, 2*ms)
		m := pt(b.name, labelMutate, 1, 700/f, 92, map[int]time.Duration{500: 3 * ms})
		m.satCache, m.fixedCache = fake(10000/f, 0, 0), fake(500, ms, 3*ms)
		o := pt(b.name, labelOPA, 1, 400/f, 70, map[int]time.Duration{500: 25 * ms, 2000: 1200 * ms})
		v2 := pt(b.name, labelValidate, 2, 1500/f, 97, map[int]time.Duration{500: ms, 2000: 40 * ms})
		o2 := pt(b.name, labelOPA, 2, 700/f, 75, map[int]time.Duration{500: 5 * ms, 2000: 300 * ms})
		if b.name == "large pod" {
			for _, p := range []*point{fl, v, m, o} {
				p.fixed.dropped = 120
				p.fixed.latencies = p.fixed.latencies[:50]
			}
			v.byRate[2000].dropped = 9000
		}
		if b.name == "deployment" {
			o.sat.errors = map[int]int{500: 3}
			o.sat.firstError = "status 500: boom"
			o2.byRate[2000].errors = map[int]int{429: 5}
		}
		points = append(points, fl, v, m, o, v2, o2)
	}
	return points
}

// The whole report of a run on a 2-core machine: one-core table and
// ratios, the scaling table with the 4-core point n/a, the targets.
// UPDATE_GOLDEN=1 rewrites testdata/report.golden.
func TestReportGolden(t *testing.T) {
	bs, err := bodies()
	if err != nil {
		t.Fatal(err)
	}
	m := machine{cpus: cpuset.New(0, 1), loadBefore: "0.31", loadAfter: "2.05"}
	got := report(testConfig(1, 2, 4), m, bs, runPoints(bs), twoCoreMachine(t, 1, 2, 4))
	golden := filepath.Join("testdata", "report.golden")
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("report differs from %s (UPDATE_GOLDEN=1 to rewrite):\n%s", golden, got)
	}
}

func TestTargets(t *testing.T) {
	bs, err := bodies()
	if err != nil {
		t.Fatal(err)
	}
	typical := bs[:1]
	ms := time.Millisecond
	fourCores, err := planCores([]int{1, 2, 4}, "0", cpuset.New(0, 1, 2, 3, 4), cpuset.New(4), true)
	if err != nil {
		t.Fatal(err)
	}
	allMet := []*point{
		pt("typical pod", labelValidate, 1, 1000, 80, map[int]time.Duration{500: 2 * ms}),
		pt("typical pod", labelOPA, 1, 500, 120, map[int]time.Duration{500: 9 * ms}),
		pt("typical pod", labelValidate, 4, 3500, 100, nil),
	}
	cases := map[string]struct {
		bs     []*body
		points []*point
		setups []coreSetup
		want   []targetRow
	}{
		"all met at the limits, OPA's RSS not counted": {typical, allMet, fourCores, []targetRow{
			{"/validate saturation ≥ 2× stock OPA, typical pod (unique objects, one core)", "2.00× (1000 vs 500 req/s)", met},
			{"typical pod p99 ≤ 2 ms at 500 requests/s (/validate, unique objects, one core)", "2.000 ms", met},
			{"RSS ≤ 100 MB under load (every portcullis server, peak VmHWM)", "100 MB (1 core: 80, 4 cores: 100; anonymous at most 40 MB)", met},
			{"/validate saturation at 4 cores ≥ 3.5× one core, typical pod (unique objects)", "3.50× (3500 vs 1000 req/s)", met},
		}},
		"just missed, load generator sharing the 4 cores": {typical, []*point{
			pt("typical pod", labelValidate, 1, 999, 80, map[int]time.Duration{500: 2*ms + time.Microsecond}),
			pt("typical pod", labelOPA, 1, 500, 60, nil),
			pt("typical pod", labelFloor, 1, 9000, 101, nil),
			pt("typical pod", labelValidate, 4, 3490, 90, nil),
		}, func() []coreSetup {
			s, err := planCores([]int{1, 4}, "0", cpuset.New(0, 1, 2, 3), cpuset.New(3), true)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), []targetRow{
			{"/validate saturation ≥ 2× stock OPA, typical pod (unique objects, one core)", "1.99× (999 vs 500 req/s)", missed},
			{"typical pod p99 ≤ 2 ms at 500 requests/s (/validate, unique objects, one core)", "2.001 ms", missed},
			{"RSS ≤ 100 MB under load (every portcullis server, peak VmHWM)", "101 MB (1 core: 101, 4 cores: 90; anonymous at most 40 MB)", missed},
			{"/validate saturation at 4 cores ≥ 3.5× one core, typical pod (unique objects)", "3.49× (3490 vs 999 req/s); load generator on CPU 3 too", missed},
		}},
		"failed requests and overload miss": {typical, func() []*point {
			ps := []*point{
				pt("typical pod", labelValidate, 1, 1000, 80, map[int]time.Duration{500: ms}),
				pt("typical pod", labelOPA, 1, 400, 70, nil),
				pt("typical pod", labelValidate, 4, 4000, 90, nil),
			}
			ps[0].sat.errors = map[int]int{0: 2}
			ps[0].byRate[500].dropped = 1
			ps[2].sat.errors = map[int]int{503: 1}
			return ps
		}(), fourCores, []targetRow{
			{"/validate saturation ≥ 2× stock OPA, typical pod (unique objects, one core)", "2.50× (1000 vs 400 req/s); 2 failed requests", missed},
			{"typical pod p99 ≤ 2 ms at 500 requests/s (/validate, unique objects, one core)", "1.000 ms (overloaded: 14/s served)", missed},
			{"RSS ≤ 100 MB under load (every portcullis server, peak VmHWM)", "90 MB (1 core: 80, 4 cores: 90; anonymous at most 36 MB)", met},
			{"/validate saturation at 4 cores ≥ 3.5× one core, typical pod (unique objects)", "4.00× (4000 vs 1000 req/s); 3 failed requests", missed},
		}},
		"nothing measured: n/a, the machine's cores first": {bs[1:2], nil, twoCoreMachine(t, 1, 2, 4), []targetRow{
			{"/validate saturation ≥ 2× stock OPA, large pod (unique objects, one core)", "not measured in this run", na},
			{"typical pod p99 ≤ 2 ms at 500 requests/s (/validate, unique objects, one core)", "not measured in this run", na},
			{"RSS ≤ 100 MB under load (every portcullis server, peak VmHWM)", "not measured in this run", na},
			{"/validate saturation at 4 cores ≥ 3.5× one core, large pod (unique objects)", "machine has 2 cores", na},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := targets(tc.bs, tc.points, tc.setups)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestPlanCores(t *testing.T) {
	cases := map[string]struct {
		counts       []int
		serverCPU    string
		usable, load cpuset.CPUSet
		pinned       bool
		want         []string
	}{
		"2 CPUs, load generator on 1": {[]int{1, 2, 4}, "0", cpuset.New(0, 1), cpuset.New(1), true,
			[]string{"CPU 0", "CPUs 0-1 (the load generator shares CPU 1)", "n/a (machine has 2 cores)"}},
		"8 CPUs: apart while it can be": {[]int{1, 2, 4, 8}, "0", cpuset.New(0, 1, 2, 3, 4, 5, 6, 7), cpuset.New(1), true,
			[]string{"CPU 0", "CPUs 0,2", "CPUs 0,2-4", "CPUs 0-7 (the load generator shares CPU 1)"}},
		"load generator not pinned": {[]int{1, 2}, "1", cpuset.New(0, 1), cpuset.New(0, 1), true,
			[]string{"CPU 1 (the load generator shares CPU 1)", "CPUs 0-1 (the load generator shares CPUs 0-1)"}},
		"no taskset": {[]int{1, 2, 3}, "0", cpuset.New(0, 1), cpuset.New(1), false,
			[]string{"any CPU (no taskset)", "any CPU (no taskset)", "n/a (machine has 2 cores)"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			setups, err := planCores(tc.counts, tc.serverCPU, tc.usable, tc.load, tc.pinned)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range setups {
				got = append(got, s.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := planCores([]int{1}, "0-1", cpuset.New(0, 1), cpuset.New(1), true); err == nil || err.Error() != `-server-cpu "0-1": want one CPU` {
		t.Errorf("error %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := config{cores: "4, 1,2,2", rates: "2000,500", rate: 500}
	if err := c.validate(); err != nil || !slices.Equal(c.coreCounts, []int{1, 2, 4}) || !slices.Equal(c.scaleRates, []int{500, 2000}) {
		t.Errorf("cores %v, rates %v, err %v", c.coreCounts, c.scaleRates, err)
	}
	for flags, want := range map[[2]string]string{
		{"1,x", "500"}: `-cores "1,x": "x" is not a positive integer`,
		{"", "500"}:    `-cores "": no core count`,
		{"1", "0"}:     `-scale-rates "0": "0" is not a positive integer`,
	} {
		c := config{cores: flags[0], rates: flags[1], rate: 500}
		if err := c.validate(); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", flags, err, want)
		}
	}
}
