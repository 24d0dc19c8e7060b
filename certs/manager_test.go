package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	testNS     = "portcullis-system"
	testSecret = "portcullis-tls"
	testConfig = "portcullis"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newCluster returns a fake clientset holding both webhook configurations
// (the validating one with two webhooks) that, like the apiserver, sets
// resourceVersions and refuses writes carrying a stale one.
func newCluster(t *testing.T) *fake.Clientset {
	t.Helper()
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: testConfig, ResourceVersion: "1"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "validate.portcullis.dev", SideEffects: ptrTo(admissionregistrationv1.SideEffectClassNone)},
			{Name: "validate-more.portcullis.dev", SideEffects: ptrTo(admissionregistrationv1.SideEffectClassNone)},
		},
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: testConfig, ResourceVersion: "1"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "mutate.portcullis.dev"}},
	}
	cs := fake.NewClientset(vwc, mwc)
	var rv atomic.Int64
	rv.Store(100)
	tracker := cs.Tracker()
	def := k8stesting.ObjectReaction(tracker)
	cs.PrependReactor("*", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		var name, sent string
		// By verb: an UpdateAction is a CreateAction too.
		switch action.GetVerb() {
		case "create":
			m, _ := meta.Accessor(action.(k8stesting.CreateAction).GetObject())
			m.SetResourceVersion("")
			name = m.GetName()
		case "update":
			m, _ := meta.Accessor(action.(k8stesting.UpdateAction).GetObject())
			name, sent = m.GetName(), m.GetResourceVersion()
		case "patch":
			a := action.(k8stesting.PatchAction)
			var p struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(a.GetPatch(), &p); err != nil {
				return true, nil, apierrors.NewBadRequest(err.Error())
			}
			name, sent = a.GetName(), p.Metadata.ResourceVersion
		default:
			return false, nil, nil
		}
		gvr, ns := action.GetResource(), action.GetNamespace()
		if action.GetVerb() != "create" {
			cur, err := tracker.Get(gvr, ns, name)
			if err != nil {
				return true, nil, err
			}
			m, _ := meta.Accessor(cur)
			if sent != "" && sent != m.GetResourceVersion() {
				return true, nil, apierrors.NewConflict(gvr.GroupResource(), name, errors.New("the object has been modified"))
			}
		}
		handled, obj, err := def(action)
		if err != nil || !handled {
			return handled, obj, err
		}
		m, _ := meta.Accessor(obj)
		m.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
		if err := tracker.Update(gvr, obj, ns); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	})
	return cs
}

func ptrTo[T any](v T) *T { return &v }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

func newManager(t *testing.T, cs *fake.Clientset, clk *clock) *Manager {
	t.Helper()
	return &Manager{
		Client:            cs,
		Namespace:         testNS,
		SecretName:        testSecret,
		ServiceName:       "portcullis",
		WebhookConfigName: testConfig,
		Dir:               t.TempDir(),
		Now:               clk.Now,
	}
}

