package policies_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/admission"
	admissionapi "k8s.io/pod-security-admission/admission/api"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// TestPodSecurityOracleNamespaceLabels compares whole Pod admission
// decisions with upstream's admission.Admission when namespaces carry Pod
// Security Admission labels (enforce, warn, audit and their -version labels,
// valid and invalid values): the same allow/deny, the same denial details,
// the same warnings ("would violate PodSecurity ...") and the same
// audit-violations text (our pod_security audit entry). Upstream's defaults
// are our configuration's: the configured level enforced, warn and audit
// privileged. Versions other than latest are generated only as v1.37 (this
// release's checks) and invalid values: our checks are the latest ones.
//
// Pods only: upstream only warns on workloads, while our policy enforces on
// their templates (TestPodSecurityOracleAdmission covers that difference).
func TestPodSecurityOracleNamespaceLabels(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 300
	}
	exemptions := admissionapi.PodSecurityExemptions{
		Namespaces:     []string{"exempt-ns"},
		Usernames:      []string{"system:serviceaccount:ci:deployer"},
		RuntimeClasses: []string{"kata"},
	}
	const exemptionsYAML = `
    exemptions:
      namespaces: [exempt-ns]
      usernames: ["system:serviceaccount:ci:deployer"]
      runtime_classes: [kata]
`
	g := &podGenerator{r: rand.New(rand.NewPCG(20261203, 7))}
	labels := &mutableLabels{}
	disagreements, compared := 0, 0
	counts := map[string]int{}
	for _, level := range []api.Level{api.LevelBaseline, api.LevelRestricted} {
		upstream := newUpstreamLabelAdmission(t, level, exemptions, labels)
		ours := newLabelledPodSecurity(t, fmt.Sprintf("policies:\n  pod_security:\n    level: %s\n%s", level, exemptionsYAML), labels)
		for i := 0; compared < n*(1+slices.Index([]api.Level{api.LevelBaseline, api.LevelRestricted}, level)); i++ {
			sc := g.admissionScenario()
			if sc.attrs.Resource.Resource != "pods" {
				continue
			}
			compared++
			labels.set(g.psaLabels())
			resp := upstream.Validate(context.Background(), sc.attrs)
			want := labelDecision{allowed: resp.Allowed, warnings: resp.Warnings, audit: resp.AuditAnnotations[api.AuditViolationsAnnotationKey]}
			if !resp.Allowed {
				msg := resp.Result.Message
				_, detail, ok := strings.Cut(msg, "violates PodSecurity ")
				if _, detail, ok = strings.Cut(detail, `": `); !ok {
					t.Fatalf("%s: upstream denied with %q", sc.what, msg)
				}
				want.detail = detail
			}
			got := ours.eval(t, sc.review)
			switch {
			case !want.allowed:
				counts["denied"]++
			case len(want.warnings) > 0:
				counts["allowed with a warning"]++
			default:
				counts["allowed"]++
			}
			if want.audit != "" {
				counts["audit-violations"]++
			}
			if got.equal(want) {
				continue
			}
			disagreements++
			if disagreements <= 10 {
				raw, _ := json.Marshal(sc.review["request"])
				t.Errorf("scenario %d at default %s (%s), labels %v: disagreement\nrequest: %s\nupstream: %+v\nours:     %+v",
					i, level, sc.what, labels.get(), raw, want, got)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("%-25s %4d", k, counts[k])
	}
	if disagreements > 0 {
		t.Errorf("%d disagreements in %d scenarios", disagreements, compared)
	}
}

// labelDecision is what the comparison looks at. detail is the denial's
// details (after `violates PodSecurity "<level>:<version>": `; the enforced
// level shows in which checks fail).
type labelDecision struct {
	allowed  bool
	detail   string
	warnings []string
	audit    string
}

func (d labelDecision) equal(o labelDecision) bool {
	return d.allowed == o.allowed && d.detail == o.detail && slices.Equal(d.warnings, o.warnings) && d.audit == o.audit
}

// psaLabels draws a namespace's Pod Security labels.
func (g *podGenerator) psaLabels() map[string]string {
	out := map[string]string{}
	for _, mode := range []string{"enforce", "warn", "audit"} {
		if g.chance(0.55) {
			out["pod-security.kubernetes.io/"+mode] = g.oneOf("privileged", "baseline", "restricted", "restricted", "baseline", "Restricted", "").(string)
		}
		if g.chance(0.25) {
			out["pod-security.kubernetes.io/"+mode+"-version"] = g.oneOf("latest", "v1.37", "v2.0", "1.30").(string)
		}
	}
	if g.chance(0.1) {
		out["team"] = "payments"
	}
	return out
}

// mutableLabels is the namespace's labels for both sides: upstream's
// NamespaceGetter and our engine's NamespaceLabeler.
type mutableLabels struct {
	mu     sync.Mutex
	labels map[string]string
}

func (m *mutableLabels) set(l map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.labels = l
}

func (m *mutableLabels) get() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.labels)
}

