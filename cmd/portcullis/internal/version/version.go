// Package version says which build of Portcullis is running: the release
// version, the commit and the build date, stamped by the linker
// (`-ldflags -X`, see the Makefile and Dockerfile) and otherwise read from the
// build information Go records in every binary (runtime/debug.ReadBuildInfo:
// the module version of `go install ...@vX`, and the VCS revision and time
// of a `go build` in a git checkout).
package version

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the linker: -X github.com/portcullis/portcullis/version.version=v0.1.1
// (and .commit, .date). Variables rather than constants so -X can set them;
// nothing writes them at run time.
var (
	version string
	commit  string
	date    string
)

// Unknown is reported for a field no source knows.
const Unknown = "unknown"

// Info describes one build.
type Info struct {
	// Version is the release ("v0.1.1"), or "devel" for an unstamped local build.
	Version string `json:"version"`
	// Commit is the git revision the binary was built from.
	Commit string `json:"commit"`
	// Date is when it was built (the Makefile stamps the commit's time, so
	// builds are reproducible), RFC 3339.
	Date string `json:"buildDate"`
	// GoVersion is the Go toolchain that built it.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Modified is true when the source tree had uncommitted changes (Go's
	// vcs.modified); only known from the build information.
	Modified bool `json:"modified,omitempty"`
}

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, date, bi)
}

// resolve fills each field from the linker value when set, else from the
// build information, else Unknown (Version: "devel").
func resolve(version, commit, date string, bi *debug.BuildInfo) Info {
	info := Info{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		// "(devel)" is what Go records for the main module built in place.
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = Unknown
	}
	if info.Date == "" {
		info.Date = Unknown
	}
	return info
}

// String is the one-line form `portcullis --version` prints.
func (i Info) String() string {
	dirty := ""
	if i.Modified {
		dirty = ", modified"
	}
	return fmt.Sprintf("portcullis %s (commit %s%s, built %s, %s, %s)", i.Version, i.Commit, dirty, i.Date, i.GoVersion, i.Platform)
}

// JSON is the indented JSON form of `portcullis version -o json`.
func (i Info) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(i, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode version: %w", err)
	}
	return append(b, '\n'), nil
}

// NewCollector returns the portcullis_build_info gauge: always 1, with the
// build's version, commit and Go version as labels, the usual Prometheus
// idiom for joining a build onto other series
// (https://www.robustperception.io/exposing-the-software-version-to-prometheus).
func NewCollector(i Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "portcullis_build_info",
		Help:        "Always 1; the labels say which build of Portcullis is running.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "go_version": i.GoVersion},
	})
	g.Set(1)
	return g
}