func getSecret(t *testing.T, cs *fake.Clientset) *corev1.Secret {
	t.Helper()
	s, err := cs.CoreV1().Secrets(testNS).Get(context.Background(), testSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// caBundles returns the caBundle of every webhook, validating then mutating.
func caBundles(t *testing.T, cs *fake.Clientset) [][]byte {
	t.Helper()
	ctx := context.Background()
	v, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, testConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, testConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range v.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	for _, w := range m.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

// writes counts the successful-or-not write actions per "verb resource".
func writes(cs *fake.Clientset) map[string]int {
	n := map[string]int{}
	for _, a := range cs.Actions() {
		if v := a.GetVerb(); v == "create" || v == "update" || v == "patch" {
			n[v+" "+a.GetResource().Resource]++
		}
	}
	return n
}

func parseCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func leafOf(t *testing.T, data map[string][]byte) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(data[CertFile], data[KeyFile])
	if err != nil {
		t.Fatalf("serving pair: %v", err)
	}
	return pair.Leaf
}

// verifyUnder checks the serving certificate in data verifies for host
// under the CA bundle.
func verifyUnder(leaf *x509.Certificate, bundle []byte, host string, now time.Time) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return errors.New("empty CA bundle")
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now})
	return err
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range []string{CertFile, KeyFile, CAFile, CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil {
			out[n] = b
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return out
}

func sync1(t *testing.T, m *Manager) *SyncResult {
	t.Helper()
	res, err := m.Sync(context.Background())
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return res
}

func TestSyncCreates(t *testing.T) {
	cs := newCluster(t)
	m := newManager(t, cs, &clock{now: t0})
	res := sync1(t, m)

	s := getSecret(t, cs)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("type = %q, want %q", s.Type, corev1.SecretTypeTLS)
	}
	if got := s.Labels[ManagedByLabel]; got != ManagedByValue {
		t.Errorf("label %s = %q", ManagedByLabel, got)
	}
	var keys []string
	for k := range s.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{CAFile, CAKeyFile, CertFile, KeyFile}; !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	cas := parseCerts(t, s.Data[CAFile])
	if len(cas) != 1 || !cas[0].IsCA {
		t.Fatalf("ca.crt holds %d certificates, want one CA", len(cas))
	}
	if got, want := cas[0].NotAfter, t0.Add(DefaultCAValidity); !got.Equal(want) {
		t.Errorf("CA NotAfter = %s, want %s", got, want)
	}
	leaf := leafOf(t, s.Data)
	wantHosts := []string{"portcullis", "portcullis.portcullis-system", "portcullis.portcullis-system.svc", "portcullis.portcullis-system.svc.cluster.local"}
	if !slices.Equal(leaf.DNSNames, wantHosts) || len(leaf.IPAddresses) != 0 {
		t.Errorf("SANs = %v %v, want %v", leaf.DNSNames, leaf.IPAddresses, wantHosts)
	}
	if got, want := leaf.NotAfter, t0.Add(DefaultServingValidity); !got.Equal(want) {
		t.Errorf("serving NotAfter = %s, want %s", got, want)
	}
	for _, h := range wantHosts {
		if err := verifyUnder(leaf, s.Data[CAFile], h, t0); err != nil {
			t.Errorf("verify %s: %v", h, err)
		}
	}
	if _, err := findSigner(s.Data, cas, t0); err != nil {
		t.Errorf("ca.key: %v", err)
	}
	for i, b := range caBundles(t, cs) {
		if !bytes.Equal(b, s.Data[CAFile]) {
			t.Errorf("webhook %d caBundle is not ca.crt", i)
		}
	}
	files := readDir(t, m.Dir)
	for _, n := range []string{CertFile, KeyFile, CAFile} {
		if !bytes.Equal(files[n], s.Data[n]) {
			t.Errorf("%s on disk differs from the Secret", n)
		}
	}
	if _, ok := files[CAKeyFile]; ok {
		t.Errorf("the CA key was written to disk")
	}
	want := &SyncResult{
		Created:   true,
		Patched:   []string{"ValidatingWebhookConfiguration/portcullis", "MutatingWebhookConfiguration/portcullis"},
		Published: true,
		NotAfter:  t0.Add(DefaultServingValidity),
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}
}

func TestSyncIdempotent(t *testing.T) {
	cs := newCluster(t)
	clk := &clock{now: t0}
	m := newManager(t, cs, clk)
	sync1(t, m)
	before := writes(cs)
	clk.Set(t0.Add(59 * 24 * time.Hour))
	res := sync1(t, m)
	if got := writes(cs); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("second sync wrote: %v, before %v", got, before)
	}
	want := &SyncResult{NotAfter: t0.Add(DefaultServingValidity)}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}
}

