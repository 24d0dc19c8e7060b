package app

import (
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/spf13/pflag"

	"github.com/portcullis/portcullis/webhooks/bundles"
)

// BundleOptions are the serve flags for OPA bundles (package bundles).
type BundleOptions struct {
	// Bundles are the --bundle values, [NAME=]URL.
	Bundles   []string
	CAFile    string
	TokenFile string
	MinDelay  time.Duration
	MaxDelay  time.Duration
	// Verification key (`opa sign --signing-key`'s public half, or the HMAC
	// secret), its key ID, algorithm and scope, as `opa build
	// --verification-key` takes them.
	VerificationKey          string
	VerificationKeyID        string
	VerificationKeyAlgorithm string
	VerificationScope        string
	Required                 bool
	// MaxBytes bounds each file in a bundle, as read (OPA's default, 1 GiB,
	// is a gzip bomb's room).
	MaxBytes int64
}

// NewBundleOptions returns the defaults: OPA's polling delays and key
// defaults (opa build: key ID "default", RS256).
func NewBundleOptions() BundleOptions {
	return BundleOptions{
		MinDelay:                 60 * time.Second,
		MaxDelay:                 120 * time.Second,
		VerificationKeyID:        "default",
		VerificationKeyAlgorithm: "RS256",
		MaxBytes:                 16 << 20,
	}
}

// AddFlags registers the flags.
func (o *BundleOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.Bundles, "bundle", o.Bundles, "OPA bundle stacked over the built-in policies and --policies directories, [NAME=]URL: https://HOST/PATH (polled with ETag) or oci://HOST/REPOSITORY:TAG (polled by digest); repeatable, later ones stacked over earlier ones")
	fs.StringVar(&o.CAFile, "bundle-ca-file", o.CAFile, "PEM CA bundle trusted for bundle servers and registries (default: the system roots)")
	fs.StringVar(&o.TokenFile, "bundle-token-file", o.TokenFile, "file holding a bearer token sent to bundle servers and registries, read on every request, never logged")
	fs.DurationVar(&o.MinDelay, "bundle-min-delay", o.MinDelay, "shortest wait between two polls of a bundle (whole seconds)")
	fs.DurationVar(&o.MaxDelay, "bundle-max-delay", o.MaxDelay, "longest wait between two polls of a bundle, and the longest retry backoff (whole seconds)")
	fs.StringVar(&o.VerificationKey, "bundle-verification-key", o.VerificationKey, "PEM public key (RS*, PS*, ES*) or HMAC secret file (HS*) bundles must be signed with (opa sign); set, unsigned bundles and bad signatures are refused")
	fs.StringVar(&o.VerificationKeyID, "bundle-verification-key-id", o.VerificationKeyID, "ID of the verification key (opa build --verification-key-id)")
	fs.StringVar(&o.VerificationKeyAlgorithm, "bundle-verification-key-algorithm", o.VerificationKeyAlgorithm, "algorithm of the verification key (opa sign --signing-alg): RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, HS256, HS384, HS512")
	fs.StringVar(&o.VerificationScope, "bundle-verification-scope", o.VerificationScope, "scope the signatures must carry (opa sign --claims-file with a scope claim; empty: not checked)")
	fs.BoolVar(&o.Required, "bundle-required", o.Required, "not ready until every --bundle has activated once")
	fs.Int64Var(&o.MaxBytes, "bundle-max-bytes", o.MaxBytes, "largest file a bundle may hold, uncompressed; a bundle with a larger one is refused")
}

// verificationAlgorithms are the algorithms OPA's bundle verification
// knows (bundle/verify.go).
var verificationAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"}

