package main

import (
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"k8s.io/utils/cpuset"
)

// The targets (issue "Performance: an engine clearly ahead of stock OPA").
const (
	targetOPARatio = 2.0   // /validate ÷ stock OPA saturation, every body, unique objects, one core
	targetP99Rate  = 500   // requests/s of the p99 target
	targetP99Ms    = 2.0   // typical-pod p99 at targetP99Rate on one core, unique objects
	targetRSSMB    = 100.0 // peak RSS of the portcullis servers under load
	targetCores    = 4     // core count of the scaling target
	targetScaling  = 3.5   // /validate saturation at targetCores ÷ one core
	typicalPod     = "typical pod"
)

// machine is what the report says about the machine the run used.
type machine struct {
	cpus                  cpuset.CPUSet // usable CPUs
	loadBefore, loadAfter string        // 1-minute load averages, "" when unknown
}

// loadAverage returns the 1-minute load average (proc(5), /proc/loadavg),
// or "" when unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return ""
}

// find returns the point of body, server and core count, or nil.
func find(points []*point, body, server string, cores int) *point {
	for _, p := range points {
		if p.body == body && p.server == server && p.cores == cores {
			return p
		}
	}
	return nil
}

// report renders the run: the one-core table and its ratios, the scaling
// table when more than one core count was asked for, and the targets.
func report(c config, m machine, bs []*body, points []*point, setups []coreSetup) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %d usable %s (%s)", m.cpus.Size(), plural("CPU", m.cpus.Size()), m.cpus)
	if m.loadBefore != "" {
		fmt.Fprintf(&b, "; 1-minute load average %s before the run, %s at its end (the run itself keeps up to two CPUs busy; other work on the machine distorts the figures)", m.loadBefore, m.loadAfter)
	}
	b.WriteString(".\n\n")
	for _, s := range setups {
		if s.n == 1 {
			b.WriteString(oneCoreTables(c, bs, points, s))
		}
	}
	if len(setups) > 1 {
		b.WriteString(scalingTable(c, bs, points, setups))
	}
	b.WriteString("\nTargets, from this run's own figures:\n\n| target | measured | result |\n|---|---|---|\n")
	for _, t := range targets(bs, points, setups) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.target, t.measured, t.verdict)
	}
	return b.String()
}