// TestCABundleOnlyWhenChanged: a caBundle is written only where it differs
// from the Secret, and a configuration that does not exist yet is reported
// (not an error) and patched once it does.
func TestCABundleOnlyWhenChanged(t *testing.T) {
	ctx := context.Background()
	cs := newCluster(t)
	if err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, testConfig, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, cs, &clock{now: t0})
	res := sync1(t, m)
	if want := []string{"ValidatingWebhookConfiguration/portcullis"}; !slices.Equal(res.Patched, want) {
		t.Errorf("patched %v, want %v", res.Patched, want)
	}
	if want := []string{"MutatingWebhookConfiguration/portcullis"}; !slices.Equal(res.Missing, want) {
		t.Errorf("missing %v, want %v", res.Missing, want)
	}

	// Created later (kubectl apply of the rest), with an empty caBundle.
	_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: testConfig},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "mutate.portcullis.dev"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res = sync1(t, m)
	if want := []string{"MutatingWebhookConfiguration/portcullis"}; !slices.Equal(res.Patched, want) || len(res.Missing) != 0 {
		t.Errorf("patched %v missing %v, want patched %v", res.Patched, res.Missing, want)
	}

	// One webhook drifted (someone applied an old caBundle): only its
	// configuration is written, and other fields are left alone.
	v, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, testConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v.Webhooks[1].ClientConfig.CABundle = []byte("stale")
	v.Webhooks[1].TimeoutSeconds = ptrTo[int32](3)
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := writes(cs)["patch validatingwebhookconfigurations"]
	res = sync1(t, m)
	if want := []string{"ValidatingWebhookConfiguration/portcullis"}; !slices.Equal(res.Patched, want) {
		t.Errorf("patched %v, want %v", res.Patched, want)
	}
	if got := writes(cs)["patch validatingwebhookconfigurations"] - before; got != 1 {
		t.Errorf("%d patches, want 1", got)
	}
	ca := getSecret(t, cs).Data[CAFile]
	for i, b := range caBundles(t, cs) {
		if !bytes.Equal(b, ca) {
			t.Errorf("webhook %d caBundle is not ca.crt", i)
		}
	}
	v, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, testConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Webhooks[1].TimeoutSeconds; got == nil || *got != 3 {
		t.Errorf("timeoutSeconds = %v, want 3 (untouched)", got)
	}

	// In step: nothing written.
	before = writes(cs)["patch validatingwebhookconfigurations"] + writes(cs)["patch mutatingwebhookconfigurations"]
	if res := sync1(t, m); len(res.Patched) != 0 {
		t.Errorf("patched %v, want nothing", res.Patched)
	}
	if got := writes(cs)["patch validatingwebhookconfigurations"] + writes(cs)["patch mutatingwebhookconfigurations"]; got != before {
		t.Errorf("%d patches after an in-step sync, want %d", got, before)
	}
}

// TestCABundlePatchConflict: a configuration changed between read and patch
// is re-read and patched again.
func TestCABundlePatchConflict(t *testing.T) {
	ctx := context.Background()
	cs := newCluster(t)
	var once atomic.Bool
	cs.PrependReactor("patch", "validatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		if once.CompareAndSwap(false, true) {
			return true, nil, apierrors.NewConflict(admissionregistrationv1.Resource("validatingwebhookconfigurations"), testConfig, errors.New("modified"))
		}
		return false, nil, nil
	})
	m := newManager(t, cs, &clock{now: t0})
	sync1(t, m)
	if got := writes(cs)["patch validatingwebhookconfigurations"]; got != 2 {
		t.Errorf("%d patches, want 2 (one conflict, one retry)", got)
	}
	ca := getSecret(t, cs).Data[CAFile]
	for i, b := range caBundles(t, cs) {
		if !bytes.Equal(b, ca) {
			t.Errorf("webhook %d caBundle is not ca.crt", i)
		}
	}
	_ = ctx
}

// TestReplicasRaceOnCreate: the Secret appears (another replica) between
// this replica's read and its create: the create fails, and this replica
// adopts the other's certificates rather than overwriting them.
func TestReplicasRaceOnCreate(t *testing.T) {
	cs := newCluster(t)
	clk := &clock{now: t0}
	// The rival's Secret, as its own Sync would have created it.
	rivalCS := newCluster(t)
	sync1(t, newManager(t, rivalCS, clk))
	rival := getSecret(t, rivalCS)
	rival.ResourceVersion = ""
	var raced atomic.Bool
	cs.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if raced.CompareAndSwap(false, true) {
			if err := cs.Tracker().Add(rival.DeepCopy()); err != nil {
				t.Error(err)
			}
		}
		return false, nil, nil
	})
	m := newManager(t, cs, clk)
	res := sync1(t, m)
	if res.Created || len(res.Renewed) != 0 {
		t.Errorf("created=%v renewed=%v, want the rival's Secret adopted", res.Created, res.Renewed)
	}
	got := getSecret(t, cs)
	for _, k := range []string{CertFile, KeyFile, CAFile, CAKeyFile} {
		if !bytes.Equal(got.Data[k], rival.Data[k]) {
			t.Errorf("Secret %s is not the rival's", k)
		}
	}
	files := readDir(t, m.Dir)
	if !bytes.Equal(files[CertFile], rival.Data[CertFile]) || !bytes.Equal(files[KeyFile], rival.Data[KeyFile]) {
		t.Errorf("published pair is not the rival's")
	}
	if n := writes(cs)["create secrets"]; n != 1 {
		t.Errorf("%d creates, want 1", n)
	}
}

