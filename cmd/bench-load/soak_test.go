package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// series builds one sample every 10 s from parallel RSS and goroutine lists.
func series(rss []float64, gor []int) []soakSample {
	out := make([]soakSample, len(rss))
	for i := range rss {
		out[i] = soakSample{at: time.Duration(i+1) * 10 * time.Second, ok: 5000, rssMB: rss[i], goroutines: gor[i]}
	}
	return out
}

func TestSoakVerdict(t *testing.T) {
	f := flatness{warmup: 30 * time.Second, rssTolerance: 0.10, goroutineSlack: 5}
	// Warm-up (10, 20, 30 s) is ignored; judged: 40..90 s, halves 40-60 and 70-90.
	flatRSS := []float64{20, 50, 70, 80, 84, 81, 83, 86, 82}
	flatG := []int{10, 40, 31, 30, 33, 31, 32, 34, 35}
	cases := map[string]struct {
		samples []soakSample
		dropped int
		want    []string
	}{
		"flat, warm-up growth ignored": {series(flatRSS, flatG), 0, nil},
		"RSS at the tolerance":         {series([]float64{1, 1, 1, 80, 70, 70, 88, 70, 70}, flatG), 0, nil},
		"RSS over the tolerance": {series([]float64{1, 1, 1, 80, 70, 70, 70, 70, 88.5}, flatG), 0,
			[]string{"RSS grew: last half's maximum 88.5 MB > first half's 80.0 MB + 10%"}},
		"goroutines at the slack": {series(flatRSS, []int{0, 0, 0, 30, 30, 30, 35, 30, 30}), 0, nil},
		"goroutines over the slack": {series(flatRSS, []int{0, 0, 0, 30, 30, 30, 32, 34, 36}), 0,
			[]string{"goroutines grew: last half's maximum 36 > first half's 30 + 5"}},
		"failures count during warm-up too": {func() []soakSample {
			s := series(flatRSS, flatG)
			s[0].failed, s[8].failed = 2, 1
			return s
		}(), 0, []string{"3 failed admissions"}},
		"dropped requests": {series(flatRSS, flatG), 7, []string{"7 requests not sent: the server fell behind"}},
		"too short": {series(flatRSS[:4], flatG[:4]), 0,
			[]string{"1 samples after the 30s warm-up: at least 2 needed to judge flatness"}},
		"goroutines unknown": {series(flatRSS, []int{10, 40, 31, 30, -1, 31, 32, 34, 35}), 0,
			[]string{"goroutine count unknown at 50s"}},
		"several at once": {func() []soakSample {
			s := series([]float64{1, 1, 1, 50, 50, 50, 60, 60, 60}, []int{0, 0, 0, 30, 30, 30, 40, 40, 40})
			s[5].failed = 1
			return s
		}(), 0, []string{
			"1 failed admissions",
			"RSS grew: last half's maximum 60.0 MB > first half's 50.0 MB + 10%",
			"goroutines grew: last half's maximum 40 > first half's 30 + 5",
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := soakVerdict(tc.samples, tc.dropped, f)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// The mix follows soakMix and soakRepeatPercent, is the same on every run,
// and repeated objects come from a pool of soakPool per body.
func TestSoakPick(t *testing.T) {
	const n = 100000
	bodies := make([]int, len(soakMix))
	mutate, repeated := 0, 0
	seqs := map[string]bool{}
	for i := range n {
		p := pick(i)
		if p != pick(i) {
			t.Fatalf("pick(%d) not deterministic", i)
		}
		bodies[p.body]++
		if p.mutate {
			mutate++
		}
		if p.seq != "" {
			repeated++
			seqs[p.seq] = true
		}
	}
	near := func(what string, got int, wantPercent float64) {
		if pct := 100 * float64(got) / n; math.Abs(pct-wantPercent) > 1 {
			t.Errorf("%s: %.1f%%, want %.0f%%", what, pct, wantPercent)
		}
	}
	for i, m := range soakMix {
		near(m.body, bodies[i], float64(m.weight))
	}
	near("/mutate", mutate, 50)
	near("repeated", repeated, soakRepeatPercent)
	if len(seqs) != soakPool {
		t.Errorf("%d distinct repeated objects, want %d", len(seqs), soakPool)
	}
}

func TestParseGoroutines(t *testing.T) {
	in := "# HELP go_gc_duration_seconds x\ngo_gc_duration_seconds{quantile=\"0\"} 1e-05\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_goroutines_extra 7\n"
	if n, err := parseGoroutines(strings.NewReader(in)); err != nil || n != 42 {
		t.Errorf("got %d, %v; want 42", n, err)
	}
	if _, err := parseGoroutines(strings.NewReader("go_threads 5\n")); err == nil || err.Error() != "no go_goroutines in /metrics" {
		t.Errorf("missing metric: err %v", err)
	}
}