func oneCoreTables(c config, bs []*body, points []*point, s coreSetup) string {
	var b strings.Builder
	fmt.Fprintf(&b, "One core: every server on %s with GOMAXPROCS=1, the load generator %s; HTTPS keep-alive HTTP/1.1, %d connections. "+
		"Saturation: closed loop, %s per point, unique objects (no two requests alike; \"cached\": identical objects but for the UID). "+
		"Latency: open loop at %d requests/s for %s, measured from when each request was due. RSS: VmRSS after the point (VmHWM for the whole run in brackets; anon: RssAnon, the heap and stacks, the rest being the binary's mapped code and read-only data). "+
		"Portcullis runs with its defaults (decision log on, extra flags: %q); stock OPA with its defaults but no per-request access log lines (--log-level-request debug), which favours OPA.\n\n",
		s.cpuText(), loadDescription(s), c.conns, c.duration, c.rate, c.rateDur, c.portcullisFlags)
	r := fmt.Sprint(c.rate)
	b.WriteString("| body | server | saturation req/s | cached req/s | p50 @" + r + "/s | p99 @" + r + "/s | cached p50 / p99 @" + r + "/s | RSS MB |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range points {
		if p.cores != 1 || p.fixed == nil {
			continue
		}
		cached := "—"
		if p.satCache != nil {
			cached = fmt.Sprintf("%.0f", p.satCache.rps())
		}
		p99 := ms(p.fixed.quantile(0.99)) + overloaded(c.rate, p.fixed)
		cachedLat := "—"
		if p.fixedCache != nil {
			cachedLat = ms(p.fixedCache.quantile(0.5)) + " / " + ms(p.fixedCache.quantile(0.99)) + overloaded(c.rate, p.fixedCache)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f%s | %s | %s | %s | %s | %.0f (%.0f; anon %.0f) |\n", p.body, p.server, p.sat.rps(), errorNote(p.sat.errorCount()+p.fixed.errorCount()), cached, ms(p.fixed.quantile(0.5)), p99, cachedLat, p.rss, p.hwm, p.anon)
	}
	b.WriteString("\nRatios (saturation throughput, same run):\n\n| body | /validate ÷ OPA | /validate cached ÷ OPA | /mutate ÷ OPA | /validate ÷ floor | /mutate ÷ floor |\n|---|---:|---:|---:|---:|---:|\n")
	get := func(p *point, cached bool) *result {
		switch {
		case p == nil:
			return nil
		case cached:
			return p.satCache
		}
		return p.sat
	}
	for _, bd := range bs {
		v := find(points, bd.name, labelValidate, 1)
		m := find(points, bd.name, labelMutate, 1)
		o := find(points, bd.name, labelOPA, 1)
		f := find(points, bd.name, labelFloor, 1)
		fmt.Fprintf(&b, "| %s (%.1f KB) | %s | %s | %s | %s | %s |\n", bd.name, float64(bd.size)/1024,
			ratio(get(v, false), get(o, false)), ratio(get(v, true), get(o, false)), ratio(get(m, false), get(o, false)), ratio(get(v, false), get(f, false)), ratio(get(m, false), get(f, false)))
	}
	return b.String()
}

// loadDescription says where the load generator runs relative to s.
func loadDescription(s coreSetup) string {
	switch {
	case !s.pinned:
		return "not pinned apart (no taskset)"
	case s.shared.IsEmpty():
		return "on other CPUs"
	}
	return "on " + plural("CPU", s.shared.Size()) + " " + s.shared.String() + " too: the machine has too few CPUs to pin it apart"
}

func scalingTable(c config, bs []*body, points []*point, setups []coreSetup) string {
	var b strings.Builder
	b.WriteString("\nCore scaling, portcullis /validate beside stock OPA, unique objects: each server restarted with GOMAXPROCS=N and pinned with taskset to N CPUs; " +
		"saturation as above; p99 in an open loop at each rate for " + c.rateDur.String() + "; × 1 core: saturation over the same server's one-core figure. Placement: ")
	var place []string
	shared := false
	for _, s := range setups {
		place = append(place, fmt.Sprintf("%s: %s", cores(s.n), s))
		shared = shared || (s.missing == "" && !s.shared.IsEmpty())
	}
	b.WriteString(strings.Join(place, "; ") + ".")
	if shared {
		b.WriteString(" Where the load generator shares CPUs with the server, the machine has too few CPUs to pin them apart: " +
			"the load generator's own work (TLS, JSON) takes CPU time from the server, so those figures understate the server, for Portcullis and OPA alike.")
	}
	b.WriteString("\n\n| body | cores | /validate req/s | /validate × 1 core | OPA req/s | OPA × 1 core | /validate ÷ OPA |")
	align := "|---|---|---:|---:|---:|---:|---:|"
	for _, r := range c.scaleRates {
		fmt.Fprintf(&b, " /validate p99 @%d/s | OPA p99 @%d/s |", r, r)
		align += "---:|---:|"
	}
	b.WriteString("\n" + align + "\n")
	for _, bd := range bs {
		v1 := find(points, bd.name, labelValidate, 1)
		o1 := find(points, bd.name, labelOPA, 1)
		for _, s := range setups {
			cell := fmt.Sprint(s.n)
			if s.missing == "" && !s.shared.IsEmpty() {
				cell += " (load generator shares " + plural("CPU", s.shared.Size()) + " " + s.shared.String() + ")"
			}
			if s.missing != "" {
				fmt.Fprintf(&b, "| %s | %s | n/a (%s) |%s\n", bd.name, cell, s.missing, strings.Repeat(" — |", 4+2*len(c.scaleRates)))
				continue
			}
			v := find(points, bd.name, labelValidate, s.n)
			o := find(points, bd.name, labelOPA, s.n)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |", bd.name, cell, throughput(v), ratio(sat(v), sat(v1)), throughput(o), ratio(sat(o), sat(o1)), ratio(sat(v), sat(o)))
			for _, r := range c.scaleRates {
				fmt.Fprintf(&b, " %s | %s |", p99At(v, r), p99At(o, r))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func sat(p *point) *result {
	if p == nil {
		return nil
	}
	return p.sat
}

func throughput(p *point) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f%s", p.sat.rps(), errorNote(p.sat.errorCount()))
}

func p99At(p *point, rate int) string {
	if p == nil || p.byRate[rate] == nil {
		return "—"
	}
	r := p.byRate[rate]
	return ms(r.quantile(0.99)) + overloaded(rate, r) + errorNote(r.errorCount())
}

func ratio(a, b *result) string {
	if a == nil || b == nil || b.rps() == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a.rps()/b.rps())
}

func errorNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d errors)", n)
}

// overloaded flags a fixed-rate point the server could not keep up with.
func overloaded(rate int, r *result) string {
	if r.rps() < 0.95*float64(rate) || r.dropped > 0 {
		return fmt.Sprintf(" (overloaded: %.0f/s served)", float64(len(r.latencies))/r.elapsed.Seconds())
	}
	return ""
}

// down prints a ratio with two decimals rounded down, so a missed target
// never shows the figure it missed (1.998 is 1.99, not 2.00).
func down(x float64) string { return fmt.Sprintf("%.2f", math.Floor(x*100+1e-9)/100) }

// targetRow is one line of the targets table.
type targetRow struct{ target, measured, verdict string }

const (
	met    = "**met**"
	missed = "**missed**"
	na     = "n/a"
)

func verdict(ok bool) string {
	if ok {
		return met
	}
	return missed
}

// targets judges the targets from the run's figures. A target is
// met only by figures without failed requests; one not measured in this
// run (servers, bodies or core counts left out, or a machine with too few
// CPUs) is n/a and says why.
func targets(bs []*body, points []*point, setups []coreSetup) []targetRow {
	var rows []targetRow
	notMeasured := targetRow{measured: "not measured in this run", verdict: na}
	failures := func(ps ...*point) string { // of the saturation points
		n := 0
		for _, p := range ps {
			n += p.sat.errorCount()
		}
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("; %d failed requests", n)
	}
	// (a) saturation ≥ 2× stock OPA, per body.
	for _, bd := range bs {
		row := notMeasured
		row.target = fmt.Sprintf("/validate saturation ≥ %.0f× stock OPA, %s (unique objects, one core)", targetOPARatio, bd.name)
		v, o := find(points, bd.name, labelValidate, 1), find(points, bd.name, labelOPA, 1)
		if v != nil && o != nil && o.sat.rps() > 0 {
			x := v.sat.rps() / o.sat.rps()
			fail := failures(v, o)
			row.measured = fmt.Sprintf("%s× (%.0f vs %.0f req/s)%s", down(x), v.sat.rps(), o.sat.rps(), fail)
			row.verdict = verdict(x >= targetOPARatio && fail == "")
		}
		rows = append(rows, row)
	}
	// (b) typical-pod p99 at 500 requests/s on one core.
	row := notMeasured
	row.target = fmt.Sprintf("%s p99 ≤ %.0f ms at %d requests/s (/validate, unique objects, one core)", typicalPod, targetP99Ms, targetP99Rate)
	if v := find(points, typicalPod, labelValidate, 1); v != nil && v.byRate[targetP99Rate] != nil {
		r := v.byRate[targetP99Rate]
		p99 := r.quantile(0.99)
		fail := ""
		if n := r.errorCount(); n > 0 {
			fail = fmt.Sprintf("; %d failed requests", n)
		}
		row.measured = fmt.Sprintf("%.3f ms", float64(p99.Microseconds())/1000) + overloaded(targetP99Rate, r) + fail
		row.verdict = verdict(float64(p99.Microseconds()) <= targetP99Ms*1000 && r.dropped == 0 && fail == "")
	}
	rows = append(rows, row)
	// (c) peak RSS of the portcullis servers.
	row = notMeasured
	row.target = fmt.Sprintf("RSS ≤ %.0f MB under load (every portcullis server, peak VmHWM)", targetRSSMB)
	peak := map[int]float64{}
	anon := 0.0
	for _, p := range points {
		if p.server != labelOPA {
			peak[p.cores] = max(peak[p.cores], p.hwm, p.rss)
			anon = max(anon, p.anon)
		}
	}
	if len(peak) > 0 {
		var parts []string
		top := 0.0
		for _, n := range slices.Sorted(maps.Keys(peak)) {
			parts = append(parts, fmt.Sprintf("%s: %.0f", cores(n), peak[n]))
			top = max(top, peak[n])
		}
		row.measured = fmt.Sprintf("%.0f MB (%s; anonymous at most %.0f MB)", top, strings.Join(parts, ", "), anon)
		row.verdict = verdict(top <= targetRSSMB)
	}
	rows = append(rows, row)
	// (d) scaling at 4 cores, per body.
	var four *coreSetup
	for i := range setups {
		if setups[i].n == targetCores {
			four = &setups[i]
		}
	}
	for _, bd := range bs {
		row := notMeasured
		row.target = fmt.Sprintf("/validate saturation at %d cores ≥ %.1f× one core, %s (unique objects)", targetCores, targetScaling, bd.name)
		v1, v4 := find(points, bd.name, labelValidate, 1), find(points, bd.name, labelValidate, targetCores)
		switch {
		case four != nil && four.missing != "":
			row.measured = four.missing
		case v1 != nil && v4 != nil && v1.sat.rps() > 0:
			x := v4.sat.rps() / v1.sat.rps()
			fail := failures(v1, v4)
			row.measured = fmt.Sprintf("%s× (%.0f vs %.0f req/s)%s", down(x), v4.sat.rps(), v1.sat.rps(), fail)
			if four != nil && !four.shared.IsEmpty() {
				row.measured += "; load generator on CPU " + four.shared.String() + " too"
			}
			row.verdict = verdict(x >= targetScaling && fail == "")
		}
		rows = append(rows, row)
	}
	return rows
}
