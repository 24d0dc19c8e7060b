package registration

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// FieldManager names Portcullis' writes to the webhook configurations'
// rules (the caBundle writes are certs.FieldManager's).
const FieldManager = "portcullis-rules"

// Syncer adds the rules the loaded policies need to the webhooks of the
// ValidatingWebhookConfiguration and MutatingWebhookConfiguration called
// Name (`serve --sync-webhook-rules`).
//
// It only ever adds: rules that no loaded policy needs any more stay until
// the configuration is re-applied. Replicas of different versions (a
// rollout, a ConfigMap the kubelet has not yet swapped on every node) each
// add what they need, so they converge on the union instead of overwriting
// each other's rules back and forth; an extra rule costs only calls that
// no policy judges. Each write is a strategic merge patch of one webhook's
// rules (webhooks merge by name; rules are replaced as a list), conditional
// on the resourceVersion read.
//
// RBAC: get and patch on both configurations by name, the same as the
// caBundle writes of self-signed mode.
type Syncer struct {
	// Client reaches the API server.
	Client kubernetes.Interface
	// Name is the name of both configurations.
	Name string
}

// SyncResult says what a Sync did.
type SyncResult struct {
	// Patched lists "Kind/name webhook" for each webhook whose rules grew.
	Patched []string
	// Missing lists the configurations that do not exist (nothing to do
	// until they are applied).
	Missing []string
}

// Sync adds to every webhook of the two configurations the rules of want it
// does not cover yet.
func (s *Syncer) Sync(ctx context.Context, want Rules) (SyncResult, error) {
	var res SyncResult
	api := s.Client.AdmissionregistrationV1()
	// The two configurations are distinct client-go types; each is reduced
	// to its webhooks' names and rules, and patched the same way.
	configs := []struct {
		kind  string
		want  []admissionregistrationv1.RuleWithOperations
		get   func() (resourceVersion string, names []string, rules [][]admissionregistrationv1.RuleWithOperations, err error)
		patch func(data []byte) error
	}{
		{
			kind: "ValidatingWebhookConfiguration", want: want.Validating,
			get: func() (string, []string, [][]admissionregistrationv1.RuleWithOperations, error) {
				cfg, err := api.ValidatingWebhookConfigurations().Get(ctx, s.Name, metav1.GetOptions{})
				if err != nil {
					return "", nil, nil, err
				}
				var names []string
				var rules [][]admissionregistrationv1.RuleWithOperations
				for _, w := range cfg.Webhooks {
					names, rules = append(names, w.Name), append(rules, w.Rules)
				}
				return cfg.ResourceVersion, names, rules, nil
			},
			patch: func(data []byte) error {
				_, err := api.ValidatingWebhookConfigurations().Patch(ctx, s.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{FieldManager: FieldManager})
				return err
			},
		},
		{
			kind: "MutatingWebhookConfiguration", want: want.Mutating,
			get: func() (string, []string, [][]admissionregistrationv1.RuleWithOperations, error) {
				cfg, err := api.MutatingWebhookConfigurations().Get(ctx, s.Name, metav1.GetOptions{})
				if err != nil {
					return "", nil, nil, err
				}
				var names []string
				var rules [][]admissionregistrationv1.RuleWithOperations
				for _, w := range cfg.Webhooks {
					names, rules = append(names, w.Name), append(rules, w.Rules)
				}
				return cfg.ResourceVersion, names, rules, nil
			},
			patch: func(data []byte) error {
				_, err := api.MutatingWebhookConfigurations().Patch(ctx, s.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{FieldManager: FieldManager})
				return err
			},
		},
	}
	for _, c := range configs {
		ref := c.kind + "/" + s.Name
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			rv, names, current, err := c.get()
			if apierrors.IsNotFound(err) {
				res.Missing = append(res.Missing, ref)
				return nil
			}
			if err != nil {
				return err
			}
			patched, data, err := rulesPatch(rv, names, current, c.want)
			if err != nil || data == nil {
				return err
			}
			if err := c.patch(data); err != nil {
				return err
			}
			for _, n := range patched {
				res.Patched = append(res.Patched, ref+" "+n)
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("rules of %s %s: %w", c.kind, s.Name, err)
		}
	}
	return res, nil
}

// rulesPatch returns the names of the webhooks whose rules do not cover
// want and a patch giving each of them its rules plus the missing ones
// (nil when every webhook already covers want).
func rulesPatch(resourceVersion string, names []string, current [][]admissionregistrationv1.RuleWithOperations, want []admissionregistrationv1.RuleWithOperations) ([]string, []byte, error) {
	type webhook struct {
		Name  string                                       `json:"name"`
		Rules []admissionregistrationv1.RuleWithOperations `json:"rules"`
	}
	patch := struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Webhooks []webhook `json:"webhooks"`
	}{}
	patch.Metadata.ResourceVersion = resourceVersion
	var patched []string
	for i, name := range names {
		missing := Missing(current[i], want)
		if len(missing) == 0 {
			continue
		}
		patched = append(patched, name)
		rules := append(append([]admissionregistrationv1.RuleWithOperations(nil), current[i]...), missing...)
		patch.Webhooks = append(patch.Webhooks, webhook{Name: name, Rules: rules})
	}
	if len(patched) == 0 {
		return nil, nil, nil
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return nil, nil, fmt.Errorf("encode rules patch: %w", err)
	}
	return patched, data, nil
}

// Run syncs the rules current returns now, every interval, and after each
// receive on changed (a policy reload), until ctx is done. A failed sync
// is logged and retried at the next tick: the webhooks keep the rules they
// have.
func (s *Syncer) Run(ctx context.Context, interval time.Duration, current func() Rules, changed <-chan struct{}, log *zap.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := s.Sync(ctx, current())
		switch {
		case err != nil:
			log.Error("webhook rules sync failed; retrying", zap.Error(err), zap.Duration("retryIn", interval))
		case len(res.Patched) > 0:
			log.Info("added the loaded policies' resources to the webhook rules", zap.Strings("webhooks", res.Patched))
		case len(res.Missing) > 0:
			log.Info("webhook configuration not found; rules not synced", zap.Strings("missing", res.Missing))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
	}
}
