// Package certs provides Portcullis' serving certificates: a self-signed CA
// and serving certificate for local runs and the self-managed cluster mode.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Bundle is a CA and a serving certificate it signed, PEM encoded.
type Bundle struct {
	// CACert is the CA certificate: the webhook configurations' caBundle.
	CACert []byte
	// CAKey is the CA's private key (kept only where rotation needs it).
	CAKey []byte
	// Cert and Key are the serving certificate and its key.
	Cert, Key []byte
}

// Generate creates a new ECDSA P-256 CA valid for caValidity and a serving
// certificate for hosts (DNS names or IPs) valid for validity.
func Generate(hosts []string, caValidity, validity time.Duration, now time.Time) (*Bundle, error) {
	ca, err := NewCA(caValidity, now)
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(hosts, validity, now)
	if err != nil {
		return nil, err
	}
	return &Bundle{CACert: ca.CertPEM, CAKey: ca.KeyPEM, Cert: cert, Key: key}, nil
}

// backdate is how far before "now" certificates start to be valid, so a
// peer whose clock is slightly behind accepts them.
const backdate = 5 * time.Minute

// CA is a certificate authority that signs serving certificates.
type CA struct {
	// Cert is the parsed CA certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key *ecdsa.PrivateKey
	// CertPEM and KeyPEM are Cert and Key, PEM encoded.
	CertPEM, KeyPEM []byte
}

// NewCA creates a new ECDSA P-256 CA valid for validity from now.
func NewCA(validity time.Duration, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "portcullis-ca", Organization: []string{"portcullis"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemEncode("CERTIFICATE", der), KeyPEM: keyPEM}, nil
}

// Issue signs a new serving certificate (and key) for hosts, DNS names or IP
// addresses, valid for validity from now but never beyond the CA itself.
func (ca *CA) Issue(hosts []string, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("serving certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate serving key: %w", err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return pemEncode("CERTIFICATE", der), keyPEM, nil
}

// WriteDir writes tls.crt, tls.key and ca.crt into dir, each atomically
// (temporary file then rename) so a watcher never reads half a file.
func (b *Bundle) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for name, data := range map[string][]byte{"ca.crt": b.CACert, "tls.key": b.Key, "tls.crt": b.Cert} {
		if err := writeAtomic(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pemEncode("EC PRIVATE KEY", der), nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return n
}
