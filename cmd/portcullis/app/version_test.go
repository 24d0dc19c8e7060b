package app

import (
	"bytes"
	"context"
	"testing"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/version"
)

func TestVersionCommand(t *testing.T) {
	line := version.Get().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := run(t, "", args...)
		if code != ExitOK || out != line || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0, %q", args, code, out, errOut, line)
		}
	}
	code, _, errOut := run(t, "", "version", "-o", "yaml")
	if want := "Error: --output \"yaml\": must be text or json\n"; code != ExitUsage || errOut != want {
		t.Errorf("-o yaml: exit %d, stderr %q; want %d, %q", code, errOut, ExitUsage, want)
	}
}

func TestVersionJSON(t *testing.T) {
	info := version.Info{Version: "v0.1.1", Commit: "feedface", Date: "2026-12-02T00:00:00Z", GoVersion: "go1.26.1", Platform: "linux/amd64"}
	var out bytes.Buffer
	o := &VersionOptions{Output: "json", Info: &info}
	if err := o.Run(context.Background(), IO{Out: &out}); err != nil {
		t.Fatal(err)
	}
	want, _ := info.JSON()
	if out.String() != string(want) {
		t.Errorf("got %s, want %s", out.String(), want)
	}
}
