package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// symlinkSwap points link at target atomically, as the kubelet's atomic
// writer and git-sync do: a new link beside it, renamed over it.
func symlinkSwap(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// servedMessage loads the set the way serve does and returns a function
// reading the current denial message of a plain pod.
func dirEngine(t *testing.T, dir string) (*Engine, func(context.Context) (*Registry, error), func() string) {
	t.Helper()
	load := func(ctx context.Context) (*Registry, error) {
		return Load(ctx, Source{Policies: os.DirFS(dir)})
	}
	reg, err := load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eng := New(reg, nil)
	req := podRequest(t, "default", pod(nil))
	return eng, load, func() string { return evaluateEngine(t, eng, req).Message() }
}

// --policies through symbolic links: every swap is served.
func TestReloaderFollowsSymlinkSwaps(t *testing.T) {
	t.Parallel()
	t.Run("git-sync: the policy directory is a link to a worktree", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "worktrees", "v1", "p", "p.rego"), denyPolicy("v1"))
		link := filepath.Join(root, "current")
		symlinkSwap(t, filepath.Join("worktrees", "v1"), link)
		eng, load, message := dirEngine(t, link)
		results := startReloader(t, eng, load, link)
		for _, v := range []string{"v2", "v3"} {
			writeFile(t, filepath.Join(root, "worktrees", v, "p", "p.rego"), denyPolicy(v))
			r := reloadAfter(t, results, func() { symlinkSwap(t, filepath.Join("worktrees", v), link) })
			if r.err != nil {
				t.Fatalf("reload: %v", r.err)
			}
			if got := message(); got != "[p] "+v {
				t.Errorf("after the swap to %s: %q", v, got)
			}
		}
		// A change inside the new worktree is seen too: the new target is watched.
		r := reloadAfter(t, results, func() { writeFile(t, filepath.Join(root, "worktrees", "v3", "p", "p.rego"), denyPolicy("v3b")) })
		if r.err != nil {
			t.Fatalf("reload: %v", r.err)
		}
		if got := message(); got != "[p] v3b" {
			t.Errorf("after a change in the current worktree: %q", got)
		}
	})
	t.Run("kubelet ConfigMap volume: ..data swapped to a new timestamped directory", func(t *testing.T) {
		t.Parallel()
		vol := t.TempDir()
		version := func(ts, msg string) {
			writeFile(t, filepath.Join(vol, ts, "p.rego"), denyPolicy(msg))
			symlinkSwap(t, ts, filepath.Join(vol, "..data"))
		}
		version("..2024_01_01_00_00_00.1", "v1")
		if err := os.Symlink(filepath.Join("..data", "p.rego"), filepath.Join(vol, "p.rego")); err != nil {
			t.Fatal(err)
		}
		eng, load, message := dirEngine(t, vol)
		results := startReloader(t, eng, load, vol)
		for i, v := range []string{"v2", "v3"} {
			r := reloadAfter(t, results, func() { version(fmt.Sprintf("..2024_01_01_00_00_0%d.1", i+1), v) })
			if r.err != nil {
				t.Fatalf("reload: %v", r.err)
			}
			if got := message(); got != "[p] "+v {
				t.Errorf("after the swap to %s: %q", v, got)
			}
		}
	})
	t.Run("kubelet projected item path: --policies is a link through ..data", func(t *testing.T) {
		t.Parallel()
		vol := t.TempDir()
		version := func(ts, msg string) {
			writeFile(t, filepath.Join(vol, ts, "policies", "p", "p.rego"), denyPolicy(msg))
			symlinkSwap(t, ts, filepath.Join(vol, "..data"))
		}
		version("..2024_01_01_00_00_00.1", "v1")
		dir := filepath.Join(vol, "policies")
		if err := os.Symlink(filepath.Join("..data", "policies"), dir); err != nil {
			t.Fatal(err)
		}
		eng, load, message := dirEngine(t, dir)
		results := startReloader(t, eng, load, dir)
		r := reloadAfter(t, results, func() { version("..2024_01_01_00_00_01.1", "v2") })
		if r.err != nil {
			t.Fatalf("reload: %v", r.err)
		}
		if got := message(); got != "[p] v2" {
			t.Errorf("after the swap: %q", got)
		}
	})
}

// The policy directory deleted and created again: reloads keep working; in
// between, nothing is swapped in (the last good set serves).
func TestReloaderSurvivesDeleteAndRecreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "policies")
	writeFile(t, filepath.Join(dir, "p", "p.rego"), denyPolicy("v1"))
	eng, load, message := dirEngine(t, dir)
	results := startReloader(t, eng, load, dir)
	// First a change that proves the watcher runs (it starts asynchronously).
	if r := reloadAfter(t, results, func() { writeFile(t, filepath.Join(dir, "touched"), "") }); r.err != nil {
		t.Fatal(r.err)
	}
	r := reloadAfter(t, results, func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	})
	if r.err == nil {
		t.Fatal("a reload with the directory gone succeeded")
	}
	if got := message(); got != "[p] v1" {
		t.Errorf("with the directory gone: %q, want the last good set", got)
	}
	r = reloadAfter(t, results, func() { writeFile(t, filepath.Join(dir, "p", "p.rego"), denyPolicy("v2")) })
	if r.err != nil {
		t.Fatalf("reload after recreate: %v", r.err)
	}
	if got := message(); got != "[p] v2" {
		t.Errorf("after recreate: %q", got)
	}
	r = reloadAfter(t, results, func() { writeFile(t, filepath.Join(dir, "p", "p.rego"), denyPolicy("v3")) })
	if r.err != nil || message() != "[p] v3" {
		t.Errorf("a later change: err %v, message %q", r.err, message())
	}
}

