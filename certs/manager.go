package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Defaults of the Manager's durations.
const (
	// DefaultCAValidity is the CA's lifetime; it is replaced after two
	// thirds of it.
	DefaultCAValidity = 5 * 365 * 24 * time.Hour
	// DefaultServingValidity is the serving certificate's lifetime; it is
	// replaced after two thirds of it (60 of 90 days, as cert-manager does
	// with the same duration and renewBefore in the cert-manager overlay).
	DefaultServingValidity = 90 * 24 * time.Hour
	// DefaultCAPropagationDelay is how long a new CA sits in the caBundle
	// before any serving certificate it signed is published.
	DefaultCAPropagationDelay = 10 * time.Minute
	// DefaultResyncInterval is how often every replica re-reads the Secret.
	DefaultResyncInterval = time.Minute
	// DefaultRetryInterval is the first delay after a failed sync or while a
	// webhook configuration does not exist yet (doubling up to the resync
	// interval).
	DefaultRetryInterval = 2 * time.Second
	// DefaultStartTimeout bounds the first sync, before the server starts.
	DefaultStartTimeout = time.Minute
)

// The label that marks a Secret as Portcullis' own. A Secret of the
// configured name without it (another tool's, say cert-manager's after a
// switch of overlay) is never overwritten.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "portcullis"
)

// FieldManager names Portcullis' writes in managedFields.
const FieldManager = "portcullis"

// ErrSecretNotManaged is returned when the certificate Secret exists but is
// not marked as managed by Portcullis.
var ErrSecretNotManaged = errors.New("certificate secret is not managed by portcullis")

// Manager keeps the self-managed ("self-signed" mode) certificates: one
// Secret holds the CA (ca.crt, ca.key) and the serving pair (tls.crt,
// tls.key) and is the single source of truth for every replica.
//
// Each Sync, every replica:
//  1. reads the Secret, creating it when absent (a create that loses the race
//     to another replica re-reads the winner's);
//  2. renews what is due (see below) with an update carrying the
//     resourceVersion it read, so of two replicas renewing at once one
//     conflicts, re-reads and adopts the other's result;
//  3. writes the Secret's ca.crt into the caBundle of every webhook of the
//     Validating- and MutatingWebhookConfiguration named WebhookConfigName,
//     only where it differs (all replicas write the same bytes, so they
//     never fight);
//  4. publishes tls.crt, tls.key and ca.crt into Dir with an atomic
//     symlink swap, where the server's certificate watcher picks them up.
//
// Renewal: the serving certificate is reissued at two thirds of its life,
// and at once when it is unusable, does not cover the hosts, or does not
// verify under ca.crt. The CA is replaced at two thirds of its life (or at
// once when unusable): the new CA goes first in ca.crt, followed by the old
// ones until they expire, and starts signing only CAPropagationDelay later,
// when every replica has published the two-CA bundle; the serving
// certificate the old CA signed keeps being served until then.
//
// Broken contents of a Secret Portcullis manages (missing keys, unparsable
// PEM, a key that does not match its certificate) are regenerated: the
// serving pair alone when the CA is intact, so the caBundle does not move.
// A Secret without the ManagedByLabel is never modified: Sync returns
// ErrSecretNotManaged.
//
// A Manager is not safe for concurrent use: one goroutine calls Start then
// Run.
type Manager struct {
	// Client reaches the API server.
	Client kubernetes.Interface
	// Namespace and SecretName locate the Secret. The Service is in the
	// same namespace.
	Namespace, SecretName string
	// ServiceName is the Service in front of the server: the certificate
	// covers <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local.
	ServiceName string
	// ExtraHosts are further DNS names or IP addresses the certificate
	// covers (for a webhook reached by URL).
	ExtraHosts []string
	// WebhookConfigName names both webhook configurations.
	WebhookConfigName string
	// Dir receives tls.crt, tls.key and ca.crt.
	Dir string

	// Durations; zero means the Default* value.
	CAValidity, ServingValidity time.Duration
	CAPropagationDelay          time.Duration
	ResyncInterval              time.Duration
	RetryInterval               time.Duration
	StartTimeout                time.Duration

	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives what changed (never key material); nil discards.
	Log *zap.Logger

	missing       []string // webhook configurations not found by the last Sync
	failed        bool     // the last Sync failed
	loggedMissing []string // what logResult last said was missing
}

