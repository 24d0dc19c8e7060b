package engine

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

type reloadResult struct {
	reg *Registry
	err error
}

// startReloader runs a Reloader over paths with load, until the test ends.
func startReloader(t *testing.T, eng *Engine, load func(context.Context) (*Registry, error), paths ...string) <-chan reloadResult {
	t.Helper()
	results := make(chan reloadResult, 64)
	rl := &Reloader{
		Engine:   eng,
		Load:     load,
		Paths:    paths,
		Debounce: 20 * time.Millisecond,
		OnReload: func(reg *Registry, err error) { results <- reloadResult{reg, err} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return results
}

// reloadAfter calls change until a reload is reported (the watcher starts
// asynchronously, so the first change may come before it watches), then
// waits for the burst to settle and returns the last result.
func reloadAfter(t *testing.T, results <-chan reloadResult, change func()) reloadResult {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		change()
		select {
		case r := <-results:
			// Drain what the same burst may still produce.
			for {
				select {
				case r = <-results:
				case <-time.After(200 * time.Millisecond):
					return r
				}
			}
		case <-time.After(300 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no reload reported")
			}
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func denyPolicy(msg string) string {
	return validating("p", `deny contains {"msg": "`+msg+`"}`)
}

func TestReloaderPolicyDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	policy := filepath.Join(dir, "p", "p.rego")
	writeFile(t, policy, denyPolicy("v1"))
	load := func(ctx context.Context) (*Registry, error) {
		return Load(ctx, Source{Policies: os.DirFS(dir)})
	}
	reg, err := load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eng := New(reg, nil)
	req := podRequest(t, "default", pod(nil))
	message := func() string { return evaluateEngine(t, eng, req).Message() }
	if got := message(); got != "[p] v1" {
		t.Fatalf("initial decision %q", got)
	}
	results := startReloader(t, eng, load, dir)

	// A change is served.
	r := reloadAfter(t, results, func() { writeFile(t, policy, denyPolicy("v2")) })
	if r.err != nil || r.reg == nil {
		t.Fatalf("reload: %v", r.err)
	}
	if got := message(); got != "[p] v2" {
		t.Errorf("after change: %q, want %q", got, "[p] v2")
	}

	// A syntax error is reported with file and line; the last good set stays.
	r = reloadAfter(t, results, func() { writeFile(t, policy, denyPolicy("v3")+"\ndeny contains {\n") })
	if r.err == nil || r.reg != nil {
		t.Fatalf("broken reload: reg %v, err %v", r.reg, r.err)
	}
	if !regexp.MustCompile(`^load policies: parse: .*\np/p\.rego:10: rego_parse_error: unexpected eof token`).MatchString(r.err.Error()) {
		t.Errorf("error does not name the file and line: %q", r.err)
	}
	if got := message(); got != "[p] v2" {
		t.Errorf("after broken change: %q, want the last good %q", got, "[p] v2")
	}

	// Fixed: served again.
	r = reloadAfter(t, results, func() { writeFile(t, policy, denyPolicy("v4")) })
	if r.err != nil {
		t.Fatalf("reload after fix: %v", r.err)
	}
	if got := message(); got != "[p] v4" {
		t.Errorf("after fix: %q, want %q", got, "[p] v4")
	}

	// A new policy in a new directory is picked up (new directories are watched).
	r = reloadAfter(t, results, func() {
		writeFile(t, filepath.Join(dir, "q", "q.rego"), validating("q", `deny contains {"msg": "q"}`))
	})
	if r.err != nil {
		t.Fatalf("reload with new policy: %v", r.err)
	}
	if got := message(); got != "[p] v4; [q] q" {
		t.Errorf("after new policy: %q", got)
	}
	// ... and a change inside that new directory too.
	r = reloadAfter(t, results, func() {
		writeFile(t, filepath.Join(dir, "q", "q.rego"), validating("q", `deny contains {"msg": "q2"}`))
	})
	if r.err != nil {
		t.Fatalf("reload: %v", r.err)
	}
	if got := message(); got != "[p] v4; [q] q2" {
		t.Errorf("after change in new directory: %q", got)
	}
}

// A config file mounted from a ConfigMap is replaced by swapping the ..data
// symlink; the watcher sees it through the directory.
func TestReloaderConfigSymlinkSwap(t *testing.T) {
	t.Parallel()
	cfgDir := t.TempDir()
	writeVersion := func(version, content string) {
		writeFile(t, filepath.Join(cfgDir, version, "config.yaml"), content)
		tmp := filepath.Join(cfgDir, "..data_tmp")
		if err := os.Symlink(version, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(cfgDir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..v1", "policies:\n  fx_privileged:\n    enforcement: deny\n")
	cfgFile := filepath.Join(cfgDir, "config.yaml")
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), cfgFile); err != nil {
		t.Fatal(err)
	}
	load := func(ctx context.Context) (*Registry, error) {
		b, err := os.ReadFile(cfgFile)
		if err != nil {
			return nil, err
		}
		src := fixtureSource(t, string(b))
		return Load(ctx, src)
	}
	reg, err := load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eng := New(reg, nil)
	req := podRequest(t, "default", pod(teamPayments, container("app", "app:1", true)))
	if evaluateEngine(t, eng, req).Allowed {
		t.Fatal("initially allowed")
	}
	results := startReloader(t, eng, load, cfgFile)
	n := 2
	r := reloadAfter(t, results, func() {
		n++
		writeVersion("..v"+strings.Repeat("x", n), "policies:\n  fx_privileged:\n    enforcement: warn\n")
	})
	if r.err != nil {
		t.Fatalf("reload: %v", r.err)
	}
	dec := evaluateEngine(t, eng, req)
	if !dec.Allowed || len(dec.Warnings) != 1 {
		t.Errorf("after swap: allowed %v, warnings %q", dec.Allowed, dec.Warnings)
	}

	// A broken config keeps the last good set.
	r = reloadAfter(t, results, func() {
		n++
		writeVersion("..v"+strings.Repeat("x", n), "policies:\n  fx_privileged:\n    enforcement: never\n")
	})
	const want = `load policies: config: policies.fx_privileged.enforcement "never": must be deny, warn or audit`
	if r.err == nil || r.err.Error() != want {
		t.Fatalf("broken config: err = %v\nwant %s", r.err, want)
	}
	if dec := evaluateEngine(t, eng, req); !dec.Allowed {
		t.Error("broken config replaced the last good set")
	}
}

func TestReloaderMissingPath(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope")
	rl := &Reloader{Engine: New(mustLoad(t, mapFS(nil)), nil), Paths: []string{missing}}
	err := rl.Run(context.Background())
	if want := "watch " + missing + ": stat " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
