package policies_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/policies/mutations/podgen"
)

// TestFoldKeepsDecisions checks that computing the request-independent rules
// at load (engine.Registry.FoldedRules) changes no decision: every built-in
// policy, validating and mutating, on generated Pods and workloads (the Pod
// Security oracle's scenarios, with Pod Security Admission namespace labels)
// and on generated pods with Vault annotations, under several
// configurations, gives the same violations, warnings, errors and patch with
// and without folding.
func TestFoldKeepsDecisions(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 100
	}
	configs := map[string]string{
		"defaults": "",
		"restricted with exemptions and namespace levels": `
policies:
  pod_security:
    level: baseline
    label_precedence: config
    namespace_levels: {"team-*": restricted, "legacy": privileged, "bad": nonsense}
    exemptions: {namespaces: [exempt-ns], usernames: ["system:serviceaccount:ci:deployer"], runtime_classes: [kata]}
    templates: warn
`,
		"mutations all on": `
policies:
  security_context: {run_as_user: 10001, defaults: {read_only_root_filesystem: true, apparmor_profile: true}}
  vault_agent: {native_sidecar: true}
`,
	}
	namespaces := []string{"default", "team-a", "legacy", "bad", "exempt-ns", "kube-public"}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			labels := map[string]map[string]string{}
			g := &podGenerator{r: rand.New(rand.NewPCG(20261203, 7))}
			for _, ns := range namespaces {
				labels[ns] = g.psaLabels()
			}
			folded, plain := loadBoth(t, cfg, labels)
			if len(folded.Registry().FoldedRules()) == 0 {
				t.Fatal("no rule was folded")
			}
			denied, warned, patched := 0, 0, 0
			for i := range n {
				var review map[string]any
				if i%2 == 0 {
					review = g.admissionScenario().review
				} else {
					review = podReview(podgen.Pod(rand.New(rand.NewPCG(uint64(i), 42))))
				}
				fields := review["request"].(map[string]any)
				if ns, ok := fields["namespace"].(string); !ok || ns == "default" {
					fields["namespace"] = namespaces[i%len(namespaces)]
				}
				req := request(t, review)
				for _, phase := range []engine.Phase{engine.Validating, engine.Mutating} {
					want, err := plain.Evaluate(context.Background(), phase, req, engine.Options{})
					if err != nil {
						t.Fatal(err)
					}
					got, err := folded.Evaluate(context.Background(), phase, req, engine.Options{})
					if err != nil {
						t.Fatal(err)
					}
					if !got.Allowed {
						denied++
					}
					if len(got.Warnings) > 0 {
						warned++
					}
					if len(got.Patch) > 0 {
						patched++
					}
					if !sameDecision(got, want) {
						raw, _ := json.Marshal(review["request"])
						t.Fatalf("request %d, %s: folded and unfolded decisions differ\nrequest: %s\nfolded:   %+v\nunfolded: %+v", i, phase, raw, got, want)
					}
				}
			}
			// The comparison must cover every kind of outcome.
			if denied == 0 || warned == 0 || patched == 0 {
				t.Errorf("%d denied, %d warned, %d patched decisions: the generated requests no longer cover every outcome", denied, warned, patched)
			}
			t.Logf("%d requests: %d denied, %d warned, %d patched decisions compared", n, denied, warned, patched)
		})
	}
}

// TestFoldedRules names what folding computes at load with the default
// configuration: configuration lookups and the values derived from them,
// never a rule reading input and never a policy's entry rules.
func TestFoldedRules(t *testing.T) {
	folded, _ := loadBoth(t, "", nil)
	got := folded.Registry().FoldedRules()
	for _, want := range []string{
		"data.portcullis.pod_security.settings",
		"data.portcullis.pod_security.configured_level",
		"data.portcullis.pod_security.invalid_levels",
		"data.portcullis.image_sources.settings",
		"data.portcullis.secret_handling._name_pattern",
		"data.portcullis.vault_agent.cfg",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("%s was not folded; folded: %q", want, got)
		}
	}
	for _, never := range []string{
		"data.portcullis.pod_security.level",             // reads the namespace
		"data.portcullis.pod_security.request_namespace", // reads input
		"data.portcullis.pod_security.deny",              // an entry rule
		"data.portcullis.pod_security.checks",            // already a literal
	} {
		if slices.Contains(got, never) {
			t.Errorf("%s was folded", never)
		}
	}
}

func loadBoth(t *testing.T, cfg string, labels map[string]map[string]string) (folded, plain *engine.Engine) {
	t.Helper()
	defaults, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	configs := [][]byte{defaults}
	if cfg != "" {
		configs = append(configs, []byte(cfg))
	}
	var opts []engine.EngineOption
	if labels != nil {
		opts = append(opts, engine.WithNamespaceLabels(staticLabels(labels)))
	}
	for _, noFold := range []bool{false, true} {
		reg, err := engine.Load(context.Background(), engine.Source{Policies: policies.FS, Configs: configs, NoFold: noFold})
		if err != nil {
			t.Fatal(err)
		}
		if noFold {
			if n := len(reg.FoldedRules()); n != 0 {
				t.Fatalf("NoFold: %d rules folded", n)
			}
			plain = engine.New(reg, nil, opts...)
		} else {
			folded = engine.New(reg, nil, opts...)
		}
	}
	return folded, plain
}

type staticLabels map[string]map[string]string

func (s staticLabels) NamespaceLabels(_ context.Context, ns string) (map[string]string, error) {
	return s[ns], nil
}

func podReview(pod map[string]any) map[string]any {
	pod["apiVersion"], pod["kind"] = "v1", "Pod"
	return map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "fold",
			"kind":      map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"operation": "CREATE",
			"userInfo":  map[string]any{"username": "alice"},
			"object":    pod,
		},
	}
}

// sameDecision compares everything a client or log sees of a decision.
func sameDecision(a, b *engine.Decision) bool {
	return a.Allowed == b.Allowed && a.Exempt == b.Exempt &&
		reflect.DeepEqual(a.Violations, b.Violations) &&
		reflect.DeepEqual(a.Warnings, b.Warnings) &&
		reflect.DeepEqual(a.Errors, b.Errors) &&
		reflect.DeepEqual(a.Evaluated, b.Evaluated) &&
		reflect.DeepEqual(a.Patch, b.Patch)
}