// SyncResult says what one Sync changed.
type SyncResult struct {
	// Created is true when this replica created the Secret.
	Created bool
	// Renewed lists why this replica updated the Secret (empty: it did not).
	Renewed []string
	// Patched lists the webhook configurations whose caBundle was written,
	// as "Kind/name".
	Patched []string
	// Missing lists the webhook configurations that do not exist (yet).
	Missing []string
	// Published is true when the files in Dir were replaced.
	Published bool
	// NotAfter is the serving certificate's expiry.
	NotAfter time.Time
}

// Hosts returns the names the serving certificate covers.
func (m *Manager) Hosts() []string {
	svc, ns := m.ServiceName, m.Namespace
	hosts := []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
	for _, h := range m.ExtraHosts {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// Start runs the first Sync, retrying transient failures for StartTimeout,
// so the server starts with a certificate on disk. A Secret that is not
// Portcullis' own fails at once.
func (m *Manager) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.or(m.StartTimeout, DefaultStartTimeout))
	defer cancel()
	wait := m.or(m.RetryInterval, DefaultRetryInterval)
	for {
		res, err := m.Sync(ctx)
		if err == nil {
			m.logResult(res)
			return nil
		}
		if errors.Is(err, ErrSecretNotManaged) {
			return err
		}
		m.log().Warn("certificate sync failed; retrying", zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return fmt.Errorf("first certificate sync: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, m.or(m.ResyncInterval, DefaultResyncInterval))
	}
}

// Run syncs every ResyncInterval until ctx is done; after a failure, or
// while a webhook configuration is missing, sooner (RetryInterval,
// doubling up to ResyncInterval).
func (m *Manager) Run(ctx context.Context) {
	resync := m.or(m.ResyncInterval, DefaultResyncInterval)
	retryWait := m.or(m.RetryInterval, DefaultRetryInterval)
	retrying := m.failed || len(m.missing) > 0
	wait := resync
	if retrying {
		wait = retryWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		res, err := m.Sync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log().Error("certificate sync failed; serving the certificate on disk", zap.Error(err))
		} else {
			m.logResult(res)
		}
		switch {
		case err == nil && len(res.Missing) == 0:
			retrying, wait = false, resync
		case !retrying:
			retrying, wait = true, retryWait
		default:
			wait = min(2*wait, resync)
		}
		timer.Reset(wait)
	}
}

// Sync brings the Secret, both caBundles and the files in Dir up to date
// once.
func (m *Manager) Sync(ctx context.Context) (*SyncResult, error) {
	res := &SyncResult{}
	m.failed = true
	var data map[string][]byte
	err := retry.OnError(retry.DefaultRetry, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		*res = SyncResult{}
		var err error
		data, err = m.syncSecret(ctx, res)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("certificate secret %s/%s: %w", m.Namespace, m.SecretName, err)
	}
	if err := m.syncCABundles(ctx, data[CAFile], res); err != nil {
		return res, err
	}
	if err := m.publish(data, res); err != nil {
		return res, err
	}
	if pair, err := tls.X509KeyPair(data[CertFile], data[KeyFile]); err == nil && pair.Leaf != nil {
		res.NotAfter = pair.Leaf.NotAfter
	}
	m.missing = res.Missing
	m.failed = false
	return res, nil
}

func (m *Manager) syncSecret(ctx context.Context, res *SyncResult) (map[string][]byte, error) {
	now := m.now()
	secrets := m.Client.CoreV1().Secrets(m.Namespace)
	sec, err := secrets.Get(ctx, m.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		data, _, err := m.plan(inspect(nil, now), now)
		if err != nil {
			return nil, err
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      m.SecretName,
				Namespace: m.Namespace,
				Labels:    map[string]string{ManagedByLabel: ManagedByValue, "app.kubernetes.io/name": "portcullis"},
			},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}, metav1.CreateOptions{FieldManager: FieldManager})
		if err != nil {
			// AlreadyExists: another replica won; the retry reads its Secret.
			return nil, err
		}
		res.Created = true
		return data, nil
	}
	if err != nil {
		return nil, err
	}
	if sec.Labels[ManagedByLabel] != ManagedByValue {
		return nil, fmt.Errorf("%w: %s/%s has no label %s=%s; delete it or name another Secret (--cert-secret-name)",
			ErrSecretNotManaged, sec.Namespace, sec.Name, ManagedByLabel, ManagedByValue)
	}
	data, reasons, err := m.plan(inspect(sec.Data, now), now)
	if err != nil {
		return nil, err
	}
	if len(reasons) == 0 {
		return sec.Data, nil
	}
	upd := sec.DeepCopy()
	if upd.Data == nil {
		upd.Data = map[string][]byte{}
	}
	for k, v := range data {
		upd.Data[k] = v
	}
	// The update carries the resourceVersion read above: if another replica
	// wrote in between, this one conflicts and the retry starts over from
	// what that replica wrote.
	if _, err := secrets.Update(ctx, upd, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return nil, err
	}
	res.Renewed = reasons
	return upd.Data, nil
}