// TestReplicasConcurrent: several replicas start at once on an empty
// cluster; they end up with one Secret, the same files and one caBundle.
func TestReplicasConcurrent(t *testing.T) {
	cs := newCluster(t)
	clk := &clock{now: t0}
	ms := make([]*Manager, 4)
	for i := range ms {
		ms[i] = newManager(t, cs, clk)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Sync(context.Background())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	s := getSecret(t, cs)
	for i, m := range ms {
		files := readDir(t, m.Dir)
		for _, n := range []string{CertFile, KeyFile, CAFile} {
			if !bytes.Equal(files[n], s.Data[n]) {
				t.Errorf("replica %d: %s differs from the Secret", i, n)
			}
		}
	}
	for i, b := range caBundles(t, cs) {
		if !bytes.Equal(b, s.Data[CAFile]) {
			t.Errorf("webhook %d caBundle is not ca.crt", i)
		}
	}
	if n := writes(cs)["update secrets"]; n != 0 {
		t.Errorf("%d Secret updates, want 0", n)
	}
}

func TestServingRotation(t *testing.T) {
	cs := newCluster(t)
	clk := &clock{now: t0}
	m := newManager(t, cs, clk)
	sync1(t, m)
	first := getSecret(t, cs)

	at := t0.Add(61 * 24 * time.Hour)
	clk.Set(at)
	res := sync1(t, m)
	want := &SyncResult{
		Renewed:   []string{"serving certificate due for renewal (expires 2026-05-30T12:00:00Z)"},
		Published: true,
		NotAfter:  at.Add(DefaultServingValidity),
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	s := getSecret(t, cs)
	if !bytes.Equal(s.Data[CAFile], first.Data[CAFile]) || !bytes.Equal(s.Data[CAKeyFile], first.Data[CAKeyFile]) {
		t.Errorf("the CA changed with the serving certificate")
	}
	if bytes.Equal(s.Data[KeyFile], first.Data[KeyFile]) {
		t.Errorf("the serving key was not replaced")
	}
	if err := verifyUnder(leafOf(t, s.Data), first.Data[CAFile], "portcullis.portcullis-system.svc", at); err != nil {
		t.Errorf("new serving certificate under the old caBundle: %v", err)
	}
	if files := readDir(t, m.Dir); !bytes.Equal(files[CertFile], s.Data[CertFile]) {
		t.Errorf("rotated certificate not published")
	}
}

// TestRotationRace: two replicas find the serving certificate due at the
// same moment; the second one's update conflicts, it re-reads, finds the
// first one's fresh certificate and adopts it: one rotation, not two.
func TestRotationRace(t *testing.T) {
	cs := newCluster(t)
	clk := &clock{now: t0}
	m := newManager(t, cs, clk)
	sync1(t, m)
	at := t0.Add(61 * 24 * time.Hour)
	clk.Set(at)

	// The other replica's rotation, computed on a copy of the cluster.
	otherCS := newCluster(t)
	cur := getSecret(t, cs)
	cur.ResourceVersion = ""
	if err := otherCS.Tracker().Add(cur); err != nil {
		t.Fatal(err)
	}
	sync1(t, newManager(t, otherCS, clk))
	rotated := getSecret(t, otherCS)

	var raced atomic.Bool
	cs.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if raced.CompareAndSwap(false, true) {
			// Lands first, with a new resourceVersion. (The fake's lock
			// is held here: go to the tracker, not the client.)
			obj, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("secrets"), testNS, testSecret)
			if err != nil {
				t.Error(err)
				return false, nil, nil
			}
			s := obj.(*corev1.Secret).DeepCopy()
			s.Data = rotated.Data
			s.ResourceVersion = "999999"
			if err := cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("secrets"), s, testNS); err != nil {
				t.Error(err)
			}
		}
		return false, nil, nil
	})
	res := sync1(t, m)
	if len(res.Renewed) != 0 {
		t.Errorf("renewed %v, want the other replica's rotation adopted", res.Renewed)
	}
	s := getSecret(t, cs)
	if !bytes.Equal(s.Data[CertFile], rotated.Data[CertFile]) {
		t.Errorf("Secret does not hold the other replica's certificate")
	}
	if files := readDir(t, m.Dir); !bytes.Equal(files[CertFile], rotated.Data[CertFile]) {
		t.Errorf("published certificate is not the other replica's")
	}
	if n := writes(cs)["update secrets"]; n != 1 {
		t.Errorf("%d update attempts, want 1 (conflicted, then nothing to do)", n)
	}
}