func (m *mutableLabels) GetNamespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: m.get()}}, nil
}

func (m *mutableLabels) NamespaceLabels(context.Context, string) (map[string]string, error) {
	return m.get(), nil
}

func newUpstreamLabelAdmission(t *testing.T, level api.Level, exemptions admissionapi.PodSecurityExemptions, ns *mutableLabels) *admission.Admission {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &admission.Admission{
		Configuration: &admissionapi.PodSecurityConfiguration{
			Defaults: admissionapi.PodSecurityDefaults{
				Enforce: string(level), EnforceVersion: "latest",
				Audit: "privileged", AuditVersion: "latest",
				Warn: "privileged", WarnVersion: "latest",
			},
			Exemptions: exemptions,
		},
		Evaluator:       evaluator,
		Metrics:         noopRecorder{},
		NamespaceGetter: ns,
		PodLister:       podLister{},
	}
	if err := a.CompleteConfiguration(); err != nil {
		t.Fatal(err)
	}
	if err := a.ValidateConfiguration(); err != nil {
		t.Fatal(err)
	}
	return a
}

type labelledPodSecurity struct{ engine *engine.Engine }

func newLabelledPodSecurity(t *testing.T, overrideYAML string, ns engine.NamespaceLabeler) *labelledPodSecurity {
	t.Helper()
	defaults, err := fs.ReadFile(policies.FS, policies.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := engine.Load(context.Background(), engine.Source{Policies: policies.FS, Configs: [][]byte{defaults, []byte(overrideYAML)}})
	if err != nil {
		t.Fatal(err)
	}
	return &labelledPodSecurity{engine: engine.New(reg, nil, engine.WithNamespaceLabels(ns))}
}

// eval maps our decision onto upstream's shape: the denial detail is
// `"<level>:<version>": ` and the deny messages joined in upstream's order;
// warnings lose the engine's "pod_security: " prefix; the audit entry is the
// audit-violations text.
func (p *labelledPodSecurity) eval(t *testing.T, review map[string]any) labelDecision {
	t.Helper()
	dec, err := p.engine.Evaluate(context.Background(), engine.Validating, request(t, review), engine.Options{Policies: []string{"pod_security"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(dec.Errors) > 0 {
		t.Fatalf("evaluate pod_security: %v", dec.Errors[0].Err)
	}
	out := labelDecision{allowed: dec.Allowed}
	var deny []psViolation
	for _, v := range dec.Violations {
		switch v.Enforcement {
		case engine.EnforceAudit:
			if out.audit != "" {
				t.Fatalf("two audit entries: %q, %q", out.audit, v.Message)
			}
			out.audit = v.Message
		default:
			check, _ := v.Details["check"].(string)
			level, _ := v.Details["level"].(string)
			deny = append(deny, psViolation{Msg: v.Message, Check: check, Level: level})
		}
	}
	var msgs []string
	for _, v := range slices.SortedFunc(slices.Values(deny), byUpstreamOrder) {
		msgs = append(msgs, v.Msg)
	}
	out.detail = strings.Join(msgs, ", ")
	for _, w := range dec.Warnings {
		out.warnings = append(out.warnings, strings.TrimPrefix(w, "pod_security: "))
	}
	return out
}