// secretState is what a Secret's data holds, parsed at a given time.
type secretState struct {
	data map[string][]byte
	// signer is the CA whose key is ca.key; nil when unusable (signerErr).
	signer    *CA
	signerErr error
	// bundle holds the CA certificates of ca.crt that parse.
	bundle []*x509.Certificate
	// leaf is the serving certificate when tls.crt and tls.key parse and
	// match; else servingErr says why not.
	leaf       *x509.Certificate
	servingErr error
}

// inspect parses a Secret's data. Error texts name keys and parse failures,
// never contents.
func inspect(data map[string][]byte, now time.Time) secretState {
	st := secretState{data: data}
	for rest := data[CAFile]; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err == nil && c.IsCA {
			st.bundle = append(st.bundle, c)
		}
	}
	st.signer, st.signerErr = findSigner(data, st.bundle, now)
	switch pair, err := tls.X509KeyPair(data[CertFile], data[KeyFile]); {
	case len(data[CertFile]) == 0 || len(data[KeyFile]) == 0:
		st.servingErr = fmt.Errorf("%s or %s missing", CertFile, KeyFile)
	case err != nil:
		st.servingErr = fmt.Errorf("%s/%s: %w", CertFile, KeyFile, err)
	default:
		st.leaf = pair.Leaf
	}
	return st
}

func findSigner(data map[string][]byte, bundle []*x509.Certificate, now time.Time) (*CA, error) {
	keyPEM := data[CAKeyFile]
	if len(keyPEM) == 0 {
		return nil, fmt.Errorf("%s missing", CAKeyFile)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", CAKeyFile)
	}
	key, err := parseECKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeyFile, err)
	}
	for _, c := range bundle {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || !pub.Equal(&key.PublicKey) {
			continue
		}
		if !now.Before(c.NotAfter) {
			return nil, fmt.Errorf("CA expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
		}
		return &CA{Cert: c, Key: key, CertPEM: pemEncode("CERTIFICATE", c.Raw), KeyPEM: keyPEM}, nil
	}
	return nil, fmt.Errorf("no certificate in %s matches %s", CAFile, CAKeyFile)
}

func parseECKey(der []byte) (*ecdsa.PrivateKey, error) {
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("not an EC private key")
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an EC private key")
	}
	return ec, nil
}