// TestCARotation walks a whole CA lifetime in steps (short validities), with
// a second replica that lags one step behind, and checks the property that
// matters: whatever a replica serves verifies under the caBundle the
// webhook configurations carried a propagation delay earlier (the
// apiserver and the other replicas have had time to see it).
func TestCARotation(t *testing.T) {
	cs := newCluster(t)
	clk := &clock{now: t0}
	const step = time.Hour
	cfg := func(m *Manager) *Manager {
		m.CAValidity = 30 * 24 * time.Hour
		m.ServingValidity = 3 * 24 * time.Hour
		m.CAPropagationDelay = 2 * step
		return m
	}
	a, b := cfg(newManager(t, cs, clk)), cfg(newManager(t, cs, clk))
	type snapshot struct {
		at     time.Time
		bundle []byte
	}
	var history []snapshot
	var firstCA *x509.Certificate
	var events []string
	end := t0.Add(31 * 24 * time.Hour)
	for now := t0; now.Before(end); now = now.Add(step) {
		clk.Set(now)
		for name, m := range map[string]*Manager{"a": a, "b": b} {
			res := sync1(t, m)
			for _, r := range res.Renewed {
				events = append(events, name+": "+r)
			}
		}
		bundles := caBundles(t, cs)
		history = append(history, snapshot{now, bundles[0]})
		if firstCA == nil {
			firstCA = parseCerts(t, bundles[0])[0]
		}
		// The bundle a propagation delay ago.
		var old []byte
		for _, s := range history {
			if !s.at.After(now.Add(-a.CAPropagationDelay)) {
				old = s.bundle
			}
		}
		if old == nil {
			continue
		}
		for name, m := range map[string]*Manager{"a": a, "b": b} {
			files := readDir(t, m.Dir)
			if err := verifyUnder(leafOf(t, files), old, "portcullis.portcullis-system.svc", now); err != nil {
				t.Fatalf("%s at %s: served certificate does not verify under the caBundle of %s: %v", name, now, now.Add(-a.CAPropagationDelay), err)
			}
		}
	}
	final := parseCerts(t, caBundles(t, cs)[0])
	if len(final) != 1 || final[0].Equal(firstCA) {
		t.Errorf("final caBundle holds %d CAs (first CA still there: %v), want only the new one", len(final), len(final) > 0 && slices.ContainsFunc(final, firstCA.Equal))
	}
	// The CA changed exactly once, at two thirds of its life; the old one
	// left the bundle when it expired.
	var caEvents []string
	for _, e := range events {
		if bytes.Contains([]byte(e), []byte("CA")) {
			caEvents = append(caEvents, e[3:])
		}
	}
	want := []string{
		"CA due for renewal (expires 2026-03-31T12:00:00Z)",
		"serving certificate signed by a previous CA",
		"CA bundle rewritten (expired or unreadable CAs dropped)",
	}
	if !slices.Equal(caEvents, want) {
		t.Errorf("CA events = %q, want %q", caEvents, want)
	}
}

