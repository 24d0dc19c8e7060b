package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.1",
		Main:      debug.Module{Path: "github.com/portcullis/portcullis", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	installed := &debug.BuildInfo{
		GoVersion: "go1.26.1",
		Main:      debug.Module{Path: "github.com/portcullis/portcullis", Version: "v0.1.1"},
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	tests := map[string]struct {
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
	}{
		"linker flags win": {
			version: "v0.1.1", commit: "feedface", date: "2026-12-02T00:00:00Z", bi: vcs,
			want: Info{Version: "v0.1.1", Commit: "feedface", Date: "2026-12-02T00:00:00Z", GoVersion: "go1.26.1", Platform: platform, Modified: true},
		},
		"go build in a checkout": {
			bi:   vcs,
			want: Info{Version: "devel", Commit: "0123abcd", Date: "2026-12-01T10:00:00Z", GoVersion: "go1.26.1", Platform: platform, Modified: true},
		},
		"go install at a version": {
			bi:   installed,
			want: Info{Version: "v0.1.1", Commit: Unknown, Date: Unknown, GoVersion: "go1.26.1", Platform: platform},
		},
		"no build information": {
			want: Info{Version: "devel", Commit: Unknown, Date: Unknown, GoVersion: runtime.Version(), Platform: platform},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := resolve(tt.version, tt.commit, tt.date, tt.bi); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "v0.1.1", Commit: "feedface", Date: "2026-12-02T00:00:00Z", GoVersion: "go1.26.1", Platform: "linux/arm64"}
	if got, want := i.String(), "portcullis v0.1.1 (commit feedface, built 2026-12-02T00:00:00Z, go1.26.1, linux/arm64)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	i.Modified = true
	if got, want := i.String(), "portcullis v0.1.1 (commit feedface, modified, built 2026-12-02T00:00:00Z, go1.26.1, linux/arm64)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJSON(t *testing.T) {
	b, err := Info{Version: "v0.1.1", Commit: "feedface", Date: "2026-12-02T00:00:00Z", GoVersion: "go1.26.1", Platform: "linux/amd64"}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": "v0.1.1",
  "commit": "feedface",
  "buildDate": "2026-12-02T00:00:00Z",
  "goVersion": "go1.26.1",
  "platform": "linux/amd64"
}
`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(Info{Version: "v0.1.1", Commit: "feedface", GoVersion: "go1.26.1"}))
	want := `# HELP portcullis_build_info Always 1; the labels say which build of Portcullis is running.
# TYPE portcullis_build_info gauge
portcullis_build_info{commit="feedface",go_version="go1.26.1",version="v0.1.1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
