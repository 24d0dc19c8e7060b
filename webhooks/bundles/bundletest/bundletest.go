// Package bundletest builds and serves OPA bundles for tests: an RSA
// signing key, a bundle tarball as `opa build -b` and `opa sign` write it,
// an HTTPS bundle server with ETags, and a push to an OCI registry as `oras
// push` does it.
//
// Only tests import it, so neither it nor go-containerregistry enters the
// portcullis binary (`go list -deps ./cmd/portcullis` does not list it).
//
// OPA's references: https://www.openpolicyagent.org/docs/management-bundles
// (format, ETag polling, OCI), https://www.openpolicyagent.org/docs/management-bundles#signing.
package bundletest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// Key is an RSA key pair as PEM, as `openssl genrsa` and `openssl rsa
// -pubout` write them: Private is what `opa sign --signing-key` takes,
// Public what `serve --bundle-verification-key` takes.
type Key struct {
	// Private is the PKCS #1 private key ("RSA PRIVATE KEY").
	Private string
	// Public is the PKIX public key ("PUBLIC KEY").
	Public string
}

// NewRSAKey returns a new 2048-bit RSA key pair.
func NewRSAKey(t testing.TB) Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return Key{
		Private: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		Public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}
}

// Tarball returns a bundle of files (path → content: .rego modules, and
// data.json files whose directory is their place in the data tree) with the
// revision, signed with key when not nil, as `opa build -b` then `opa sign`
// write it: RS256, no key ID (bundle.GenerateSignature with ""). Modules
// are added in path order, so the same files give the same tarball. Any
// other file name fails the test.
func Tarball(t testing.TB, files map[string]string, revision string, key *Key) []byte {
	t.Helper()
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: map[string]any{}}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case filepath.Ext(name) == ".rego":
			b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: []byte(files[name])})
		case path.Base(name) == "data.json":
			var v any
			if err := json.Unmarshal([]byte(files[name]), &v); err != nil {
				t.Fatalf("bundle file %s: %v", name, err)
			}
			putData(t, b.Data, path.Dir(name), v)
		default:
			t.Fatalf("bundle file %s: want a .rego module or a data.json file", name)
		}
	}
	b.Manifest.Init()
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.Private, "RS256", ""), "", false); err != nil {
			t.Fatal(err)
		}
	}
	return Write(t, b)
}

// putData merges v into data at dir ("." is the root), as OPA's bundle
// reader places a data.json file at its directory's path.
func putData(t testing.TB, data map[string]any, dir string, v any) {
	t.Helper()
	node := data
	if dir != "." {
		for _, seg := range strings.Split(dir, "/") {
			child, ok := node[seg].(map[string]any)
			if !ok {
				child = map[string]any{}
				node[seg] = child
			}
			node = child
		}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("data.json under %s: want a JSON object, got %T", dir, v)
	}
	for k, x := range obj {
		node[k] = x
	}
}

// Write returns b as a tarball, signatures and all, unchanged (no new
// signature, no manifest defaults): what a test that tampers with a signed
// bundle publishes.
func Write(t testing.TB, b bundle.Bundle) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Server serves one bundle, at every path, over HTTPS on loopback with an
// ETag (from the SHA-256 of the tarball), answering If-None-Match with 304,
// as nginx and S3 do. It answers 404 while it has no bundle. The embedded
// httptest.Server gives its URL, Client and Certificate.
type Server struct {
	*httptest.Server
	caFile string

	mu          sync.Mutex
	body        []byte
	token       string
	down        bool
	full, fresh int // 200 and 304 answers
}

// NewServer starts a Server serving body (nil: 404 until Set) and closes
// it when the test ends.
func NewServer(t testing.TB, body []byte) *Server {
	t.Helper()
	s := &Server{body: body}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	s.caFile = filepath.Join(t.TempDir(), "ca.crt")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(s.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if s.body == nil {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(s.body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag) // on 304 too, as nginx and S3 do
	if r.Header.Get("If-None-Match") == etag {
		s.fresh++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.full++
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(s.body)
}

// CAFile returns the path of a PEM file holding the server's certificate,
// what --bundle-ca-file takes. httptest's TLS servers share one
// certificate (for 127.0.0.1), so it verifies any of them.
func (s *Server) CAFile() string { return s.caFile }

// Set replaces the bundle served (nil: 404).
func (s *Server) Set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

// SetToken makes the server require "Authorization: Bearer token" (401
// otherwise); "" requires nothing.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// SetDown makes the server answer 503 to everything while down is true.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Counts returns the number of 200 (full) and 304 (fresh) answers so far.
func (s *Server) Counts() (full, fresh int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full, s.fresh
}

// PushOCI pushes a bundle tarball to ref through transport the way `oras
// push REF bundle.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip`
// does: one layer of that media type (the one OPA's OCI downloader takes)
// in an OCI image manifest.
func PushOCI(t testing.TB, ref string, tarball []byte, transport http.RoundTripper) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(tarball, types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	if err := remote.Write(r, img, remote.WithTransport(transport)); err != nil {
		t.Fatal(err)
	}
}
