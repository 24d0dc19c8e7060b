package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Controller is the server's background audit. Only the replica holding the
// Lease runs it (client-go leader election): it keeps informer caches of the
// kinds the policies declare, audits everything once it holds the Lease and
// then every Interval, re-audits everything when the policy set is reloaded,
// and re-audits a namespace shortly after any of its audited objects (or its
// labels) change. Each namespace's findings are written as its Report.
type Controller struct {
	Client    kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Writer    *ReportWriter
	Evaluator *Evaluator
	// Namespaces, if set, is the server's namespace informer: a namespace
	// whose labels change is re-audited (policies read them).
	Namespaces cache.SharedIndexInformer
	Interval   time.Duration
	// Debounce is how long changes gather before their namespaces are
	// re-audited (default 2s).
	Debounce time.Duration

	LeaseNamespace, LeaseName, Identity string
	LeaseDuration                       time.Duration

	Log     *zap.Logger
	Metrics *Metrics

	reload chan struct{}
	once   sync.Once
}

func (c *Controller) init() {
	c.once.Do(func() { c.reload = make(chan struct{}, 1) })
}

// Reloaded tells the audit that the policy set changed: the next step is a
// full pass (with the new set's kinds). Never blocks.
func (c *Controller) Reloaded() {
	c.init()
	select {
	case c.reload <- struct{}{}:
	default:
	}
}

// Run campaigns for the Lease until ctx is done, auditing while it holds it.
// Losing the Lease stops the audit and campaigns again.
func (c *Controller) Run(ctx context.Context) error {
	c.init()
	if c.Debounce <= 0 {
		c.Debounce = 2 * time.Second
	}
	lease := c.LeaseDuration
	if lease <= 0 {
		lease = 15 * time.Second
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.LeaseNamespace, Name: c.LeaseName},
		Client:     c.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   lease,
			RenewDeadline:   lease * 2 / 3,
			RetryPeriod:     lease / 5,
			ReleaseOnCancel: true,
			Name:            "portcullis-audit",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					c.Metrics.Leader.Set(1)
					c.Log.Info("audit lease acquired: running the background audit", zap.String("identity", c.Identity))
					if err := c.lead(ctx); err != nil && ctx.Err() == nil {
						c.Log.Error("background audit stopped", zap.Error(err))
					}
				},
				OnStoppedLeading: func() {
					c.Metrics.Leader.Set(0)
					// The new holder reports from now on.
					c.Metrics.Violations.Reset()
					c.Log.Info("audit lease released", zap.String("identity", c.Identity))
				},
			},
		})
		if err != nil {
			return fmt.Errorf("audit leader election: %w", err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx is done
	}
	return nil
}

// lead runs the audit until ctx is done (the Lease is lost or the server
// stops). A policy reload that changes the audited kinds restarts the
// informers.
func (c *Controller) lead(ctx context.Context) error {
	for {
		restart, err := c.watchAndAudit(ctx)
		if err != nil || !restart || ctx.Err() != nil {
			return err
		}
	}
}

// watchAndAudit starts informers for the current policy set's kinds and
// audits until ctx is done (false) or a reload changed the kinds (true).
func (c *Controller) watchAndAudit(parent context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	resources, unscoped := Resources(c.Evaluator.Engine.Registry())
	if len(unscoped) > 0 {
		c.Log.Warn("policies without custom.resources apply to every kind and are not audited in the background", zap.Strings("policies", unscoped))
	}
	targets, missing, err := ResolveTargets(c.Discovery, resources)
	if err != nil {
		return false, err
	}
	if len(missing) > 0 {
		c.Log.Warn("resources the policies declare that the API does not serve (not audited)", zap.Strings("resources", missing))
	}
	targets = c.readable(ctx, targets)
	dirty := newDirtySet()
	factory := dynamicinformer.NewDynamicSharedInformerFactory(c.Dynamic, 0)
	informers := map[Target]cache.SharedIndexInformer{}
	onChange := func(obj any) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			dirty.add(u.GetNamespace())
		} else if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			if u, ok := d.Obj.(*unstructured.Unstructured); ok {
				dirty.add(u.GetNamespace())
			}
		}
	}
	for _, t := range targets {
		inf := factory.ForResource(t.GVR).Informer()
		if err := inf.SetTransform(StripManagedFields); err != nil {
			return false, fmt.Errorf("informer %s: %w", t, err)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    onChange,
			UpdateFunc: func(_, n any) { onChange(n) },
			DeleteFunc: onChange,
		}); err != nil {
			return false, fmt.Errorf("informer %s: %w", t, err)
		}
		informers[t] = inf
	}
	if c.Namespaces != nil {
		reg, err := c.Namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(o, n any) {
				on, ok1 := o.(*corev1.Namespace)
				nn, ok2 := n.(*corev1.Namespace)
				if ok1 && ok2 && !maps.Equal(on.Labels, nn.Labels) {
					dirty.add(nn.Name)
				}
			},
		})
		if err != nil {
			return false, fmt.Errorf("namespace handler: %w", err)
		}
		defer func() { _ = c.Namespaces.RemoveEventHandler(reg) }()
	}
	factory.Start(ctx.Done())
	defer func() {
		cancel() // Shutdown waits for the informers, which stop on ctx
		factory.Shutdown()
	}()
	for t, inf := range informers {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			if ctx.Err() != nil {
				return false, nil
			}
			return false, fmt.Errorf("informer %s did not sync", t)
		}
	}
	c.Log.Info("background audit watching", zap.Int("kinds", len(targets)), zap.Strings("resources", targetNames(targets)))
	a := &pass{c: c, informers: informers}
	dirty.take() // the full pass covers what the initial list delivered
	a.full(ctx)
	ticker := time.NewTicker(c.Interval)
	defer ticker.Stop()
	debounce := time.NewTicker(c.Debounce)
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-ticker.C:
			dirty.take()
			a.full(ctx)
		case <-c.reload:
			now, _ := Resources(c.Evaluator.Engine.Registry())
			if !slices.Equal(now, resources) {
				c.Log.Info("policy reload changed the audited kinds: restarting the informers", zap.Strings("resources", now))
				return true, nil
			}
			dirty.take()
			a.full(ctx)
		case <-debounce.C:
			if nss := dirty.take(); len(nss) > 0 {
				for _, ns := range nss {
					a.namespace(ctx, ns)
				}
			}
		}
	}
}

