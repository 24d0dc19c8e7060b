package webhooks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// DefaultCertExpiryWindow is how long before the serving certificate expires
// /readyz turns not ready. Rotation (cert-manager renews at two thirds of
// the lifetime, --cert-mode=self-signed 30 days ahead) should have happened
// long before; a certificate this close to its end means rotation is
// broken, and the probe says so while the pod can still be inspected.
const DefaultCertExpiryWindow = 10 * time.Minute

// servingCert is the certificate the TLS listener presents. It takes its
// pairs from controller-runtime's certwatcher (which re-reads the files on
// every change, symlink swaps included) but adopts one only when it is
// currently valid: an expired or not-yet-valid pair written over a good one
// is refused, logged and counted, and the good one keeps being served.
type servingCert struct {
	watcher *certwatcher.CertWatcher
	now     func() time.Time
	log     *zap.Logger
	metrics *Metrics

	mu   sync.RWMutex
	cert *tls.Certificate
	leaf *x509.Certificate
}

// newServingCert loads the pair and refuses one that is not valid now.
func newServingCert(certFile, keyFile string, now func() time.Time, log *zap.Logger, m *Metrics) (*servingCert, error) {
	w, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	sc := &servingCert{watcher: w, now: now, log: log, metrics: m}
	cert, _ := w.GetCertificate(nil)
	leaf, err := checkPair(cert, now())
	if err != nil {
		return nil, err
	}
	sc.adopt(cert, leaf)
	// The callback runs after every change the watcher reads; it takes the
	// watcher's latest pair rather than its argument, so that two changes
	// in quick succession cannot be applied out of order. (In a goroutine:
	// RegisterCallback calls it once under the watcher's lock.)
	w.RegisterCallback(func(tls.Certificate) { go sc.update() })
	return sc, nil
}

// checkPair parses the leaf and checks it is valid at now.
func checkPair(cert *tls.Certificate, now time.Time) (*x509.Certificate, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return leaf, nil
}

func (sc *servingCert) update() {
	cert, _ := sc.watcher.GetCertificate(nil)
	sc.mu.RLock()
	same := sc.cert == cert
	sc.mu.RUnlock()
	if same {
		return
	}
	leaf, err := checkPair(cert, sc.now())
	if err != nil {
		if sc.metrics != nil {
			sc.metrics.CertificateRejected.Inc()
		}
		sc.mu.RLock()
		kept := sc.leaf.NotAfter
		sc.mu.RUnlock()
		sc.log.Error("new serving certificate refused; keeping the current one", zap.Error(err), zap.Time("currentNotAfter", kept))
		return
	}
	sc.adopt(cert, leaf)
	sc.log.Info("serving certificate rotated", zap.Time("notAfter", leaf.NotAfter), zap.String("serial", leaf.SerialNumber.String()))
}

func (sc *servingCert) adopt(cert *tls.Certificate, leaf *x509.Certificate) {
	sc.mu.Lock()
	sc.cert, sc.leaf = cert, leaf
	sc.mu.Unlock()
	if sc.metrics != nil {
		sc.metrics.CertificateExpiry.Set(float64(leaf.NotAfter.Unix()))
	}
}

// GetCertificate is the tls.Config hook.
func (sc *servingCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.cert, nil
}

// ready reports an error when the served certificate expires within window
// (or has expired).
func (sc *servingCert) ready(window time.Duration) error {
	sc.mu.RLock()
	notAfter := sc.leaf.NotAfter
	sc.mu.RUnlock()
	now := sc.now()
	switch {
	case now.After(notAfter):
		return fmt.Errorf("serving certificate expired at %s", notAfter.UTC().Format(time.RFC3339))
	case now.Add(window).After(notAfter):
		return fmt.Errorf("serving certificate expires at %s, within %v", notAfter.UTC().Format(time.RFC3339), window)
	}
	return nil
}
