package app

import (
	"errors"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/pflag"
)

// The soft memory limit: the flag wins (0 turns it off), then GOMEMLIMIT,
// then 90% of the container's cgroup limit, else none; never a fixed
// default below the working set.
func TestMemoryLimit(t *testing.T) {
	const mi = 1 << 20
	tests := map[string]struct {
		args   []string
		env    string
		cgroup memlimit.Provider
		limit  int64
		source string
	}{
		"from the cgroup (the Deployment's 512Mi)": {
			cgroup: memlimit.Limit(512 * mi), limit: 483183820, source: "90% of the cgroup memory limit 536870912",
		},
		"no cgroup limit": {
			cgroup: func() (uint64, error) { return 0, memlimit.ErrNoLimit }, limit: noMemoryLimit, source: "none (no cgroup memory limit)",
		},
		"cgroup unreadable": {
			cgroup: func() (uint64, error) { return 0, errors.New("no cgroup") }, limit: noMemoryLimit, source: "none (no cgroup memory limit)",
		},
		"GOMEMLIMIT wins over the cgroup": {
			env: "300MiB", cgroup: memlimit.Limit(512 * mi), limit: -1, source: "GOMEMLIMIT",
		},
		"the flag wins over GOMEMLIMIT and the cgroup": {
			args: []string{"--memory-limit=104857600"}, env: "300MiB", cgroup: memlimit.Limit(512 * mi), limit: 100 * mi, source: "--memory-limit",
		},
		"--memory-limit=0 turns it off": {
			args: []string{"--memory-limit=0"}, cgroup: memlimit.Limit(512 * mi), limit: noMemoryLimit, source: "--memory-limit=0 (none)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := NewPerformanceOptions()
			if o.MemoryLimit != 0 {
				t.Fatalf("default MemoryLimit %d: want none fixed", o.MemoryLimit)
			}
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			o.cgroupLimit = tc.cgroup
			limit, source := o.memoryLimit(tc.env)
			if limit != tc.limit || source != tc.source {
				t.Errorf("memoryLimit = %d, %q; want %d, %q", limit, source, tc.limit, tc.source)
			}
		})
	}
}

// The lanes serve builds: the small lane has --max-concurrent-evaluations
// slots, the large one its own, and each its byte budget.
func TestServeAdmissionLanes(t *testing.T) {
	o := NewPerformanceOptions()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--max-concurrent-evaluations=6", "--max-concurrent-large-evaluations=2", "--large-request-bytes=1000", "--small-bytes-in-flight=5000", "--large-bytes-in-flight=9000"}); err != nil {
		t.Fatal(err)
	}
	a, err := o.admission()
	if err != nil {
		t.Fatal(err)
	}
	small, large := a.Lane(1000), a.Lane(1001)
	if small.Name() != "small" || small.Slots().Max() != 6 || small.Budget() != 5000 {
		t.Errorf("small lane: %s, %d slots, %d bytes", small.Name(), small.Slots().Max(), small.Budget())
	}
	if large.Name() != "large" || large.Slots().Max() != 2 || large.Budget() != 9000 {
		t.Errorf("large lane: %s, %d slots, %d bytes", large.Name(), large.Slots().Max(), large.Budget())
	}
}