// readable keeps the targets this replica may list (one list call of one
// object each): an informer on a forbidden kind would never sync and hold up
// the whole audit. The others are logged and counted, not silently dropped.
func (c *Controller) readable(ctx context.Context, targets []Target) []Target {
	var out []Target
	for _, t := range targets {
		_, err := c.Dynamic.Resource(t.GVR).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			c.Log.Error("background audit: cannot list this kind (RBAC?); not audited", zap.String("resource", t.String()), zap.Error(err))
			c.Metrics.Errors.WithLabelValues("list").Inc()
			continue
		}
		out = append(out, t)
	}
	return out
}

func targetNames(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

// pass audits from the informer caches.
type pass struct {
	c         *Controller
	informers map[Target]cache.SharedIndexInformer
}

// full audits every namespace with audited objects or an existing report.
func (a *pass) full(ctx context.Context) {
	start := time.Now()
	namespaces := map[string]bool{"": true}
	for _, inf := range a.informers {
		for _, obj := range inf.GetStore().List() {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				namespaces[u.GetNamespace()] = true
			}
		}
	}
	existing, err := a.c.Writer.Namespaces(ctx)
	if err != nil {
		a.c.Log.Error("background audit: list reports", zap.Error(err))
		a.c.Metrics.Errors.WithLabelValues("report").Inc()
	}
	for _, ns := range existing {
		namespaces[ns] = true
	}
	objects := 0
	for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
		if ctx.Err() != nil {
			return
		}
		objects += a.namespace(ctx, ns)
	}
	took := time.Since(start)
	a.c.Metrics.LastDuration.Set(took.Seconds())
	a.c.Metrics.LastTimestamp.Set(float64(time.Now().Unix()))
	a.c.Metrics.Objects.Set(float64(objects))
	a.c.Log.Info("background audit pass", zap.Int("objects", objects), zap.Int("namespaces", len(namespaces)), zap.Duration("took", took))
}

// namespace audits the cached objects of one namespace ("" for
// cluster-scoped ones), writes its report and returns how many objects it
// evaluated.
func (a *pass) namespace(ctx context.Context, ns string) int {
	var findings []*Finding
	n := 0
	failed := false
	for _, t := range slices.SortedFunc(maps.Keys(a.informers), func(x, y Target) int { return compareStrings(x.String(), y.String()) }) {
		if t.Namespaced != (ns != "") {
			continue
		}
		objs, err := a.informers[t].GetIndexer().ByIndex(cache.NamespaceIndex, ns)
		if err != nil {
			a.c.Log.Error("background audit: read cache", zap.String("resource", t.String()), zap.Error(err))
			failed = true
			continue
		}
		for _, obj := range objs {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			n++
			a.c.Metrics.Evaluations.Inc()
			f, err := a.c.Evaluator.Evaluate(ctx, t, u)
			if err != nil {
				if ctx.Err() != nil {
					return n
				}
				// Never a report that silently drops an object: keep the
				// previous report and say so.
				a.c.Log.Error("background audit: evaluate", zap.String("resource", t.String()), zap.String("namespace", ns), zap.String("name", u.GetName()), zap.Error(err))
				a.c.Metrics.Errors.WithLabelValues("evaluate").Inc()
				failed = true
				continue
			}
			if f.Violating() {
				findings = append(findings, f)
			}
		}
	}
	if failed {
		return n
	}
	if _, err := a.c.Writer.Sync(ctx, ns, findings, time.Now()); err != nil {
		if ctx.Err() == nil {
			a.c.Log.Error("background audit: write report", zap.String("namespace", ns), zap.Error(err))
			a.c.Metrics.Errors.WithLabelValues("report").Inc()
		}
		return n
	}
	a.c.Metrics.Violations.DeletePartialMatch(map[string]string{"namespace": ns})
	for _, f := range findings {
		for _, v := range f.Decision.Violations {
			a.c.Metrics.Violations.WithLabelValues(v.Policy, ns, string(v.Enforcement)).Inc()
		}
	}
	return n
}

func compareStrings(a, b string) int { return strings.Compare(a, b) }

// dirtySet collects namespaces to re-audit.
type dirtySet struct {
	mu  sync.Mutex
	set map[string]bool
}

func newDirtySet() *dirtySet { return &dirtySet{set: map[string]bool{}} }

func (d *dirtySet) add(ns string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.set[ns] = true
}

func (d *dirtySet) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Sorted(maps.Keys(d.set))
	clear(d.set)
	return out
}