// Validate checks the flags. The bundle flags are refused without a
// --bundle, rather than ignored: a key that verifies nothing is a
// configuration mistake.
func (o *BundleOptions) Validate() error {
	if len(o.Bundles) == 0 {
		d := NewBundleOptions()
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"--bundle-ca-file", o.CAFile != ""},
			{"--bundle-token-file", o.TokenFile != ""},
			{"--bundle-min-delay", o.MinDelay != d.MinDelay},
			{"--bundle-max-delay", o.MaxDelay != d.MaxDelay},
			{"--bundle-verification-key", o.VerificationKey != ""},
			{"--bundle-verification-key-id", o.VerificationKeyID != d.VerificationKeyID},
			{"--bundle-verification-key-algorithm", o.VerificationKeyAlgorithm != d.VerificationKeyAlgorithm},
			{"--bundle-verification-scope", o.VerificationScope != ""},
			{"--bundle-required", o.Required},
			{"--bundle-max-bytes", o.MaxBytes != d.MaxBytes},
		} {
			if f.set {
				return fmt.Errorf("%s needs --bundle", f.name)
			}
		}
		return nil
	}
	if _, err := bundles.ParseSpecs(o.Bundles); err != nil {
		return err
	}
	if o.MaxBytes <= 0 {
		return errors.New("--bundle-max-bytes must be positive")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--bundle-min-delay", o.MinDelay}, {"--bundle-max-delay", o.MaxDelay}} {
		if d.v < time.Second {
			return fmt.Errorf("%s %s: at least 1s", d.name, d.v)
		}
		if d.v%time.Second != 0 {
			return fmt.Errorf("%s %s: whole seconds (OPA polls in seconds)", d.name, d.v)
		}
	}
	if o.MaxDelay < o.MinDelay {
		return fmt.Errorf("--bundle-max-delay %s is less than --bundle-min-delay %s", o.MaxDelay, o.MinDelay)
	}
	for _, f := range []struct{ name, path string }{{"--bundle-ca-file", o.CAFile}, {"--bundle-token-file", o.TokenFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if o.CAFile != "" {
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return fmt.Errorf("--bundle-ca-file: %w", err)
		}
		if blk, _ := pem.Decode(b); blk == nil {
			return fmt.Errorf("--bundle-ca-file %s: no PEM certificate", o.CAFile)
		}
	}
	if o.VerificationKey == "" {
		d := NewBundleOptions()
		switch {
		case o.VerificationKeyID != d.VerificationKeyID:
			return errors.New("--bundle-verification-key-id needs --bundle-verification-key")
		case o.VerificationKeyAlgorithm != d.VerificationKeyAlgorithm:
			return errors.New("--bundle-verification-key-algorithm needs --bundle-verification-key")
		case o.VerificationScope != "":
			return errors.New("--bundle-verification-scope needs --bundle-verification-key")
		}
		return nil
	}
	if !slices.Contains(verificationAlgorithms, o.VerificationKeyAlgorithm) {
		return fmt.Errorf("--bundle-verification-key-algorithm %q: want one of %v", o.VerificationKeyAlgorithm, verificationAlgorithms)
	}
	if o.VerificationKeyID == "" {
		return errors.New("--bundle-verification-key-id must not be empty")
	}
	_, err := o.verification()
	return err
}

// verification reads the key into OPA's verification configuration, as
// `opa build --verification-key` builds it (cmd/build.go,
// buildVerificationConfig); nil without a key.
func (o *BundleOptions) verification() (*bundle.VerificationConfig, error) {
	if o.VerificationKey == "" {
		return nil, nil
	}
	b, err := os.ReadFile(o.VerificationKey)
	if err != nil {
		return nil, fmt.Errorf("--bundle-verification-key: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("--bundle-verification-key %s: empty", o.VerificationKey)
	}
	if o.VerificationKeyAlgorithm[0] != 'H' {
		if blk, _ := pem.Decode(b); blk == nil {
			// Never quote the file: it may be a secret given by mistake.
			return nil, fmt.Errorf("--bundle-verification-key %s: no PEM public key (algorithm %s)", o.VerificationKey, o.VerificationKeyAlgorithm)
		}
	}
	kc := &bundle.KeyConfig{Key: string(b), Algorithm: o.VerificationKeyAlgorithm, Scope: o.VerificationScope}
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{o.VerificationKeyID: kc}, o.VerificationKeyID, o.VerificationScope, nil), nil
}

// config builds the bundles.Config; Validate has passed.
func (o *BundleOptions) config() (bundles.Config, error) {
	specs, err := bundles.ParseSpecs(o.Bundles)
	if err != nil {
		return bundles.Config{}, err
	}
	vc, err := o.verification()
	if err != nil {
		return bundles.Config{}, err
	}
	return bundles.Config{
		Bundles:      specs,
		MinDelay:     o.MinDelay,
		MaxDelay:     o.MaxDelay,
		CAFile:       o.CAFile,
		TokenFile:    o.TokenFile,
		Verification: vc,
		MaxBytes:     o.MaxBytes,
		Required:     o.Required,
	}, nil
}
