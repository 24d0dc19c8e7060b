package registration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

var (
	createUpdate = []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	all          = ptrScope(admissionregistrationv1.AllScopes)
)

func ptrScope(s admissionregistrationv1.ScopeType) *admissionregistrationv1.ScopeType { return &s }

func rule(group, version string, ops []admissionregistrationv1.OperationType, resources ...string) admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
		APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: all,
	}}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("%s:\n got: %s\nwant: %s", what, g, w)
	}
}

func TestDerive(t *testing.T) {
	r := NewResolver(nil)
	got := r.Derive([]*engine.Policy{
		{ID: "svc", Kind: engine.Validating, Resources: []string{"services"}, File: "svc/svc.rego", Row: 7},
		{ID: "ingress", Kind: engine.Validating, Resources: []string{"ingresses", "services"}, Operations: []string{"CREATE"}},
		{ID: "widgets", Kind: engine.Validating, Resources: []string{"widgets"}, Operations: []string{"DELETE"}},
		{ID: "hpa", Kind: engine.Mutating, Resources: []string{"horizontalpodautoscalers", "pods", "pods/ephemeralcontainers"}},
		{ID: "anything", Kind: engine.Validating, File: "anything/a.rego", Row: 3},
		{ID: "star", Kind: engine.Validating, Resources: []string{"*"}, File: "star/s.rego", Row: 4},
	})
	equal(t, "validating", got.Validating, []admissionregistrationv1.RuleWithOperations{
		rule("", "v1", createUpdate, "services"),
		rule("networking.k8s.io", "v1", []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, "ingresses"),
		rule("*", "*", []admissionregistrationv1.OperationType{admissionregistrationv1.Delete}, "widgets"),
	})
	equal(t, "mutating", got.Mutating, []admissionregistrationv1.RuleWithOperations{
		rule("", "v1", []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, "pods"),
		rule("", "v1", createUpdate, "pods/ephemeralcontainers"),
		rule("autoscaling", "v2", createUpdate, "horizontalpodautoscalers"),
	})
	equal(t, "warnings", got.Warnings, []string{
		"policy anything (anything/a.rego:3) declares no custom.resources: it sees only what the other policies' rules send",
		`policy star (star/s.rego:4) lists resource "*": not registered (every resource would go to the webhook); list the resources`,
	})
}

// TestBuiltinRulesMatchManifests: the rules derived from the built-in
// policies send exactly what manifests/base/webhooks.yaml registers.
func TestBuiltinRulesMatchManifests(t *testing.T) {
	b, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := engine.Load(context.Background(), engine.Source{Policies: policies.FS, Configs: [][]byte{b}})
	if err != nil {
		t.Fatal(err)
	}
	got := NewResolver(nil).Derive(reg.Policies())
	equal(t, "warnings", got.Warnings, []string(nil))

	raw, err := os.ReadFile("../../manifests/base/webhooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := dec.Decode(&vwc); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&mwc); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name            string
		manifest, rules []admissionregistrationv1.RuleWithOperations
	}{
		{"validating", vwc.Webhooks[0].Rules, got.Validating},
		{"mutating", mwc.Webhooks[0].Rules, got.Mutating},
	} {
		equal(t, c.name+": derived rules the manifest lacks", Missing(c.manifest, c.rules), []admissionregistrationv1.RuleWithOperations{})
		equal(t, c.name+": manifest rules no policy needs", Missing(c.rules, c.manifest), []admissionregistrationv1.RuleWithOperations{})
	}
}

func TestMissing(t *testing.T) {
	want := []admissionregistrationv1.RuleWithOperations{
		rule("", "v1", createUpdate, "pods", "pods/ephemeralcontainers", "services"),
	}
	tests := map[string]struct {
		have []admissionregistrationv1.RuleWithOperations
		want []admissionregistrationv1.RuleWithOperations
	}{
		"nothing registered": {nil, want},
		"exactly registered": {want, []admissionregistrationv1.RuleWithOperations{}},
		"services missing": {
			[]admissionregistrationv1.RuleWithOperations{rule("", "v1", createUpdate, "pods", "pods/ephemeralcontainers")},
			[]admissionregistrationv1.RuleWithOperations{rule("", "v1", createUpdate, "services")},
		},
		"UPDATE missing": {
			[]admissionregistrationv1.RuleWithOperations{rule("", "v1", []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, "pods", "pods/ephemeralcontainers", "services")},
			[]admissionregistrationv1.RuleWithOperations{rule("", "v1", []admissionregistrationv1.OperationType{admissionregistrationv1.Update}, "pods", "pods/ephemeralcontainers", "services")},
		},
		"* covers resources, not subresources": {
			[]admissionregistrationv1.RuleWithOperations{rule("", "v1", createUpdate, "*")},
			[]admissionregistrationv1.RuleWithOperations{rule("", "v1", createUpdate, "pods/ephemeralcontainers")},
		},
		"*/* covers both": {
			[]admissionregistrationv1.RuleWithOperations{rule("*", "*", []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}, "*/*")},
			[]admissionregistrationv1.RuleWithOperations{},
		},
		"pods/* and */ephemeralcontainers cover the subresource only": {
			[]admissionregistrationv1.RuleWithOperations{
				rule("", "v1", createUpdate, "pods/*"),
				rule("", "v1", createUpdate, "*/ephemeralcontainers"),
			},
			[]admissionregistrationv1.RuleWithOperations{rule("", "v1", createUpdate, "pods", "services")},
		},
		"another version": {
			[]admissionregistrationv1.RuleWithOperations{rule("", "v2", createUpdate, "pods", "pods/ephemeralcontainers", "services")},
			want,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			equal(t, "missing", Missing(tt.have, want), tt.want)
		})
	}
}
