package app

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/webhooks/registration"
)

// WebhooksOptions configure `portcullis webhooks`.
type WebhooksOptions struct {
	Source PolicySourceOptions
	// ConfigName names both webhook configurations.
	ConfigName string
	// ValidatingWebhook and MutatingWebhook name the webhook in each.
	ValidatingWebhook, MutatingWebhook string
}

// NewWebhooksOptions returns the defaults, the names the manifests use.
func NewWebhooksOptions() *WebhooksOptions {
	return &WebhooksOptions{ConfigName: "portcullis", ValidatingWebhook: "validate.portcullis.dev", MutatingWebhook: "mutate.portcullis.dev"}
}

// AddFlags registers the webhooks flags.
func (o *WebhooksOptions) AddFlags(fs *pflag.FlagSet) {
	o.Source.AddFlags(fs)
	fs.StringVar(&o.ConfigName, "webhook-config-name", o.ConfigName, "name of the ValidatingWebhookConfiguration and MutatingWebhookConfiguration")
	fs.StringVar(&o.ValidatingWebhook, "validating-webhook-name", o.ValidatingWebhook, "name of the webhook in the ValidatingWebhookConfiguration")
	fs.StringVar(&o.MutatingWebhook, "mutating-webhook-name", o.MutatingWebhook, "name of the webhook in the MutatingWebhookConfiguration")
}

// Validate checks the flags.
func (o *WebhooksOptions) Validate() error {
	if err := o.Source.Validate(); err != nil {
		return err
	}
	for flag, v := range map[string]string{"--webhook-config-name": o.ConfigName, "--validating-webhook-name": o.ValidatingWebhook, "--mutating-webhook-name": o.MutatingWebhook} {
		if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
			return fmt.Errorf("%s %q: %s", flag, v, errs[0])
		}
	}
	return nil
}

// Run loads the policies and prints the two configurations' rules as
// strategic merge patches (kustomize `patches:` accept them as they are);
// warnings about policies that cannot be registered go to stderr.
func (o *WebhooksOptions) Run(ctx context.Context, streams IO) error {
	reg, err := o.Source.Load(ctx)
	if err != nil {
		return usageError(err)
	}
	rules := registration.NewResolver(nil).Derive(reg.Policies())
	for _, w := range rules.Warnings {
		fmt.Fprintln(streams.Err, "Warning:", w)
	}
	typeMeta := func(kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: kind}
	}
	docs := []any{
		struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        map[string]string `json:"metadata"`
			Webhooks        []namedRules      `json:"webhooks"`
		}{typeMeta("ValidatingWebhookConfiguration"), map[string]string{"name": o.ConfigName}, []namedRules{{o.ValidatingWebhook, rules.Validating}}},
		struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        map[string]string `json:"metadata"`
			Webhooks        []namedRules      `json:"webhooks"`
		}{typeMeta("MutatingWebhookConfiguration"), map[string]string{"name": o.ConfigName}, []namedRules{{o.MutatingWebhook, rules.Mutating}}},
	}
	fmt.Fprintf(streams.Out, "# Webhook rules for %d policies, derived by `portcullis webhooks` from their METADATA\n# custom.resources and custom.operations (strategic merge patches: webhooks merge by name).\n", len(reg.Policies()))
	for i, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return fmt.Errorf("encode rules: %w", err)
		}
		if i > 0 {
			fmt.Fprintln(streams.Out, "---")
		}
		if _, err := streams.Out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// namedRules is one webhook of a patch: its name (the merge key) and rules.
type namedRules struct {
	Name  string                                       `json:"name"`
	Rules []admissionregistrationv1.RuleWithOperations `json:"rules"`
}

func newWebhooksCommand(streams IO) *cobra.Command {
	o := NewWebhooksOptions()
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Print the webhook configurations' rules the policies need",
		Long: `Webhooks loads the policies (--policies, --config) and prints the rules of the
ValidatingWebhookConfiguration and MutatingWebhookConfiguration that send the
apiserver's requests for every resource the policies declare in METADATA
custom.resources (operations: custom.operations, default CREATE and UPDATE;
the mutating webhook takes Pods on CREATE only). Groups and versions come
from the Kubernetes API types; a resource Kubernetes does not define (a
custom resource) is matched in every group and version.

The output is two strategic merge patches: use them as a kustomize patch,
or 'kubectl patch ... --type strategic --patch-file'. A policy without
custom.resources is reported on stderr and registers nothing.`,
		Args: cobra.NoArgs,
		RunE: runE(o, streams),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
