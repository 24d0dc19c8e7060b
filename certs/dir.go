package certs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Names of the files PublishDir keeps in a directory, and of the Secret keys
// they come from (the kubernetes.io/tls Secret layout).
const (
	CertFile   = "tls.crt"
	KeyFile    = "tls.key"
	CAFile     = "ca.crt"
	CAKeyFile  = "ca.key"
	dataLink   = "..data"
	genPrefix  = "..gen-"
	linkSuffix = ".tmp-link"
)

// PublishDir replaces the files in dir in one atomic step, the way the kubelet
// updates a Secret volume: the files are written into a new hidden directory
// dir/..gen-*, the symlink dir/..data is swapped to it by a rename, and each
// dir/<name> is a symlink to ..data/<name>. A reader that opens dir/tls.crt
// and then dir/tls.key sees the old pair or the new one, never a mix, and a
// watcher of either path sees an event. Earlier generations are removed.
func PublishDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	gen, err := os.MkdirTemp(dir, genPrefix)
	if err != nil {
		return fmt.Errorf("publish into %s: %w", dir, err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if name != filepath.Base(name) || strings.HasPrefix(name, "..") {
			os.RemoveAll(gen)
			return fmt.Errorf("publish into %s: invalid file name %q", dir, name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeSynced(filepath.Join(gen, name), files[name]); err != nil {
			os.RemoveAll(gen)
			return err
		}
	}
	if err := swapSymlink(filepath.Base(gen), filepath.Join(dir, dataLink)); err != nil {
		os.RemoveAll(gen)
		return err
	}
	for _, name := range names {
		target := filepath.Join(dataLink, name)
		if cur, err := os.Readlink(filepath.Join(dir, name)); err == nil && cur == target {
			continue
		}
		if err := swapSymlink(target, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	// Older generations are no longer reachable through ..data.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("publish into %s: %w", dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), genPrefix) && e.Name() != filepath.Base(gen) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove old generation: %w", err)
			}
		}
	}
	return nil
}

// swapSymlink points path at target atomically (a new link renamed over it).
func swapSymlink(target, path string) error {
	tmp := path + linkSuffix
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", path, err)
	}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
