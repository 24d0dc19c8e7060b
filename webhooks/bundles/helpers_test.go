package bundles

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
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// rsaKey is a key pair as PEM, as `openssl genrsa` / `openssl rsa -pubout`
// write them for `opa sign --signing-key`.
type rsaKey struct{ private, public string }

func newRSAKey(t *testing.T) rsaKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return rsaKey{
		private: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}
}

// tarball writes a bundle of files (path → content: .rego modules, and
// data.json files) with the revision, signed with key when not nil, as `opa
// build -b` and `opa sign` (no key ID: bundle.GenerateSignature with "")
// produce it.
func tarball(t *testing.T, files map[string]string, revision string, key *rsaKey) []byte {
	t.Helper()
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: map[string]any{}}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if filepath.Ext(name) == ".rego" {
			b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: []byte(files[name])})
		}
	}
	b.Manifest.Init()
	if data, ok := files["data.json"]; ok {
		if err := json.Unmarshal([]byte(data), &b.Data); err != nil {
			t.Fatal(err)
		}
	}
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, "RS256", ""), "", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bundleServer serves one bundle over HTTPS on loopback with an ETag (the
// SHA-256 of the tarball), answering If-None-Match with 304.
type bundleServer struct {
	*httptest.Server
	mu          sync.Mutex
	body        []byte
	full, fresh int // 200 and 304 answers
	caFile      string
	// token, when set, is the bearer token required (401 otherwise).
	token string
	// down answers 503.
	down bool
}

func newBundleServer(t *testing.T, body []byte) *bundleServer {
	t.Helper()
	s := &bundleServer{body: body}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	}))
	t.Cleanup(s.Close)
	s.caFile = filepath.Join(t.TempDir(), "ca.crt")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(s.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// set replaces the bundle served.
func (s *bundleServer) set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

// counts returns the 200 and 304 answers so far.
func (s *bundleServer) counts() (full, fresh int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full, s.fresh
}

// writeBundle writes b as a tarball, signatures and all, unchanged.
func writeBundle(t *testing.T, b bundle.Bundle) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
