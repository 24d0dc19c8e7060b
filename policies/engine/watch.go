package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrReloadRefused marks a policy set that loaded but would not be safe to
// serve in place of the current one (no policies left, a required policy
// dropped). The last good set keeps serving.
var ErrReloadRefused = errors.New("reload refused")

// Reloader rebuilds the registry when watched files change and swaps it in;
// a registry that fails to load, or that CheckReload refuses, is reported
// and the last good one keeps serving.
//
// What it watches, so that a reload can go neither stale nor open:
//   - each path and every symbolic link on the way to it, resolved again
//     after every change: a kubelet ConfigMap volume swaps a ..data link
//     (atomic writer), git-sync swaps a link to a new worktree, and the
//     directory the path names changes with them;
//   - the directory holding each path and each link, so that deleting and
//     recreating the directory (or the link) is seen;
//   - a directory path recursively, a file path by name.
//
// Inotify follows a link only when the watch is added; fsnotify documents
// that it does not follow links (https://pkg.go.dev/github.com/fsnotify/fsnotify),
// hence the explicit chain. Events elsewhere in those parent directories
// are ignored.
type Reloader struct {
	// Engine receives the new registries.
	Engine *Engine
	// Load builds a registry from the current files.
	Load func(ctx context.Context) (*Registry, error)
	// Paths are files or directories to watch (directories recursively).
	Paths []string
	// Debounce coalesces bursts of events (editors, git checkouts).
	Debounce time.Duration
	// AllowEmpty lets a reload leave no policies (serve --allow-empty-policies).
	AllowEmpty bool
	// OnReload is called after each attempt with its error (nil on success;
	// errors.Is(err, ErrReloadRefused) when CheckReload refused the set).
	OnReload func(reg *Registry, err error)
	// Lock, when set, is held from Load to Swap, so that another writer of
	// Engine (bundle activations) cannot swap a set in between and then be
	// undone by a set loaded before it.
	Lock sync.Locker
}

// CheckReload refuses to replace old with next when next has no policies
// (unless allowEmpty) or lacks a policy old marks required (METADATA
// custom.required or config policies.<id>.required). Errors wrap
// ErrReloadRefused.
func CheckReload(old, next *Registry, allowEmpty bool) error {
	if len(next.policies) == 0 && !allowEmpty {
		return fmt.Errorf("%w: the new policy set has no policies (serving them would admit everything)", ErrReloadRefused)
	}
	if old == nil {
		return nil
	}
	var missing []string
	for _, p := range old.policies {
		if p.Required && next.byID[p.ID] == nil {
			missing = append(missing, p.ID)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the new policy set drops required policies %s", ErrReloadRefused, strings.Join(missing, ", "))
	}
	return nil
}

// Run watches until ctx is done.
func (r *Reloader) Run(ctx context.Context) error {
	for _, p := range r.Paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policies: %w", err)
	}
	defer w.Close()
	ws := &watchSet{w: w, watched: map[string]bool{}}
	if err := ws.sync(r.Paths); err != nil {
		return err
	}
	debounce := r.Debounce
	if debounce <= 0 {
		debounce = 250 * time.Millisecond
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ws.relevant(ev.Name) {
				timer = time.After(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if r.OnReload != nil {
				r.OnReload(nil, fmt.Errorf("watch policies: %w", err))
			}
		case <-timer:
			timer = nil
			// Follow the links again before loading: the files read next are
			// then watched, so a change after this point is seen.
			_ = ws.sync(r.Paths) // a path that is gone fails the load below
			reg, err := r.loadAndSwap(ctx)
			if r.OnReload != nil {
				r.OnReload(reg, err)
			}
		}
	}
}

// loadAndSwap loads, checks and swaps in the new registry, under Lock.
func (r *Reloader) loadAndSwap(ctx context.Context) (*Registry, error) {
	if r.Lock != nil {
		r.Lock.Lock()
		defer r.Lock.Unlock()
	}
	reg, err := r.Load(ctx)
	if err == nil {
		err = CheckReload(r.Engine.Registry(), reg, r.AllowEmpty)
	}
	if err == nil {
		r.Engine.Swap(reg)
	}
	return reg, err
}

// watchSet is the set of directories watched and the events that matter.
type watchSet struct {
	w       *fsnotify.Watcher
	watched map[string]bool
	names   map[string]bool // the paths, their links and targets: an event naming one matters
	trees   []string        // target directories: any event inside matters
}

// sync watches what paths need now and stops watching the rest. It returns
// the first error, after doing all it can.
func (s *watchSet) sync(paths []string) error {
	want := map[string]bool{}
	s.names = map[string]bool{}
	s.trees = nil
	var errs []error
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", p, err))
			continue
		}
		s.names[abs] = true
		want[filepath.Dir(abs)] = true // delete and recreate
		links, target, err := resolveChain(abs)
		for _, l := range links {
			s.names[l] = true
			want[filepath.Dir(l)] = true
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", p, err))
			continue
		}
		s.names[target] = true
		want[filepath.Dir(target)] = true
		fi, err := os.Stat(target)
		if err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", p, err))
			continue
		}
		if !fi.IsDir() {
			continue
		}
		s.trees = append(s.trees, target)
		err = filepath.WalkDir(target, func(d string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				want[d] = true
			}
			return nil // a subdirectory removed meanwhile: the next sync sees it
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	for d := range s.watched {
		if !want[d] {
			_ = s.w.Remove(d) // already gone when the directory was deleted
			delete(s.watched, d)
		}
	}
	for d := range want {
		if s.watched[d] {
			continue
		}
		if err := s.w.Add(d); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("watch %s: %w", d, err))
			}
			continue
		}
		s.watched[d] = true
	}
	return errors.Join(errs...)
}

// relevant reports whether an event on name can change what is loaded.
func (s *watchSet) relevant(name string) bool {
	name = filepath.Clean(name)
	if s.names[name] {
		return true
	}
	for _, t := range s.trees {
		if name == t || strings.HasPrefix(name, t+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// maxLinks bounds the links followed, like the kernel's ELOOP.
const maxLinks = 40

// resolveChain follows the symbolic links in abs, in any component, and
// returns each link met (as the path it was met at) and the final target.
func resolveChain(abs string) (links []string, target string, err error) {
	p := abs
	for hops := 0; hops <= maxLinks; hops++ {
		cur := filepath.VolumeName(p) + string(filepath.Separator)
		parts := strings.Split(strings.TrimPrefix(p[len(cur)-1:], string(filepath.Separator)), string(filepath.Separator))
		followed := false
		for i, part := range parts {
			if part == "" {
				continue
			}
			next := filepath.Join(cur, part)
			fi, err := os.Lstat(next)
			if err != nil {
				return links, next, err
			}
			if fi.Mode()&fs.ModeSymlink == 0 {
				cur = next
				continue
			}
			dest, err := os.Readlink(next)
			if err != nil {
				return links, next, err
			}
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(cur, dest)
			}
			links = append(links, next)
			p = filepath.Join(append([]string{dest}, parts[i+1:]...)...)
			followed = true
			break
		}
		if !followed {
			return links, filepath.Clean(p), nil
		}
	}
	return links, p, fmt.Errorf("%s: too many levels of symbolic links", abs)
}
