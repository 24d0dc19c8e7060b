package registration

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestSync(t *testing.T) {
	ctx := context.Background()
	pods := rule("", "v1", createUpdate, "pods")
	caBundle := []byte("-----BEGIN CERTIFICATE-----\n")
	cs := fake.NewClientset(
		&admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "portcullis"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name:         "validate.portcullis.dev",
				Rules:        []admissionregistrationv1.RuleWithOperations{pods},
				ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: caBundle},
			}},
		},
	)
	s := &Syncer{Client: cs, Name: "portcullis"}
	want := Rules{
		Validating: []admissionregistrationv1.RuleWithOperations{pods, rule("", "v1", createUpdate, "services")},
		Mutating:   []admissionregistrationv1.RuleWithOperations{rule("", "v1", createUpdate, "pods")},
	}
	res, err := s.Sync(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "first sync", res, SyncResult{
		Patched: []string{"ValidatingWebhookConfiguration/portcullis validate.portcullis.dev"},
		Missing: []string{"MutatingWebhookConfiguration/portcullis"},
	})
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The rules grew by services; the rest of the webhook is untouched.
	equal(t, "rules", vwc.Webhooks[0].Rules, []admissionregistrationv1.RuleWithOperations{pods, rule("", "v1", createUpdate, "services")})
	equal(t, "caBundle", vwc.Webhooks[0].ClientConfig.CABundle, caBundle)

	// Nothing to add: no write.
	cs.ClearActions()
	res, err = s.Sync(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "second sync", res, SyncResult{Missing: []string{"MutatingWebhookConfiguration/portcullis"}})
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("unexpected %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}

	// A policy set that needs less removes nothing.
	res, err = s.Sync(ctx, Rules{Validating: []admissionregistrationv1.RuleWithOperations{pods}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "smaller set", res.Patched, []string(nil))
	vwc, _ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "portcullis", metav1.GetOptions{})
	equal(t, "rules kept", vwc.Webhooks[0].Rules, []admissionregistrationv1.RuleWithOperations{pods, rule("", "v1", createUpdate, "services")})
}

func TestRulesPatch(t *testing.T) {
	pods := rule("", "v1", createUpdate, "pods")
	_, data, err := rulesPatch("42", []string{"a", "b"},
		[][]admissionregistrationv1.RuleWithOperations{{pods}, nil},
		[]admissionregistrationv1.RuleWithOperations{pods})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"resourceVersion":"42"},"webhooks":[{"name":"b","rules":[{"operations":["CREATE","UPDATE"],"apiGroups":[""],"apiVersions":["v1"],"resources":["pods"],"scope":"*"}]}]}`
	if string(data) != want {
		t.Errorf("patch:\n got %s\nwant %s", data, want)
	}
}
