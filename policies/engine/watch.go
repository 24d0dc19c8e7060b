package engine

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Reloader rebuilds the registry when watched files change and swaps it in;
// a registry that fails to load is reported and the last good one keeps
// serving.
type Reloader struct {
	// Engine receives the new registries.
	Engine *Engine
	// Load builds a registry from the current files.
	Load func(ctx context.Context) (*Registry, error)
	// Paths are files or directories to watch (directories recursively).
	// A file is watched through its directory, so ConfigMap-style symlink
	// swaps are seen.
	Paths []string
	// Debounce coalesces bursts of events (editors, git checkouts).
	Debounce time.Duration
	// OnReload is called after each attempt with its error (nil on success).
	OnReload func(reg *Registry, err error)
}

// Run watches until ctx is done.
func (r *Reloader) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policies: %w", err)
	}
	defer w.Close()
	if err := r.addAll(w); err != nil {
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
			if ev.Op&fsnotify.Create != 0 {
				// New subdirectories (a new policy) must be watched too.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = r.addDir(w, ev.Name)
				}
			}
			timer = time.After(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if r.OnReload != nil {
				r.OnReload(nil, fmt.Errorf("watch policies: %w", err))
			}
		case <-timer:
			timer = nil
			reg, err := r.Load(ctx)
			if err == nil {
				r.Engine.Swap(reg)
			}
			if r.OnReload != nil {
				r.OnReload(reg, err)
			}
		}
	}
}

func (r *Reloader) addAll(w *fsnotify.Watcher) error {
	for _, p := range r.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		if fi.IsDir() {
			if err := r.addDir(w, p); err != nil {
				return err
			}
			continue
		}
		if err := w.Add(filepath.Dir(p)); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
	}
	return nil
}

func (r *Reloader) addDir(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := w.Add(p); err != nil {
				return fmt.Errorf("watch %s: %w", p, err)
			}
		}
		return nil
	})
}
