package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// coreSetup is where the servers of one core count run.
type coreSetup struct {
	n       int           // cores, and the servers' GOMAXPROCS
	cpus    cpuset.CPUSet // taskset -c list; empty when missing
	shared  cpuset.CPUSet // CPUs the load generator shares with the servers
	missing string        // why this count is not measured ("machine has 2 cores")
	pinned  bool          // taskset is available
}

// String describes the placement for the report: "CPU 0", "CPUs 0-1 (the
// load generator shares CPU 1)", or "n/a (machine has 2 cores)".
func (s coreSetup) String() string {
	if s.missing != "" {
		return "n/a (" + s.missing + ")"
	}
	out := s.cpuText()
	if s.pinned && !s.shared.IsEmpty() {
		out += " (the load generator shares " + plural("CPU", s.shared.Size()) + " " + s.shared.String() + ")"
	}
	return out
}

// cpuText names the servers' CPUs: "CPU 0", "CPUs 0-1", or "any CPU (no
// taskset)".
func (s coreSetup) cpuText() string {
	if !s.pinned {
		return "any CPU (no taskset)"
	}
	return plural("CPU", s.cpus.Size()) + " " + s.cpus.String()
}

func plural(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// planCores places each core count. One core is -server-cpu; more cores
// take the usable CPUs the load generator does not run on first, then its
// own (so it shares CPUs with the servers only when the machine has too
// few); a count above the usable CPUs is missing.
func planCores(counts []int, serverCPU string, usable, load cpuset.CPUSet, pinned bool) ([]coreSetup, error) {
	order := append(usable.Difference(load).List(), usable.Intersection(load).List()...)
	var out []coreSetup
	for _, n := range counts {
		s := coreSetup{n: n, pinned: pinned}
		switch {
		case n == 1:
			cpus, err := cpuset.Parse(serverCPU)
			if err != nil || cpus.Size() != 1 {
				return nil, fmt.Errorf("-server-cpu %q: want one CPU", serverCPU)
			}
			s.cpus = cpus
		case n > len(order):
			s.missing = fmt.Sprintf("machine has %d cores", len(order))
		default:
			s.cpus = cpuset.New(order[:n]...)
		}
		s.shared = s.cpus.Intersection(load)
		if !pinned {
			s.shared = load
		}
		out = append(out, s)
	}
	return out, nil
}

// usableCPUs returns the CPUs the servers can be pinned to: the cgroup's
// effective cpuset (cgroup v2) when there is one, else the online CPUs,
// else runtime.NumCPU() CPUs from 0. Formats: cpuset(7) "FORMATS", parsed
// by k8s.io/utils/cpuset.
func usableCPUs() cpuset.CPUSet {
	for _, f := range []string{"/sys/fs/cgroup/cpuset.cpus.effective", "/sys/devices/system/cpu/online"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if s, err := cpuset.Parse(strings.TrimSpace(string(b))); err == nil && !s.IsEmpty() {
			return s
		}
	}
	return cpuset.New(seq(runtime.NumCPU())...)
}

// loadCPUs returns the CPUs this process (the load generator) may run on,
// from Cpus_allowed_list in /proc/self/status (proc(5)); when unknown, all
// usable CPUs, so no placement is reported as apart when it may not be.
func loadCPUs(usable cpuset.CPUSet) cpuset.CPUSet {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return usable
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			if s, err := cpuset.Parse(strings.TrimSpace(v)); err == nil && !s.IsEmpty() {
				return s
			}
		}
	}
	return usable
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// positiveInts parses a comma-separated list of positive integers into a
// sorted list without repeats ("4,1,2" → [1 2 4]).
func positiveInts(flag, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s %q: %q is not a positive integer", flag, s, f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// cores says "1 core", "2 cores".
func cores(n int) string { return fmt.Sprintf("%d %s", n, plural("core", n)) }
