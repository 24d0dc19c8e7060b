package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"sync"
	"time"
)

// Hash identifies the policy set: a SHA-256 over the names and contents of
// the Rego files loaded and the merged configuration. Two replicas (or a
// replica and `git log`) serving the same files and configuration show the
// same hash.
func (r *Registry) Hash() string { return r.hash }

// LoadedAt is when the registry was built.
func (r *Registry) LoadedAt() time.Time { return r.loadedAt }

// hashingFS records a digest of every file read through it.
type hashingFS struct {
	fs.FS
	mu   sync.Mutex
	sums map[string][sha256.Size]byte
}

// ReadFile implements fs.ReadFileFS: fs.ReadFile (ParseModules) reads
// through it.
func (h *hashingFS) ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(h.FS, name)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sums == nil {
		h.sums = map[string][sha256.Size]byte{}
	}
	h.sums[name] = sha256.Sum256(b)
	return b, nil
}

// digest combines the files read and the configuration.
func (h *hashingFS) digest(cfg map[string]any) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.sums))
	for name := range h.sums {
		names = append(names, name)
	}
	sort.Strings(names)
	d := sha256.New()
	for _, name := range names {
		sum := h.sums[name]
		writeField(d, []byte(name))
		writeField(d, sum[:])
	}
	c, err := json.Marshal(cfg) // map keys sorted: canonical
	if err != nil {
		return "", fmt.Errorf("hash configuration: %w", err)
	}
	writeField(d, c)
	return hex.EncodeToString(d.Sum(nil)), nil
}
