package app

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis/portcullis/webhooks/bundles/bundletest"
)

// TestServeBundleFlags: the --bundle flags through AddFlags and Validate,
// with exact messages.
func TestServeBundleFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub := write("key.pem", []byte(bundletest.NewRSAKey(t).Public))
	notPEM := write("secret.txt", []byte("s3cr3t-hmac"))
	ca := write("ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))
	missing := filepath.Join(dir, "missing")
	const b = "--bundle=https://bundles.example/custom.tar.gz"
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"https", []string{b}, ""},
		{"oci with tag", []string{"--bundle=oci://ghcr.io/acme/policies:v1"}, ""},
		{"oci with digest", []string{"--bundle=oci://ghcr.io/acme/policies@sha256:" + sixtyFour}, ""},
		{"named", []string{"--bundle=team=https://bundles.example/a.tar.gz", "--bundle=https://bundles.example/a.tar.gz"}, ""},
		{"every flag", []string{b, "--bundle-ca-file=" + ca, "--bundle-token-file=" + notPEM, "--bundle-min-delay=10s", "--bundle-max-delay=30s",
			"--bundle-verification-key=" + pub, "--bundle-verification-key-id=release", "--bundle-verification-key-algorithm=PS256", "--bundle-verification-scope=write", "--bundle-required"}, ""},
		{"HMAC secret", []string{b, "--bundle-verification-key=" + notPEM, "--bundle-verification-key-algorithm=HS256"}, ""},
		{"plain http", []string{"--bundle=http://bundles.example/a.tar.gz"}, `--bundle "http://bundles.example/a.tar.gz": plain HTTP is refused (a bundle is code the server runs): use https:// or oci://`},
		{"file scheme", []string{"--bundle=file:///tmp/a.tar.gz"}, `--bundle "file:///tmp/a.tar.gz": want https://HOST/PATH or oci://HOST/REPOSITORY[:TAG|@DIGEST]`},
		{"ftp scheme", []string{"--bundle=ftp://h/a.tar.gz"}, `--bundle "ftp://h/a.tar.gz": scheme "ftp": want https:// or oci://`},
		{"credentials in the URL", []string{"--bundle=https://user:hunter2@bundles.example/a.tar.gz"}, "--bundle: credentials in the URL are not allowed (they would show in metrics and logs); use --bundle-token-file"},
		{"query string", []string{"--bundle=https://bundles.example/a.tar.gz?X-Amz-Signature=abc"}, `--bundle "https://bundles.example/a.tar.gz?X-Amz-Signature=abc": no query string or fragment (a query may carry credentials, which would show in logs; use --bundle-token-file)`},
		{"no path", []string{"--bundle=https://bundles.example/"}, `--bundle "https://bundles.example/": no path to the bundle`},
		{"oci without tag", []string{"--bundle=oci://ghcr.io/acme/policies"}, `--bundle "oci://ghcr.io/acme/policies": name a tag or digest (oci://ghcr.io/acme/policies:TAG)`},
		{"oci with query", []string{"--bundle=oci://ghcr.io/acme/policies:v1?x=1"}, `--bundle "oci://ghcr.io/acme/policies:v1?x=1": an OCI reference has no query or fragment`},
		{"empty name", []string{"--bundle==https://bundles.example/a.tar.gz"}, `--bundle "=https://bundles.example/a.tar.gz": empty name before '='`},
		{"same name twice", []string{b, b}, `--bundle "https://bundles.example/custom.tar.gz" and "https://bundles.example/custom.tar.gz": both named "bundles.example/custom.tar.gz" (give one a name: NAME=URL)`},
		{"key without bundle", []string{"--bundle-verification-key=" + pub}, "--bundle-verification-key needs --bundle"},
		{"required without bundle", []string{"--bundle-required"}, "--bundle-required needs --bundle"},
		{"delay without bundle", []string{"--bundle-min-delay=5s"}, "--bundle-min-delay needs --bundle"},
		{"sub-second delay", []string{b, "--bundle-min-delay=500ms"}, "--bundle-min-delay 500ms: at least 1s"},
		{"fractional delay", []string{b, "--bundle-max-delay=90500ms"}, "--bundle-max-delay 1m30.5s: whole seconds (OPA polls in seconds)"},
		{"max below min", []string{b, "--bundle-min-delay=60s", "--bundle-max-delay=30s"}, "--bundle-max-delay 30s is less than --bundle-min-delay 1m0s"},
		{"missing CA", []string{b, "--bundle-ca-file=" + missing}, "--bundle-ca-file: stat " + missing + ": no such file or directory"},
		{"CA not PEM", []string{b, "--bundle-ca-file=" + notPEM}, "--bundle-ca-file " + notPEM + ": no PEM certificate"},
		{"missing token", []string{b, "--bundle-token-file=" + missing}, "--bundle-token-file: stat " + missing + ": no such file or directory"},
		{"key not PEM", []string{b, "--bundle-verification-key=" + notPEM}, "--bundle-verification-key " + notPEM + ": no PEM public key (algorithm RS256)"},
		{"missing key", []string{b, "--bundle-verification-key=" + missing}, "--bundle-verification-key: open " + missing + ": no such file or directory"},
		{"unknown algorithm", []string{b, "--bundle-verification-key=" + pub, "--bundle-verification-key-algorithm=none"}, `--bundle-verification-key-algorithm "none": want one of [RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 HS256 HS384 HS512]`},
		{"empty key id", []string{b, "--bundle-verification-key=" + pub, "--bundle-verification-key-id="}, "--bundle-verification-key-id must not be empty"},
		{"scope without key", []string{b, "--bundle-verification-scope=write"}, "--bundle-verification-scope needs --bundle-verification-key"},
		{"max bytes", []string{b, "--bundle-max-bytes=1048576"}, ""},
		{"zero max bytes", []string{b, "--bundle-max-bytes=0"}, "--bundle-max-bytes must be positive"},
		{"max bytes without bundle", []string{"--bundle-max-bytes=1"}, "--bundle-max-bytes needs --bundle"},
		{"key id without key", []string{b, "--bundle-verification-key-id=x"}, "--bundle-verification-key-id needs --bundle-verification-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serveValidate(t, tt.args); got != tt.err {
				t.Errorf("Validate() = %q, want %q", got, tt.err)
			}
		})
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
