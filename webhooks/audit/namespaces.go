package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/portcullis/portcullis/policies/engine"
)

// ErrNamespaceNotFound is returned for a namespace that does not exist.
var ErrNamespaceNotFound = errors.New("namespace not found")

// NamespaceInformer serves namespace labels from a shared informer cache
// (list and watch on namespaces, nothing else). A namespace missing from the
// cache (created a moment ago, before the watch delivered it) is read with
// one GET, as Pod Security Admission's namespace getter does.
type NamespaceInformer struct {
	client kubernetes.Interface
	lister listersv1.NamespaceLister
	synced cache.InformerSynced
}

var _ engine.NamespaceLabeler = (*NamespaceInformer)(nil)

// NewNamespaceInformer registers a namespace informer on factory; start the
// factory and wait for WaitSynced before serving.
func NewNamespaceInformer(client kubernetes.Interface, factory informers.SharedInformerFactory) *NamespaceInformer {
	inf := factory.Core().V1().Namespaces()
	return &NamespaceInformer{client: client, lister: inf.Lister(), synced: inf.Informer().HasSynced}
}

// WaitSynced waits until the informer has listed every namespace, or timeout.
func (n *NamespaceInformer) WaitSynced(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), n.synced) {
		return fmt.Errorf("namespace informer: not synced after %s", timeout)
	}
	return nil
}

// NamespaceLabels implements engine.NamespaceLabeler.
func (n *NamespaceInformer) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns, err := n.lister.Get(name)
	if err == nil {
		return ns.Labels, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	live, err := n.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, ErrNamespaceNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get namespace: %w", err)
	}
	return live.Labels, nil
}

// StaticLabels are namespace labels given on the command line
// (--namespace-labels NS=k=v,k2=v2, repeatable). Namespaces not named have
// no labels unless Fallback is set, which then answers for them.
type StaticLabels struct {
	Labels   map[string]map[string]string
	Fallback engine.NamespaceLabeler
}

// NamespaceLabels implements engine.NamespaceLabeler.
func (s *StaticLabels) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	if l, ok := s.Labels[name]; ok {
		return l, nil
	}
	if s.Fallback != nil {
		return s.Fallback.NamespaceLabels(ctx, name)
	}
	return nil, nil
}

// ParseNamespaceLabels parses --namespace-labels values: each
// "NS=key=value,key2=value2" (or "NS=" for no labels). The same namespace
// may appear several times; its labels merge.
func ParseNamespaceLabels(values []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, v := range values {
		ns, rest, ok := strings.Cut(v, "=")
		if !ok || ns == "" {
			return nil, fmt.Errorf("--namespace-labels %q: want NAMESPACE=key=value[,key=value...]", v)
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace-labels %q: namespace %q: %s", v, ns, strings.Join(errs, "; "))
		}
		labels := out[ns]
		if labels == nil {
			labels = map[string]string{}
			out[ns] = labels
		}
		if rest == "" {
			continue
		}
		for _, pair := range strings.Split(rest, ",") {
			k, val, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, fmt.Errorf("--namespace-labels %q: %q is not key=value", v, pair)
			}
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				return nil, fmt.Errorf("--namespace-labels %q: label key %q: %s", v, k, strings.Join(errs, "; "))
			}
			if errs := validation.IsValidLabelValue(val); len(errs) > 0 {
				return nil, fmt.Errorf("--namespace-labels %q: label value %q: %s", v, val, strings.Join(errs, "; "))
			}
			labels[k] = val
		}
	}
	return out, nil
}

// FormatLabels renders labels as k=v,k2=v2 in key order (messages, tests).
func FormatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range maps.Keys(l) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// ClusterLabels reads namespace labels with one GET per namespace, kept for
// the life of the value (the CLI's one pass).
type ClusterLabels struct {
	Client kubernetes.Interface

	mu    sync.Mutex
	cache map[string]map[string]string
}

// NamespaceLabels implements engine.NamespaceLabeler.
func (c *ClusterLabels) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	c.mu.Lock()
	l, ok := c.cache[name]
	c.mu.Unlock()
	if ok {
		return l, nil
	}
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, ErrNamespaceNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get namespace: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = map[string]map[string]string{}
	}
	c.cache[name] = ns.Labels
	return ns.Labels, nil
}
