package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/report"
	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks/audit"
)

// AuditOptions configure `portcullis audit`.
type AuditOptions struct {
	// Source is the policy set audited (with a baseline: the candidate).
	Source PolicySourceOptions
	// Baseline, when set, is the current policy set: the audit then reports
	// only the objects whose decision the candidate (Source) changes.
	Baseline PolicySourceOptions

	Kubeconfig      string
	Context         string
	Namespace       string
	AllNamespaces   bool
	Kinds           []string
	Policies        []string
	User            string
	NamespaceLabels []string
	PageSize        int64
	EvalTimeout     time.Duration
	Output          string
	Quiet           bool
	FailOnWarn      bool

	// Dynamic, Discovery and Client, if set, replace the clients built from
	// the kubeconfig (tests).
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Client    kubernetes.Interface
}

// NewAuditOptions returns the defaults.
func NewAuditOptions() *AuditOptions {
	return &AuditOptions{User: audit.DefaultUser, PageSize: audit.DefaultPageSize, Output: report.FormatText, EvalTimeout: NewServeOptions().EvalTimeout}
}

// AddFlags registers the audit flags.
func (o *AuditOptions) AddFlags(fs *pflag.FlagSet) {
	o.Source.AddFlags(fs)
	fs.StringArrayVar(&o.Baseline.PoliciesDirs, "baseline-policies", nil, "dry-run a change: the current policy directory, stacked over the built-in set as --policies is (repeatable; default: the built-in set alone when --baseline-config is given); --policies/--config are the candidate, and only objects whose decision changes are reported")
	fs.StringVar(&o.Baseline.ConfigFile, "baseline-config", "", "dry-run a change: the current configuration, merged over the defaults; --config is the candidate")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&o.Context, "context", "", "kubeconfig context (default: the current context)")
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "audit this namespace (default: the context's namespace)")
	fs.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "audit every namespace, and cluster-scoped kinds")
	fs.StringArrayVar(&o.Kinds, "kind", nil, "audit only this resource (plural, as policies declare it: pods, deployments; repeatable; default every resource the policies declare)")
	fs.StringArrayVar(&o.Policies, "policy", nil, "evaluate only this validating policy ID (repeatable)")
	fs.StringVar(&o.User, "user", o.User, "userInfo.username of the reviews (who created an object is not recorded: rules on the requesting user, such as exemptions by username, see this name)")
	fs.StringArrayVar(&o.NamespaceLabels, "namespace-labels", nil, "labels of a namespace as policies see them (input.namespace): NS=key=value,key=value; repeatable; namespaces not given are read from the cluster")
	fs.Int64Var(&o.PageSize, "page-size", o.PageSize, "objects per list call")
	fs.DurationVar(&o.EvalTimeout, "eval-timeout", o.EvalTimeout, "deadline for evaluating one object, as serve's --eval-timeout")
	fs.StringVarP(&o.Output, "output", "o", o.Output, strings.Join(report.Formats, ", ")+" (yaml: the objects as audited)")
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "text: print only objects with failures or warnings, and the summary")
	fs.BoolVar(&o.FailOnWarn, "fail-on-warn", false, "exit 1 when any object has warnings")
}

// Validate checks the flags.
func (o *AuditOptions) Validate() error {
	if err := o.Source.Validate(); err != nil {
		return err
	}
	if err := o.Baseline.Validate(); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if o.AllNamespaces && o.Namespace != "" {
		return errors.New("--namespace and --all-namespaces: give one")
	}
	if !slices.Contains(report.Formats, o.Output) {
		return fmt.Errorf("--output %q: must be one of %s", o.Output, strings.Join(report.Formats, ", "))
	}
	if o.PageSize <= 0 {
		return errors.New("--page-size must be positive")
	}
	if o.EvalTimeout <= 0 {
		return errors.New("--eval-timeout must be positive")
	}
	if o.User == "" {
		return errors.New("--user must not be empty")
	}
	if _, err := audit.ParseNamespaceLabels(o.NamespaceLabels); err != nil {
		return err
	}
	return nil
}

func (o *AuditOptions) diffMode() bool {
	return len(o.Baseline.PoliciesDirs) > 0 || o.Baseline.ConfigFile != ""
}