// plan returns the data the Secret should hold at now, and why it differs
// from st (nil: it does not).
func (m *Manager) plan(st secretState, now time.Time) (map[string][]byte, []string, error) {
	var reasons []string
	signer := st.signer
	switch {
	case signer == nil && st.data == nil:
		reasons = append(reasons, "new secret")
	case signer == nil:
		reasons = append(reasons, "CA unusable ("+st.signerErr.Error()+")")
	case !now.Before(renewAt(signer.Cert)):
		reasons = append(reasons, "CA due for renewal (expires "+signer.Cert.NotAfter.UTC().Format(time.RFC3339)+")")
		signer = nil
	}
	if signer == nil {
		ca, err := NewCA(m.or(m.CAValidity, DefaultCAValidity), now)
		if err != nil {
			return nil, nil, err
		}
		signer = ca
	}

	// The signer first, then the other CAs that still verify something.
	bundle := []*x509.Certificate{signer.Cert}
	for _, c := range st.bundle {
		if now.Before(c.NotAfter) && !slices.ContainsFunc(bundle, func(b *x509.Certificate) bool { return b.Equal(c) }) {
			bundle = append(bundle, c)
		}
	}
	var bundlePEM []byte
	for _, c := range bundle {
		bundlePEM = append(bundlePEM, pemEncode("CERTIFICATE", c.Raw)...)
	}

	// A CA younger than the propagation delay may not yet be in every
	// caBundle the apiserver uses: its certificates are not published while
	// the current serving certificate is still good.
	settled := now.Sub(signer.Cert.NotBefore.Add(backdate)) >= m.or(m.CAPropagationDelay, DefaultCAPropagationDelay)
	hosts := m.Hosts()
	var why string
	switch leaf := st.leaf; {
	case st.data == nil:
	case leaf == nil:
		why = "serving certificate unusable (" + st.servingErr.Error() + ")"
	case !verifies(leaf, bundle, now):
		why = "serving certificate does not verify under the CA bundle"
	case !covers(leaf, hosts):
		why = "serving certificate does not cover " + fmt.Sprint(hosts)
		// Keep the names it had: during a rollout that changes the names,
		// replicas of both versions are then satisfied and do not reissue
		// in turn.
		hosts = union(hosts, leaf)
	case settled && leaf.CheckSignatureFrom(signer.Cert) != nil:
		why = "serving certificate signed by a previous CA"
	case settled && !now.Before(renewAt(leaf)):
		why = "serving certificate due for renewal (expires " + leaf.NotAfter.UTC().Format(time.RFC3339) + ")"
	}
	certPEM, keyPEM := st.data[CertFile], st.data[KeyFile]
	if why != "" || st.data == nil {
		if why != "" {
			reasons = append(reasons, why)
		}
		var err error
		certPEM, keyPEM, err = signer.Issue(hosts, m.or(m.ServingValidity, DefaultServingValidity), now)
		if err != nil {
			return nil, nil, err
		}
	}
	if len(reasons) == 0 && !bytes.Equal(bundlePEM, st.data[CAFile]) {
		reasons = append(reasons, "CA bundle rewritten (expired or unreadable CAs dropped)")
	}
	return map[string][]byte{CAFile: bundlePEM, CAKeyFile: signer.KeyPEM, CertFile: certPEM, KeyFile: keyPEM}, reasons, nil
}

// renewAt is two thirds into c's validity.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

