package certs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPublishDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	for _, gen := range []string{"one", "two", "three"} {
		if err := PublishDir(dir, map[string][]byte{CertFile: []byte("cert " + gen), KeyFile: []byte("key " + gen)}); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{CertFile: "cert " + gen, KeyFile: "key " + gen}
		for n, w := range want {
			got, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != w {
				t.Errorf("%s = %q after publishing %s, want %q", n, got, gen, w)
			}
			if target, err := os.Readlink(filepath.Join(dir, n)); err != nil || target != filepath.Join("..data", n) {
				t.Errorf("%s links to %q (%v), want ..data/%s", n, target, err, n)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 || names[0] != "..data" || !strings.HasPrefix(names[1], "..gen-") || !slices.Equal(names[2:], []string{CertFile, KeyFile}) {
		t.Errorf("directory holds %q, want ..data, one generation and the two links", names)
	}
	if err := PublishDir(dir, map[string][]byte{"../escape": nil}); err == nil {
		t.Errorf("a file name with a path was accepted")
	}
}

// TestPublishDirAtomic: a reader opening tls.crt then tls.key while pairs
// are published never sees one of each.
func TestPublishDirAtomic(t *testing.T) {
	dir := t.TempDir()
	publish := func(i int) {
		v := []byte{byte('a' + i%26)}
		if err := PublishDir(dir, map[string][]byte{CertFile: v, KeyFile: v}); err != nil {
			t.Error(err)
		}
	}
	publish(0)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i < 100; i++ {
			publish(i)
		}
		stop.Store(true)
	}()
	mixed := 0
	for !stop.Load() {
		// A Secret-volume reader resolves ..data once, then reads both.
		data, err := os.Readlink(filepath.Join(dir, "..data"))
		if err != nil {
			t.Fatal(err)
		}
		c, errC := os.ReadFile(filepath.Join(dir, data, CertFile))
		k, errK := os.ReadFile(filepath.Join(dir, data, KeyFile))
		if errC != nil || errK != nil {
			continue // the generation was removed under us: retried
		}
		if string(c) != string(k) {
			mixed++
		}
	}
	wg.Wait()
	if mixed > 0 {
		t.Errorf("%d mixed reads", mixed)
	}
}
