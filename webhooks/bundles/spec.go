package bundles

import (
	"fmt"
	"net/url"
	"strings"

	"oras.land/oras-go/v2/registry"
)

// Kind says how a bundle is fetched.
type Kind string

const (
	// KindHTTPS is a bundle tarball served over HTTPS, polled with
	// If-None-Match (ETag).
	KindHTTPS Kind = "https"
	// KindOCI is a bundle pushed to an OCI registry, polled by the digest of
	// its layer.
	KindOCI Kind = "oci"
)

// Spec is one --bundle: where the bundle comes from and what it is called in
// metrics, /readyz and the file names of its modules.
type Spec struct {
	// Name labels the bundle (metrics, /readyz?verbose) and prefixes its
	// file names in errors (NAME/dir/file.rego:3).
	Name string
	// URL is the flag's URL, as given (https://… or oci://…).
	URL string
	// Kind is KindHTTPS or KindOCI.
	Kind Kind
	// Service is the base URL OPA's REST client talks to (https://host[:port]).
	Service string
	// Resource is the path under Service (HTTPS) or the reference
	// host[:port]/repository[:tag|@digest] (OCI), as OPA's downloaders take them.
	Resource string
}

// ParseSpec parses a --bundle value, [NAME=]URL, where URL is
// https://host[:port]/path or oci://host[:port]/repository[:tag|@digest].
// Without NAME the bundle is named after its host and path. Credentials in
// the URL are refused (they would show in metrics and logs): bearer tokens
// come from --bundle-token-file.
func ParseSpec(value string) (Spec, error) {
	name, raw := "", value
	if i := strings.Index(value, "="); i >= 0 && !strings.Contains(value[:i], "/") {
		name, raw = value[:i], value[i+1:]
		if name == "" {
			return Spec{}, fmt.Errorf("--bundle %q: empty name before '='", value)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Spec{}, fmt.Errorf("--bundle %q: %w", raw, err)
	}
	if u.User != nil {
		return Spec{}, fmt.Errorf("--bundle: credentials in the URL are not allowed (they would show in metrics and logs); use --bundle-token-file")
	}
	if u.Host == "" {
		return Spec{}, fmt.Errorf("--bundle %q: want https://HOST/PATH or oci://HOST/REPOSITORY[:TAG|@DIGEST]", raw)
	}
	s := Spec{Name: name, URL: raw}
	switch u.Scheme {
	case "https":
		// A query string is refused, not passed on: it is where presigned
		// URLs and ?token= schemes carry credentials, and OPA's client logs
		// the URL (debug) and Go's errors quote it.
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return Spec{}, fmt.Errorf("--bundle %q: no query string or fragment (a query may carry credentials, which would show in logs; use --bundle-token-file)", raw)
		}
		s.Kind = KindHTTPS
		s.Service = "https://" + u.Host
		s.Resource = strings.TrimPrefix(u.EscapedPath(), "/")
		if s.Resource == "" {
			return Spec{}, fmt.Errorf("--bundle %q: no path to the bundle", raw)
		}
	case "oci":
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return Spec{}, fmt.Errorf("--bundle %q: an OCI reference has no query or fragment", raw)
		}
		ref := u.Host + u.Path
		parsed, err := registry.ParseReference(ref)
		if err != nil {
			return Spec{}, fmt.Errorf("--bundle %q: %w", raw, err)
		}
		if parsed.Reference == "" {
			return Spec{}, fmt.Errorf("--bundle %q: name a tag or digest (oci://%s:TAG)", raw, ref)
		}
		s.Kind = KindOCI
		s.Service = "https://" + u.Host
		s.Resource = ref
	case "http":
		return Spec{}, fmt.Errorf("--bundle %q: plain HTTP is refused (a bundle is code the server runs): use https:// or oci://", raw)
	default:
		return Spec{}, fmt.Errorf("--bundle %q: scheme %q: want https:// or oci://", raw, u.Scheme)
	}
	if s.Name == "" {
		s.Name = u.Host + u.Path
	}
	return s, nil
}

// ParseSpecs parses every --bundle and refuses two with one name.
func ParseSpecs(values []string) ([]Spec, error) {
	var out []Spec
	seen := map[string]string{}
	for _, v := range values {
		s, err := ParseSpec(v)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[s.Name]; ok {
			return nil, fmt.Errorf("--bundle %q and %q: both named %q (give one a name: NAME=URL)", prev, s.URL, s.Name)
		}
		seen[s.Name] = s.URL
		out = append(out, s)
	}
	return out, nil
}
