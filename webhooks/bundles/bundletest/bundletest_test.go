package bundletest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// TestTarball: the tarball reads back with OPA's bundle reader, verifying
// its signature with the public key, with the modules in path order, the
// data.json files at their directories and the revision; the same files
// give the same bytes.
func TestTarball(t *testing.T) {
	key := NewRSAKey(t)
	files := map[string]string{
		"b/b.rego":       "package b\n\nx := 1\n",
		"a/a.rego":       "package a\n\ny := 2\n",
		"data.json":      `{"top": true}`,
		"c/d/data.json":  `{"n": 3}`,
		"c/other/x.rego": "package c.other\n\nz := 3\n",
	}
	tb := Tarball(t, files, "r1", &key)
	if again := Tarball(t, files, "r1", &key); !bytes.Equal(again, tb) {
		t.Error("the same files gave different tarballs")
	}
	verify := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"default": {Key: key.Public, Algorithm: "RS256"}}, "default", "", nil)
	b, err := bundle.NewReader(bytes.NewReader(tb)).WithBundleVerificationConfig(verify).Read()
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != "r1" {
		t.Errorf("revision = %q, want r1", b.Manifest.Revision)
	}
	var paths []string
	for _, m := range b.Modules {
		paths = append(paths, m.Path)
	}
	if want := []string{"/a/a.rego", "/b/b.rego", "/c/other/x.rego"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("modules = %v, want %v", paths, want)
	}
	wantData := map[string]any{"top": true, "c": map[string]any{"d": map[string]any{"n": 3.0}}}
	if got := normalize(t, b.Data); !reflect.DeepEqual(got, wantData) {
		t.Errorf("data = %#v, want %#v", got, wantData)
	}
	other := NewRSAKey(t)
	otherVerify := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"default": {Key: other.Public, Algorithm: "RS256"}}, "default", "", nil)
	if _, err := bundle.NewReader(bytes.NewReader(tb)).WithBundleVerificationConfig(otherVerify).Read(); err == nil {
		t.Error("verified with another key")
	}
}

// normalize turns OPA's json.Number values into float64 so data compares
// with plain Go values.
func normalize(t *testing.T, v any) any {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(t, e)
		}
		return out
	case interface{ Float64() (float64, error) }:
		f, err := x.Float64()
		if err != nil {
			t.Fatal(err)
		}
		return f
	default:
		return v
	}
}

// TestServer: 404 without a bundle; 200 with an ETag, 304 for that ETag,
// 200 again after Set; 401 without the token; 503 while down; Counts
// counts the 200 and 304 answers; CAFile verifies the server.
func TestServer(t *testing.T) {
	s := NewServer(t, nil)
	get := func(etag, token string) (int, string, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.URL+"/b.tar.gz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("ETag"), body
	}
	if code, _, _ := get("", ""); code != http.StatusNotFound {
		t.Errorf("no bundle: %d, want 404", code)
	}
	s.Set([]byte("one"))
	code, etag, body := get("", "")
	if code != http.StatusOK || string(body) != "one" || etag == "" {
		t.Errorf("first GET: %d %q etag %q", code, body, etag)
	}
	if code, again, _ := get(etag, ""); code != http.StatusNotModified || again != etag {
		t.Errorf("GET with its ETag: %d etag %q, want 304 %q", code, again, etag)
	}
	s.Set([]byte("two"))
	if code, next, body := get(etag, ""); code != http.StatusOK || string(body) != "two" || next == etag {
		t.Errorf("GET after Set: %d %q etag %q (old %q)", code, body, next, etag)
	}
	if full, fresh := s.Counts(); full != 2 || fresh != 1 {
		t.Errorf("Counts() = %d, %d; want 2, 1", full, fresh)
	}
	s.SetToken("t0k")
	if code, _, _ := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _, _ := get("", "t0k"); code != http.StatusOK {
		t.Errorf("with the token: %d, want 200", code)
	}
	s.SetDown(true)
	if code, _, _ := get("", "t0k"); code != http.StatusServiceUnavailable {
		t.Errorf("down: %d, want 503", code)
	}
	// The CA file alone lets a client verify the server.
	ca, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("%s: no PEM certificate", s.CAFile())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	s.SetDown(false)
	s.SetToken("")
	resp, err := c.Get(s.URL + "/b.tar.gz")
	if err != nil {
		t.Fatalf("GET trusting only the CA file: %v", err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
}