// A reload that would leave no policies, or drop a required one, is refused:
// the last good set keeps serving.
func TestReloaderRefusesEmptyOrMissingRequired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	required := "# METADATA\n# title: r\n# custom:\n#   kind: validating\n#   required: true\npackage portcullis.r\n\ndeny contains {\"msg\": \"r\"}\n"
	writeFile(t, filepath.Join(dir, "p", "p.rego"), denyPolicy("p"))
	writeFile(t, filepath.Join(dir, "r", "r.rego"), required)
	eng, load, message := dirEngine(t, dir)
	if !eng.Registry().Policy("r").Required || eng.Registry().Policy("p").Required {
		t.Fatal("required marker not read")
	}
	results := startReloader(t, eng, load, dir)
	// Removing is not repeatable (the watcher may not watch yet the first
	// time, see reloadAfter): a touched file makes every attempt an event.
	remove := func(names ...string) func() {
		return func() {
			writeFile(t, filepath.Join(dir, "touched"), "")
			for _, n := range names {
				_ = os.RemoveAll(filepath.Join(dir, n))
			}
		}
	}

	r := reloadAfter(t, results, remove("r"))
	if !errors.Is(r.err, ErrReloadRefused) || r.err.Error() != "reload refused: the new policy set drops required policies r" {
		t.Fatalf("dropping a required policy: %v", r.err)
	}
	if got := message(); got != "[p] p; [r] r" {
		t.Errorf("after a refused reload: %q", got)
	}
	writeFile(t, filepath.Join(dir, "r", "r.rego"), required)
	r = reloadAfter(t, results, remove("p"))
	if r.err != nil {
		t.Fatalf("dropping a policy that is not required: %v", r.err)
	}
	if got := message(); got != "[r] r" {
		t.Errorf("after dropping p: %q", got)
	}
	// config can mark a policy required too; and no policies at all is refused.
	eng2 := New(mustLoad(t, mapFS(map[string]string{"p/p.rego": denyPolicy("p")}), "policies:\n  p:\n    required: true\n"), nil)
	if err := CheckReload(eng2.Registry(), mustLoad(t, mapFS(nil)), true); err == nil || err.Error() != "reload refused: the new policy set drops required policies p" {
		t.Errorf("config required: %v", err)
	}
	r = reloadAfter(t, results, remove("r", "p"))
	if !errors.Is(r.err, ErrReloadRefused) {
		t.Fatalf("no policies: %v", r.err)
	}
	if got := message(); got != "[r] r" {
		t.Errorf("after an empty reload: %q", got)
	}
	if err := CheckReload(eng.Registry(), mustLoad(t, mapFS(nil)), false); err == nil || err.Error() != "reload refused: the new policy set has no policies (serving them would admit everything)" {
		t.Errorf("empty set: %v", err)
	}
	if err := CheckReload(New(mustLoad(t, mapFS(map[string]string{"p/p.rego": denyPolicy("p")})), nil).Registry(), mustLoad(t, mapFS(nil)), true); err != nil {
		t.Errorf("empty set with allowEmpty: %v", err)
	}
}

// The set's hash follows the Rego files and the configuration, and nothing
// else (test files, load time).
func TestRegistryHash(t *testing.T) {
	t.Parallel()
	files := map[string]string{"p/p.rego": denyPolicy("p")}
	a, b := mustLoad(t, mapFS(files)), mustLoad(t, mapFS(files))
	if a.Hash() == "" || a.Hash() != b.Hash() || len(a.Hash()) != 64 {
		t.Fatalf("hashes %q and %q of the same set", a.Hash(), b.Hash())
	}
	if a.LoadedAt().IsZero() {
		t.Error("no load time")
	}
	withTest := map[string]string{"p/p.rego": denyPolicy("p"), "p/p_test.rego": "package portcullis.p_test\n"}
	for name, other := range map[string]*Registry{
		"changed policy": mustLoad(t, mapFS(map[string]string{"p/p.rego": denyPolicy("q")})),
		"changed config": mustLoad(t, mapFS(files), "policies:\n  p:\n    enforcement: warn\n"),
	} {
		if other.Hash() == a.Hash() {
			t.Errorf("%s: same hash", name)
		}
	}
	if got := mustLoad(t, mapFS(withTest)).Hash(); got != a.Hash() {
		t.Errorf("a test file changed the hash")
	}
}