func newAuditCommand(streams IO) *cobra.Command {
	o := NewAuditOptions()
	cmd := &cobra.Command{
		Use:   "audit [-n NS | -A] [--kind RESOURCE]...",
		Short: "Evaluate what already runs in a cluster against the policies",
		Long: `Audit lists every resource the loaded validating policies declare (paged
lists, read-only), builds for each object the AdmissionReview creating it
would produce (CREATE, the object as stored, --user as the requester) and
evaluates it through the same engine as the server's validating webhook.

With --baseline-config and/or --baseline-policies it dry-runs a policy change:
both sets are evaluated and only the objects whose decision changes are
reported ("would be refused" / "would be admitted").

Exit codes, as validate's: 0 everything admitted (warnings allowed unless
--fail-on-warn), 1 something denied (with a baseline: something newly
refused), 2 usage, cluster or policy load errors, 3 a policy could not be
evaluated. Interrupted: 130 (SIGINT) or 143 (SIGTERM), no results written.`,
		Args: cobra.NoArgs,
		RunE: runE(o, streams),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// Run audits the cluster and writes the report.
func (o *AuditOptions) Run(ctx context.Context, streams IO) error {
	candidate, err := o.Source.Load(ctx)
	if err != nil {
		return usageError(err)
	}
	var baseline *engine.Registry
	if o.diffMode() {
		if baseline, err = o.Baseline.Load(ctx); err != nil {
			return usageError(fmt.Errorf("baseline: %w", err))
		}
	}
	for _, id := range o.Policies {
		if p := candidate.Policy(id); p == nil || p.Kind != engine.Validating {
			return usageError(fmt.Errorf("--policy %q: no such validating policy", id))
		}
	}
	namespace, err := o.clients()
	if err != nil {
		return usageError(err)
	}
	static, _ := audit.ParseNamespaceLabels(o.NamespaceLabels)
	labels := &audit.StaticLabels{Labels: static, Fallback: &audit.ClusterLabels{Client: o.Client}}

	resources := o.Kinds
	if len(resources) == 0 {
		resources, _ = audit.Resources(candidate)
		if baseline != nil {
			more, _ := audit.Resources(baseline)
			resources = slices.Compact(slices.Sorted(slices.Values(append(resources, more...))))
		}
	}
	targets, missing, err := audit.ResolveTargets(o.Discovery, resources)
	if err != nil {
		return usageError(err)
	}
	if len(missing) > 0 {
		fmt.Fprintf(streams.Err, "not served by the cluster, not audited: %s\n", strings.Join(missing, ", "))
	}
	build := reviewBuild(o.User)
	newEval := func(reg *engine.Registry) *audit.Evaluator {
		return &audit.Evaluator{Engine: engine.New(reg, nil, engine.WithNamespaceLabels(labels)), Build: build, Timeout: o.EvalTimeout, Policies: o.Policies}
	}
	cand := newEval(candidate)
	var base *audit.Evaluator
	if baseline != nil {
		base = newEval(baseline)
	}

	r := &report.Report{Results: []report.Result{}}
	var newlyRefused, newlyAdmitted int
	refusedNS := map[string]bool{}
	start := time.Now()
	objects, kinds := 0, 0
	for _, t := range targets {
		if !t.Namespaced && !o.AllNamespaces {
			continue
		}
		kinds++
		index := 0
		err := audit.List(ctx, o.Dynamic, t, namespace, o.PageSize, func(u *unstructured.Unstructured) error {
			objects++
			f, err := cand.Evaluate(ctx, t, u)
			if err != nil {
				return err
			}
			res := auditResult(t, index, u, f, o.Output == report.FormatYAML)
			index++
			if base != nil {
				bf, err := base.Evaluate(ctx, t, u)
				if err != nil {
					return err
				}
				switch {
				case bf.Decision.Allowed == f.Decision.Allowed:
					return nil // unchanged: not reported in a dry run
				case bf.Decision.Allowed:
					newlyRefused++
					refusedNS[u.GetNamespace()] = true
				default:
					newlyAdmitted++
				}
			}
			r.Results = append(r.Results, res)
			return nil
		})
		if ctx.Err() != nil {
			return errInterrupted
		}
		if err != nil {
			return usageError(err)
		}
	}
	took := time.Since(start)
	fmt.Fprintf(streams.Err, "audited %d %s of %d %s in %s (%.0f objects/s)\n", objects, plural(objects, "object", "objects"),
		kinds, plural(kinds, "kind", "kinds"), took.Round(time.Millisecond), float64(objects)/took.Seconds())
	r.Summarize()
	if err := report.Write(streams.Out, r, report.Options{Format: o.Output, Quiet: o.Quiet, FailOnWarn: o.FailOnWarn, Tool: "portcullis audit"}); err != nil {
		return err
	}
	if base != nil {
		// Said on stderr too when stdout is a machine format.
		msg := fmt.Sprintf("%d %s in %d %s would be refused by the candidate policy set; %d would be newly admitted\n",
			newlyRefused, plural(newlyRefused, "object", "objects"), len(refusedNS), plural(len(refusedNS), "namespace", "namespaces"), newlyAdmitted)
		w := streams.Err
		if o.Output == report.FormatText {
			w = streams.Out
		}
		fmt.Fprint(w, msg)
	}
	return (&ValidateOptions{FailOnWarn: o.FailOnWarn}).exit(r.Summary)
}

// auditResult is a finding in validate's result shape: Source names the
// resource ("pods", "deployments.apps"), Index the object's place in its
// list; the validating decision only (what runs was mutated when admitted).
func auditResult(t audit.Target, index int, u *unstructured.Unstructured, f *audit.Finding, keepObject bool) report.Result {
	res := report.Result{Source: t.String(), Index: index, Kind: t.Kind, Namespace: f.Namespace, Name: f.Name}
	if keepObject { // -o yaml only: the report would otherwise hold every object
		if raw, err := audit.ObjectJSON(u); err == nil {
			res.Original = &report.Original{JSON: raw, Item: -1}
		}
	}
	res.Decision(f.Decision)
	return res
}

// clients builds the Kubernetes clients from the kubeconfig (unless set) and
// returns the namespace to audit ("" for all).
func (o *AuditOptions) clients() (string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context})
	namespace := o.Namespace
	if namespace == "" && !o.AllNamespaces {
		ns, _, err := cc.Namespace()
		if err != nil {
			return "", fmt.Errorf("kubeconfig: %w", err)
		}
		namespace = ns
	}
	if o.Dynamic != nil && o.Discovery != nil && o.Client != nil {
		return namespace, nil
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "portcullis-audit"
	cfg.QPS, cfg.Burst = 50, 100
	if o.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return "", fmt.Errorf("dynamic client: %w", err)
	}
	if o.Discovery, err = discovery.NewDiscoveryClientForConfig(cfg); err != nil {
		return "", fmt.Errorf("discovery client: %w", err)
	}
	if o.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return "", fmt.Errorf("kubernetes client: %w", err)
	}
	return namespace, nil
}