func verifies(leaf *x509.Certificate, bundle []*x509.Certificate, now time.Time) bool {
	roots := x509.NewCertPool()
	for _, c := range bundle {
		roots.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

func covers(leaf *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func union(hosts []string, leaf *x509.Certificate) []string {
	out := slices.Clone(hosts)
	for _, h := range leaf.DNSNames {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	for _, ip := range leaf.IPAddresses {
		if !slices.ContainsFunc(out, func(h string) bool { return net.ParseIP(h).Equal(ip) }) {
			out = append(out, ip.String())
		}
	}
	return out
}

// syncCABundles writes bundle into every webhook of both configurations
// where it differs.
func (m *Manager) syncCABundles(ctx context.Context, bundle []byte, res *SyncResult) error {
	admission := m.Client.AdmissionregistrationV1()
	name := m.WebhookConfigName
	type target struct {
		kind  string
		get   func() (metav1.Object, [][]byte, []string, error)
		patch func(data []byte) error
	}
	targets := []target{
		{
			kind: "ValidatingWebhookConfiguration",
			get: func() (metav1.Object, [][]byte, []string, error) {
				cfg, err := admission.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return nil, nil, nil, err
				}
				var bundles [][]byte
				var names []string
				for _, w := range cfg.Webhooks {
					bundles = append(bundles, w.ClientConfig.CABundle)
					names = append(names, w.Name)
				}
				return cfg, bundles, names, nil
			},
			patch: func(data []byte) error {
				_, err := admission.ValidatingWebhookConfigurations().Patch(ctx, name, types.StrategicMergePatchType, data, metav1.PatchOptions{FieldManager: FieldManager})
				return err
			},
		},
		{
			kind: "MutatingWebhookConfiguration",
			get: func() (metav1.Object, [][]byte, []string, error) {
				cfg, err := admission.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return nil, nil, nil, err
				}
				var bundles [][]byte
				var names []string
				for _, w := range cfg.Webhooks {
					bundles = append(bundles, w.ClientConfig.CABundle)
					names = append(names, w.Name)
				}
				return cfg, bundles, names, nil
			},
			patch: func(data []byte) error {
				_, err := admission.MutatingWebhookConfigurations().Patch(ctx, name, types.StrategicMergePatchType, data, metav1.PatchOptions{FieldManager: FieldManager})
				return err
			},
		},
	}
	for _, t := range targets {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			obj, bundles, names, err := t.get()
			if apierrors.IsNotFound(err) {
				res.Missing = append(res.Missing, t.kind+"/"+name)
				return nil
			}
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(bundles, func(b []byte) bool { return !bytes.Equal(b, bundle) }) {
				return nil
			}
			data, err := caBundlePatch(obj.GetResourceVersion(), names, bundle)
			if err != nil {
				return err
			}
			if err := t.patch(data); err != nil {
				return err
			}
			res.Patched = append(res.Patched, t.kind+"/"+name)
			return nil
		})
		if err != nil {
			return fmt.Errorf("caBundle of %s %s: %w", t.kind, name, err)
		}
	}
	return nil
}

// caBundlePatch is a strategic merge patch (webhooks merge by name) that
// sets only clientConfig.caBundle of each named webhook, leaving every other
// field, including ones this client does not know, as it is. The
// resourceVersion makes it conditional: a concurrent change conflicts.
func caBundlePatch(resourceVersion string, names []string, bundle []byte) ([]byte, error) {
	type clientConfig struct {
		CABundle []byte `json:"caBundle"`
	}
	type webhook struct {
		Name         string       `json:"name"`
		ClientConfig clientConfig `json:"clientConfig"`
	}
	patch := struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Webhooks []webhook `json:"webhooks"`
	}{}
	patch.Metadata.ResourceVersion = resourceVersion
	for _, n := range names {
		patch.Webhooks = append(patch.Webhooks, webhook{Name: n, ClientConfig: clientConfig{CABundle: bundle}})
	}
	return json.Marshal(patch)
}

// publish writes the serving pair and CA bundle into Dir when they differ
// from what is there. The CA key never leaves the Secret.
func (m *Manager) publish(data map[string][]byte, res *SyncResult) error {
	files := map[string][]byte{CertFile: data[CertFile], KeyFile: data[KeyFile], CAFile: data[CAFile]}
	same := true
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(m.Dir, name))
		if err != nil || !bytes.Equal(got, want) {
			same = false
			break
		}
	}
	if same {
		return nil
	}
	if err := PublishDir(m.Dir, files); err != nil {
		return err
	}
	res.Published = true
	return nil
}

func (m *Manager) logResult(res *SyncResult) {
	log := m.log()
	secret := zap.String("secret", m.Namespace+"/"+m.SecretName)
	if res.Created {
		log.Info("created certificate secret", secret, zap.Strings("hosts", m.Hosts()))
	}
	if len(res.Renewed) > 0 {
		log.Info("renewed certificates in secret", secret, zap.Strings("reasons", res.Renewed))
	}
	if len(res.Patched) > 0 {
		log.Info("wrote caBundle", zap.Strings("configurations", res.Patched))
	}
	if res.Published {
		log.Info("published serving certificate", zap.String("dir", m.Dir), zap.Time("notAfter", res.NotAfter))
	}
	if !slices.Equal(res.Missing, m.loggedMissing) {
		if len(res.Missing) > 0 {
			log.Info("webhook configurations not found; retrying until they exist", zap.Strings("configurations", res.Missing))
		}
		m.loggedMissing = res.Missing
	}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *zap.Logger {
	if m.Log != nil {
		return m.Log
	}
	return zap.NewNop()
}

func (m *Manager) or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