// TestBrokenSecret: what Sync does with a Secret whose contents are broken.
// Decision: a Secret carrying the managed-by label is Portcullis' own and is
// repaired, reissuing as little as possible (the serving pair alone when the
// CA is intact, so the caBundle stays); one without the label is someone
// else's and is never touched (ErrSecretNotManaged).
func TestBrokenSecret(t *testing.T) {
	tests := map[string]struct {
		corrupt func(s *corev1.Secret)
		reasons []string
		// newCA: the CA (ca.key) is replaced; bundle: CAs in ca.crt after.
		newCA  bool
		bundle int
		err    string
	}{
		"tls.key missing": {
			corrupt: func(s *corev1.Secret) { delete(s.Data, KeyFile) },
			reasons: []string{"serving certificate unusable (tls.crt or tls.key missing)"},
			bundle:  1,
		},
		"tls.crt not PEM": {
			corrupt: func(s *corev1.Secret) { s.Data[CertFile] = []byte("garbage") },
			reasons: []string{"serving certificate unusable (tls.crt/tls.key: tls: failed to find any PEM data in certificate input)"},
			bundle:  1,
		},
		"tls.key of another certificate": {
			corrupt: func(s *corev1.Secret) { s.Data[KeyFile] = s.Data[CAKeyFile] },
			reasons: []string{"serving certificate unusable (tls.crt/tls.key: tls: private key does not match public key)"},
			bundle:  1,
		},
		"serving certificate for other names": {
			corrupt: func(s *corev1.Secret) {
				ca, err := findSigner(s.Data, parseCerts(t, s.Data[CAFile]), t0)
				if err != nil {
					t.Fatal(err)
				}
				s.Data[CertFile], s.Data[KeyFile], err = ca.Issue([]string{"old.portcullis-system.svc"}, time.Hour, t0)
				if err != nil {
					t.Fatal(err)
				}
			},
			reasons: []string{"serving certificate does not cover [portcullis portcullis.portcullis-system portcullis.portcullis-system.svc portcullis.portcullis-system.svc.cluster.local]"},
			bundle:  1,
		},
		"ca.key missing": {
			corrupt: func(s *corev1.Secret) { delete(s.Data, CAKeyFile) },
			// The serving certificate still verifies under the old CA,
			// kept in the bundle: it stays until the new CA has settled.
			reasons: []string{"CA unusable (ca.key missing)"},
			newCA:   true,
			bundle:  2,
		},
		"ca.key not PEM": {
			corrupt: func(s *corev1.Secret) { s.Data[CAKeyFile] = []byte("garbage") },
			reasons: []string{"CA unusable (ca.key: no PEM block)"},
			newCA:   true,
			bundle:  2,
		},
		"ca.crt not PEM": {
			corrupt: func(s *corev1.Secret) { s.Data[CAFile] = []byte("garbage") },
			reasons: []string{
				"CA unusable (no certificate in ca.crt matches ca.key)",
				"serving certificate does not verify under the CA bundle",
			},
			newCA:  true,
			bundle: 1,
		},
		"empty": {
			corrupt: func(s *corev1.Secret) { s.Data = nil },
			reasons: []string{"new secret"},
			newCA:   true,
			bundle:  1,
		},
		"not managed by portcullis": {
			corrupt: func(s *corev1.Secret) { delete(s.Labels, ManagedByLabel) },
			err:     "certificate secret portcullis-system/portcullis-tls: certificate secret is not managed by portcullis: portcullis-system/portcullis-tls has no label app.kubernetes.io/managed-by=portcullis; delete it or name another Secret (--cert-secret-name)",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			cs := newCluster(t)
			clk := &clock{now: t0}
			m := newManager(t, cs, clk)
			sync1(t, m)
			good := getSecret(t, cs)
			broken := good.DeepCopy()
			tt.corrupt(broken)
			if _, err := cs.CoreV1().Secrets(testNS).Update(ctx, broken, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			clk.Set(t0.Add(time.Hour))
			res, err := m.Sync(ctx)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if !errors.Is(err, ErrSecretNotManaged) {
					t.Errorf("err is not ErrSecretNotManaged")
				}
				if s := getSecret(t, cs); !slices.Equal(s.Data[CertFile], broken.Data[CertFile]) {
					t.Errorf("someone else's Secret was modified")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Renewed, tt.reasons) {
				t.Errorf("reasons = %q, want %q", res.Renewed, tt.reasons)
			}
			s := getSecret(t, cs)
			if got := !bytes.Equal(s.Data[CAKeyFile], good.Data[CAKeyFile]); got != tt.newCA {
				t.Errorf("CA replaced = %v, want %v", got, tt.newCA)
			}
			if got := len(parseCerts(t, s.Data[CAFile])); got != tt.bundle {
				t.Errorf("ca.crt holds %d CAs, want %d", got, tt.bundle)
			}
			if _, err := findSigner(s.Data, parseCerts(t, s.Data[CAFile]), clk.Now()); err != nil {
				t.Errorf("repaired CA: %v", err)
			}
			if err := verifyUnder(leafOf(t, s.Data), s.Data[CAFile], "portcullis.portcullis-system.svc.cluster.local", clk.Now()); err != nil {
				t.Errorf("repaired serving certificate: %v", err)
			}
			for i, b := range caBundles(t, cs) {
				if !bytes.Equal(b, s.Data[CAFile]) {
					t.Errorf("webhook %d caBundle is not ca.crt", i)
				}
			}
			// Repaired for good: the next sync changes nothing.
			if res := sync1(t, m); len(res.Renewed) != 0 {
				t.Errorf("second sync renewed %q", res.Renewed)
			}
		})
	}
}

