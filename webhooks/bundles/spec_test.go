package bundles

import (
	"net/url"
	"strings"
	"testing"
)

// TestParseSpec: what a --bundle value becomes for OPA's downloaders.
func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
	}{
		{"https://bundles.example:8443/v1/custom.tar.gz", Spec{Name: "bundles.example:8443/v1/custom.tar.gz", URL: "https://bundles.example:8443/v1/custom.tar.gz", Kind: KindHTTPS, Service: "https://bundles.example:8443", Resource: "v1/custom.tar.gz"}},
		{"team=https://bundles.example/a%20b.tar.gz", Spec{Name: "team", URL: "https://bundles.example/a%20b.tar.gz", Kind: KindHTTPS, Service: "https://bundles.example", Resource: "a%20b.tar.gz"}},
		{"oci://ghcr.io/acme/policies:v1", Spec{Name: "ghcr.io/acme/policies:v1", URL: "oci://ghcr.io/acme/policies:v1", Kind: KindOCI, Service: "https://ghcr.io", Resource: "ghcr.io/acme/policies:v1"}},
		{"oci://127.0.0.1:5000/p@sha256:" + strings.Repeat("a", 64), Spec{Name: "127.0.0.1:5000/p@sha256:" + strings.Repeat("a", 64), URL: "oci://127.0.0.1:5000/p@sha256:" + strings.Repeat("a", 64), Kind: KindOCI, Service: "https://127.0.0.1:5000", Resource: "127.0.0.1:5000/p@sha256:" + strings.Repeat("a", 64)}},
	} {
		got, err := ParseSpec(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseSpec: any value either fails or yields a spec OPA can use, with
// an https service and no credentials anywhere in what is logged.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"https://bundles.example/custom.tar.gz", "oci://ghcr.io/acme/p:v1", "n=https://h/p", "https://u:p@h/p",
		"http://h/p", "oci://h/p", "=https://h/p", "a/b=https://h/p", "https://h/../../etc", "oci://h/P:v1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			return
		}
		if s.Name == "" || s.Resource == "" || (s.Kind != KindHTTPS && s.Kind != KindOCI) {
			t.Fatalf("ParseSpec(%q) = %+v", in, s)
		}
		u, err := url.Parse(s.Service)
		if err != nil || u.Scheme != "https" || u.User != nil || u.Host == "" || u.Path != "" {
			t.Fatalf("ParseSpec(%q): service %q", in, s.Service)
		}
		if v, err := url.Parse(s.URL); err != nil || v.User != nil || v.RawQuery != "" || strings.Contains(s.Resource, "?") {
			t.Fatalf("ParseSpec(%q): URL %q may carry credentials", in, s.URL)
		}
	})
}
