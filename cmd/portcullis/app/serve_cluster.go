package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks/audit"
)

// ClusterOptions are the serve flags that read the cluster beyond the
// certificate: namespace labels for policies, and the background audit.
type ClusterOptions struct {
	// WatchNamespaces runs a namespace informer so policies see the
	// request namespace's labels (input.namespace).
	WatchNamespaces bool
	// AuditInterval > 0 runs the background audit (one replica at a time).
	AuditInterval       time.Duration
	AuditLeaseNamespace string
	AuditLeaseName      string
	AuditLeaseDuration  time.Duration
	AuditIdentity       string
	AuditUser           string
}

// NewClusterOptions returns the defaults: both off.
func NewClusterOptions() ClusterOptions {
	return ClusterOptions{
		AuditLeaseName:     "portcullis-audit",
		AuditLeaseDuration: 15 * time.Second,
		AuditUser:          audit.DefaultUser,
	}
}

// AddFlags registers the flags.
func (o *ClusterOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.WatchNamespaces, "watch-namespaces", o.WatchNamespaces, "watch namespaces (list/watch, nothing else) so policies see the request namespace's labels as input.namespace; pod_security reads the Pod Security Admission labels from it")
	fs.DurationVar(&o.AuditInterval, "audit-interval", o.AuditInterval, "run the background audit: a full pass when this replica takes the audit Lease and then at this interval, plus re-audits on policy reload and on object changes, written as OpenReports Reports (0: off)")
	fs.StringVar(&o.AuditLeaseNamespace, "audit-lease-namespace", o.AuditLeaseNamespace, "namespace of the audit Lease (required with --audit-interval; the manifests pass the pod's)")
	fs.StringVar(&o.AuditLeaseName, "audit-lease-name", o.AuditLeaseName, "name of the Lease that elects the one replica running the background audit")
	fs.DurationVar(&o.AuditLeaseDuration, "audit-lease-duration", o.AuditLeaseDuration, "how long a replica waits for a silent audit leader before taking over")
	fs.StringVar(&o.AuditIdentity, "audit-identity", o.AuditIdentity, "this replica's identity in the Lease (default: the host name)")
	fs.StringVar(&o.AuditUser, "audit-user", o.AuditUser, "userInfo.username of the reviews the audit builds (who created an object is not recorded; rules on the user see this name)")
}

// Validate checks the flags.
func (o *ClusterOptions) Validate() error {
	if o.AuditInterval < 0 {
		return errors.New("--audit-interval must not be negative")
	}
	if o.AuditInterval == 0 {
		return nil
	}
	if o.AuditInterval < time.Second {
		return fmt.Errorf("--audit-interval %s: at least 1s", o.AuditInterval)
	}
	if o.AuditLeaseNamespace == "" {
		return errors.New("--audit-interval needs --audit-lease-namespace")
	}
	if errs := validation.IsDNS1123Label(o.AuditLeaseNamespace); len(errs) > 0 {
		return fmt.Errorf("--audit-lease-namespace %q: %s", o.AuditLeaseNamespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(o.AuditLeaseName); len(errs) > 0 {
		return fmt.Errorf("--audit-lease-name %q: %s", o.AuditLeaseName, strings.Join(errs, "; "))
	}
	if o.AuditLeaseDuration < 2*time.Second {
		return fmt.Errorf("--audit-lease-duration %s: at least 2s", o.AuditLeaseDuration)
	}
	if o.AuditUser == "" {
		return errors.New("--audit-user must not be empty")
	}
	return nil
}

// needsCluster reports whether any of these features reads the cluster.
func (o *ClusterOptions) needsCluster() bool { return o.WatchNamespaces || o.AuditInterval > 0 }

// kubeConfig is the rest.Config from --kubeconfig, or in a pod its service
// account.
func kubeConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (--kubeconfig): %w", err)
	}
	cfg.UserAgent = "portcullis"
	cfg.Timeout = 15 * time.Second
	return cfg, nil
}

// startNamespaces starts the namespace informer (when asked) and waits for
// it: the server must not evaluate before it knows the labels.
func (o *ServeOptions) startNamespaces(ctx context.Context, client kubernetes.Interface, log *zap.Logger) (*audit.NamespaceInformer, informers.SharedInformerFactory, error) {
	if !o.Cluster.WatchNamespaces {
		return nil, nil, nil
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	labels := audit.NewNamespaceInformer(client, factory)
	factory.Start(ctx.Done())
	if err := labels.WaitSynced(ctx, time.Minute); err != nil {
		return nil, nil, err
	}
	log.Info("namespace labels: watching namespaces")
	return labels, factory, nil
}

// newAuditController builds the background audit on eng.
func (o *ServeOptions) newAuditController(cfg *rest.Config, client kubernetes.Interface, nsFactory informers.SharedInformerFactory, eng *engine.Engine, reg RegistererGatherer, log *zap.Logger) (*audit.Controller, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	rc, err := audit.NewReportClient(cfg)
	if err != nil {
		return nil, err
	}
	m, err := audit.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	id := o.Cluster.AuditIdentity
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("audit identity: %w", err)
		}
	}
	c := &audit.Controller{
		Client:         client,
		Dynamic:        dyn,
		Discovery:      dc,
		Writer:         &audit.ReportWriter{Client: rc},
		Evaluator:      &audit.Evaluator{Engine: eng, Build: reviewBuild(o.Cluster.AuditUser), Timeout: o.EvalTimeout},
		Interval:       o.Cluster.AuditInterval,
		LeaseNamespace: o.Cluster.AuditLeaseNamespace,
		LeaseName:      o.Cluster.AuditLeaseName,
		LeaseDuration:  o.Cluster.AuditLeaseDuration,
		Identity:       id,
		Log:            log.Named("audit"),
		Metrics:        m,
	}
	if nsFactory != nil {
		c.Namespaces = nsFactory.Core().V1().Namespaces().Informer()
	}
	return c, nil
}