// TestHostsOnRollout: replicas of two versions with different service names
// run side by side during a rollout; the reissued certificate covers both,
// so they do not reissue in turn.
func TestHostsOnRollout(t *testing.T) {
	cs := newCluster(t)
	clk := &clock{now: t0}
	old := newManager(t, cs, clk)
	sync1(t, old)
	next := newManager(t, cs, clk)
	next.ServiceName = "webhook"
	next.ExtraHosts = []string{"127.0.0.1"}
	res := sync1(t, next)
	if len(res.Renewed) != 1 {
		t.Fatalf("renewed %q, want one reissue", res.Renewed)
	}
	leaf := leafOf(t, getSecret(t, cs).Data)
	for _, h := range slices.Concat(old.Hosts(), next.Hosts()) {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, m := range []*Manager{old, next, old} {
		if res := sync1(t, m); len(res.Renewed) != 0 {
			t.Errorf("renewed again: %q", res.Renewed)
		}
	}
}

func TestHosts(t *testing.T) {
	m := &Manager{ServiceName: "svc", Namespace: "ns", ExtraHosts: []string{"127.0.0.1", "svc.ns.svc", "webhook.example"}}
	want := []string{"svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local", "127.0.0.1", "webhook.example"}
	if got := m.Hosts(); !slices.Equal(got, want) {
		t.Errorf("Hosts() = %q, want %q", got, want)
	}
}

// TestStartAndRun: Start fails fast on a Secret that is not ours, retries
// transient errors, and Run resyncs until cancelled.
func TestStartAndRun(t *testing.T) {
	t.Run("not managed", func(t *testing.T) {
		cs := newCluster(t)
		if err := cs.Tracker().Add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: testSecret, Namespace: testNS}}); err != nil {
			t.Fatal(err)
		}
		m := newManager(t, cs, &clock{now: t0})
		m.RetryInterval = time.Millisecond
		if err := m.Start(context.Background()); !errors.Is(err, ErrSecretNotManaged) {
			t.Errorf("err = %v, want ErrSecretNotManaged", err)
		}
	})
	t.Run("transient errors", func(t *testing.T) {
		cs := newCluster(t)
		var fails atomic.Int32
		cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
			if fails.Add(1) <= 2 {
				return true, nil, apierrors.NewServiceUnavailable("etcd is slow")
			}
			return false, nil, nil
		})
		m := newManager(t, cs, &clock{now: t0})
		m.RetryInterval = time.Millisecond
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(m.Dir, CertFile)); err != nil {
			t.Errorf("no certificate after Start: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		cs := newCluster(t)
		cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), testSecret, errors.New("RBAC"))
		})
		m := newManager(t, cs, &clock{now: t0})
		m.RetryInterval, m.StartTimeout = time.Millisecond, 50*time.Millisecond
		err := m.Start(context.Background())
		want := `first certificate sync: certificate secret portcullis-system/portcullis-tls: secrets "portcullis-tls" is forbidden: RBAC`
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
	})
	t.Run("run", func(t *testing.T) {
		cs := newCluster(t)
		clk := &clock{now: t0}
		m := newManager(t, cs, clk)
		m.ResyncInterval = 5 * time.Millisecond
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		first := getSecret(t, cs).Data[CertFile]
		clk.Set(t0.Add(61 * 24 * time.Hour))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { m.Run(ctx); close(done) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			files := readDir(t, m.Dir)
			if len(files[CertFile]) > 0 && !bytes.Equal(files[CertFile], first) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("Run did not publish the rotated certificate")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
	})
}
