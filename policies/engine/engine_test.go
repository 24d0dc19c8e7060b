package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// fixtureDir is the on-disk fixture policy set (see its README.md).
const fixtureDir = "../../webhooks/testdata/engine-policies"

// fixtureSource is the fixture set with its config.yaml as defaults and
// override (if any) merged over it, as `--config` would be.
func fixtureSource(t testing.TB, override string) Source {
	t.Helper()
	defaults, err := os.ReadFile(filepath.Join(fixtureDir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	configs := [][]byte{defaults}
	if override != "" {
		configs = append(configs, []byte(override))
	}
	return Source{Policies: os.DirFS(fixtureDir), Configs: configs}
}

func loadFixture(t testing.TB, override string) *Registry {
	t.Helper()
	reg, err := Load(context.Background(), fixtureSource(t, override))
	if err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	return reg
}

// mapFS builds a policy file system from file name → content.
func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return fsys
}

func mustLoad(t testing.TB, fsys fs.FS, configs ...string) *Registry {
	t.Helper()
	src := Source{Policies: fsys}
	for _, c := range configs {
		src.Configs = append(src.Configs, []byte(c))
	}
	reg, err := Load(context.Background(), src)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return reg
}

// validating and mutating build a one-policy module with METADATA.
func validating(id, body string) string {
	return "# METADATA\n# title: " + id + "\n# custom:\n#   kind: validating\npackage portcullis." + id + "\n\n" + body + "\n"
}

func mutating(id, body string) string {
	return "# METADATA\n# title: " + id + "\n# custom:\n#   kind: mutating\npackage portcullis." + id + "\n\n" + body + "\n"
}

// request builds an AdmissionRequest for obj (nil: no object, as on DELETE).
func request(t testing.TB, kind, resource, subResource, ns, name, op string, obj any) *admissionv1.AdmissionRequest {
	t.Helper()
	req := &admissionv1.AdmissionRequest{
		UID:         "b7e2c4a0-0000-4000-8000-000000000001",
		Kind:        metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Resource:    metav1.GroupVersionResource{Version: "v1", Resource: resource},
		SubResource: subResource,
		Namespace:   ns,
		Name:        name,
		Operation:   admissionv1.Operation(op),
	}
	if obj != nil {
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		req.Object = runtime.RawExtension{Raw: raw}
	}
	return req
}

// pod returns a Pod named web in namespace default with the given labels and
// containers.
func pod(labels map[string]any, containers ...map[string]any) map[string]any {
	list := make([]any, len(containers))
	for i, c := range containers {
		list[i] = c
	}
	meta := map[string]any{"name": "web", "namespace": "default"}
	if labels != nil {
		meta["labels"] = labels
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": map[string]any{"containers": list}}
}

func container(name, image string, privileged bool) map[string]any {
	c := map[string]any{"name": name, "image": image}
	if privileged {
		c["securityContext"] = map[string]any{"privileged": true}
	}
	return c
}

func podRequest(t testing.TB, ns string, p map[string]any) *admissionv1.AdmissionRequest {
	return request(t, "Pod", "pods", "", ns, "web", "CREATE", p)
}

var teamPayments = map[string]any{"team": "payments"}

func evaluate(t testing.TB, reg *Registry, phase Phase, req *admissionv1.AdmissionRequest) *Decision {
	t.Helper()
	dec, err := New(reg, nil).Evaluate(context.Background(), phase, req, Options{})
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	return dec
}

// recorder is an Observer keeping "policy/outcome" per call.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) ObservePolicy(policy string, phase Phase, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, string(phase)+"/"+policy+"/"+outcome)
}

// policyView is the comparable part of a Policy.
type policyView struct {
	ID, Title, Description string
	Kind                   Kind
	Enforcement            Enforcement
	FailureMode            FailureMode
	Resources              []string
	File                   string
	Row                    int
}

func view(p *Policy) policyView {
	return policyView{p.ID, p.Title, p.Description, p.Kind, p.Enforcement, p.FailureMode, p.Resources, p.File, p.Row}
}

func TestLoadFixtureMetadata(t *testing.T) {
	t.Parallel()
	reg := loadFixture(t, "")
	var got []policyView
	for _, p := range reg.Policies() {
		got = append(got, view(p))
	}
	want := []policyView{
		{
			ID: "fx_pod_defaults", Title: "Pod defaults",
			Description: "Defaults pods to non-root, annotates them and adds a log agent.",
			Kind:        Mutating, Enforcement: EnforceDeny, FailureMode: FailAllow,
			Resources: []string{"pods"}, File: "fx_pod_defaults/fx_pod_defaults.rego", Row: 8,
		},
		{
			ID: "fx_privileged", Title: "No privileged containers",
			Description: "Containers must not run privileged.",
			Kind:        Validating, Enforcement: EnforceDeny, FailureMode: FailDeny,
			Resources: []string{"pods", "pods/ephemeralcontainers"}, File: "fx_privileged/fx_privileged.rego", Row: 11,
		},
		{
			ID: "fx_team_label", Title: "Team label",
			Description: "Objects carry a team label naming a known team.",
			Kind:        Validating, Enforcement: EnforceWarn, FailureMode: FailAllow,
			File: "fx_team_label/fx_team_label.rego", Row: 8,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("policies:\n got %+v\nwant %+v", got, want)
	}
	if reg.Policy("fx_privileged") == nil || reg.Policy("lib") != nil || reg.Policy("fx_pods") != nil {
		t.Errorf("Policy lookup: fx_privileged=%v lib=%v fx_pods=%v", reg.Policy("fx_privileged"), reg.Policy("lib"), reg.Policy("fx_pods"))
	}
	if len(reg.Warnings) != 0 {
		t.Errorf("warnings: %q", reg.Warnings)
	}
}

// Test files, hidden directories and testdata directories are not policies:
// a broken module there must not stop the load.
func TestLoadSkipsTestsHiddenAndTestdata(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{
		"ok/ok.rego":              validating("ok", `deny contains {"msg": "x"} if false`),
		"ok/ok_test.rego":         "package portcullis.ok_test\n\ntest_x if {",
		".git/hooks/x.rego":       "package broken {",
		"ok/testdata/input.rego":  "package broken {",
		"ok/README.md":            "not rego",
		"ok/data.json":            `{"not": "loaded"}`,
		"lib/helpers/extra.rego":  "package portcullis.lib.helpers\n\nx := 1\n",
		"deeper/nested/more.rego": validating("nested", `deny contains {"msg": "y"} if false`),
	}))
	var ids []string
	for _, p := range reg.Policies() {
		ids = append(ids, p.ID)
	}
	if want := []string{"nested", "ok"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids = %q, want %q", ids, want)
	}
}

func TestMergeConfig(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		docs []string
		want map[string]any
	}{
		"no documents": {
			want: map[string]any{},
		},
		"defaults only": {
			docs: []string{"a: 1\nb: [x]\n"},
			want: map[string]any{"a": float64(1), "b": []any{"x"}},
		},
		"objects merge key by key, deeply": {
			docs: []string{"p:\n  x: {a: 1, b: 2}\n  keep: 1\n", "p:\n  x: {b: 3, c: 4}\n  add: 5\n"},
			want: map[string]any{"p": map[string]any{"x": map[string]any{"a": float64(1), "b": float64(3), "c": float64(4)}, "keep": float64(1), "add": float64(5)}},
		},
		"lists replace": {
			docs: []string{"l: [a, b]\n", "l: [c]\n"},
			want: map[string]any{"l": []any{"c"}},
		},
		"empty list replaces": {
			docs: []string{"l: [a, b]\n", "l: []\n"},
			want: map[string]any{"l": []any{}},
		},
		"scalars replace": {
			docs: []string{"s: a\nnum: 1\n", "s: b\n"},
			want: map[string]any{"s": "b", "num": float64(1)},
		},
		"an object replaces a scalar and a scalar an object": {
			docs: []string{"a: 1\nb: {x: 1}\n", "a: {z: 2}\nb: false\n"},
			want: map[string]any{"a": map[string]any{"z": float64(2)}, "b": false},
		},
		"null replaces": {
			docs: []string{"a: {x: 1}\n", "a: null\n"},
			want: map[string]any{"a": nil},
		},
		"empty documents are skipped": {
			docs: []string{"a: 1\n", "", "b: 2\n"},
			want: map[string]any{"a": float64(1), "b": float64(2)},
		},
		"three layers in order": {
			docs: []string{"a: 1\n", "a: 2\n", "a: 3\n"},
			want: map[string]any{"a": float64(3)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var docs [][]byte
			for _, d := range tc.docs {
				docs = append(docs, []byte(d))
			}
			got, err := MergeConfig(docs...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestMergeConfigInvalidYAML(t *testing.T) {
	t.Parallel()
	_, err := MergeConfig([]byte("a: 1\n"), []byte("a: [unclosed\n"))
	const want = "config document 1: error converting YAML to JSON: yaml: line 1: did not find expected ',' or ']'"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	_, err = MergeConfig([]byte("- a list\n"))
	const wantList = "config document 0: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"
	if err == nil || err.Error() != wantList {
		t.Errorf("err = %v\nwant %s", err, wantList)
	}
}

// The merged configuration is what Rego sees: objects merged, lists replaced.
func TestConfigMergeVisibleToRego(t *testing.T) {
	t.Parallel()
	reg := loadFixture(t, "policies:\n  fx_team_label:\n    teams: [platform]\n    owners:\n      platform: carol\n")
	wantCfg := map[string]any{
		"teams":  []any{"platform"},
		"owners": map[string]any{"payments": "alice", "search": "bob", "platform": "carol"},
	}
	got := reg.Config()["policies"].(map[string]any)["fx_team_label"]
	if !reflect.DeepEqual(got, wantCfg) {
		t.Errorf("merged fx_team_label config = %#v\nwant %#v", got, wantCfg)
	}
	dec := evaluate(t, reg, Validating, podRequest(t, "default", pod(teamPayments, container("app", "nginx:1.27", false))))
	want := []string{`fx_team_label: team "payments" is not one of: platform`}
	if !reflect.DeepEqual(dec.Warnings, want) {
		t.Errorf("warnings = %q, want %q", dec.Warnings, want)
	}
}

func TestConfigPolicySettings(t *testing.T) {
	t.Parallel()
	type settings struct {
		Enforcement Enforcement
		FailureMode FailureMode
	}
	defaults := map[string]settings{
		"fx_pod_defaults": {EnforceDeny, FailAllow},
		"fx_privileged":   {EnforceDeny, FailDeny},
		"fx_team_label":   {EnforceWarn, FailAllow},
	}
	with := func(id string, s settings) map[string]settings {
		out := map[string]settings{}
		for k, v := range defaults {
			out[k] = v
		}
		out[id] = s
		return out
	}
	tests := map[string]struct {
		config   string
		want     map[string]settings
		warnings []string
	}{
		"metadata defaults": {want: defaults},
		"enforcement override": {
			config: "policies:\n  fx_privileged:\n    enforcement: audit\n",
			// audit without an explicit failure_mode fails open (warning).
			want: with("fx_privileged", settings{EnforceAudit, FailAllow}),
		},
		"enforcement override of a metadata warn": {
			config: "policies:\n  fx_team_label:\n    enforcement: deny\n",
			want:   with("fx_team_label", settings{EnforceDeny, FailAllow}),
		},
		"failure_mode override to allow": {
			config: "policies:\n  fx_privileged:\n    failure_mode: allow\n",
			want:   with("fx_privileged", settings{EnforceDeny, FailAllow}),
		},
		"failure_mode override of a mutating policy to deny": {
			config: "policies:\n  fx_pod_defaults:\n    failure_mode: deny\n",
			want:   with("fx_pod_defaults", settings{EnforceDeny, FailDeny}),
		},
		"enabled false drops the policy": {
			config: "policies:\n  fx_team_label:\n    enabled: false\n",
			want:   map[string]settings{"fx_pod_defaults": defaults["fx_pod_defaults"], "fx_privileged": defaults["fx_privileged"]},
		},
		"enabled true changes nothing": {
			config: "policies:\n  fx_team_label:\n    enabled: true\n",
			want:   defaults,
		},
		"null settings are ignored": {
			config: "policies:\n  fx_team_label: null\n",
			want:   defaults,
		},
		"a disabled policy's settings are not a warning": {
			config: "policies:\n  fx_pod_defaults:\n    enabled: false\n    failure_mode: deny\n",
			want:   map[string]settings{"fx_privileged": defaults["fx_privileged"], "fx_team_label": defaults["fx_team_label"]},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := loadFixture(t, tc.config)
			got := map[string]settings{}
			for _, p := range reg.Policies() {
				got[p.ID] = settings{p.Enforcement, p.FailureMode}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("settings = %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(reg.Warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", reg.Warnings, tc.warnings)
			}
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ config, want string }{
		"unknown enforcement": {
			config: "policies:\n  fx_privileged:\n    enforcement: block\n",
			want:   `load policies: config: policies.fx_privileged.enforcement "block": must be deny, warn or audit`,
		},
		"enforcement not a string": {
			config: "policies:\n  fx_privileged:\n    enforcement: 3\n",
			want:   `load policies: config: policies.fx_privileged.enforcement "": must be deny, warn or audit`,
		},
		"unknown failure_mode": {
			config: "policies:\n  fx_privileged:\n    failure_mode: maybe\n",
			want:   `load policies: config: policies.fx_privileged.failure_mode "maybe": must be deny or allow`,
		},
		"enabled not a bool": {
			config: "policies:\n  fx_privileged:\n    enabled: \"sometimes\"\n",
			want:   `load policies: config: policies.fx_privileged.enabled: must be true or false`,
		},
		"policy settings not a map": {
			config: "policies:\n  fx_privileged: off\n",
			want:   `load policies: config: policies.fx_privileged: must be a map of settings`,
		},
		"policies not a map": {
			config: "policies: [fx_privileged]\n",
			want:   `load policies: config: policies: must be a map of policy ID to settings`,
		},
		"exempt_namespaces not a list": {
			config: "exempt_namespaces: kube-system\n",
			want:   `load policies: config: exempt_namespaces: must be a list of namespace names or globs`,
		},
		"exempt_namespaces entry not a string": {
			config: "exempt_namespaces: [1]\n",
			want:   `load policies: config: exempt_namespaces: 1 is not a namespace name`,
		},
		"config not YAML": {
			config: "policies: {\n",
			want:   `load policies: config document 1: error converting YAML to JSON: yaml: line 1: did not find expected node content`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(context.Background(), fixtureSource(t, tc.config))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
			if !errors.Is(err, ErrLoad) {
				t.Errorf("err does not wrap ErrLoad")
			}
		})
	}
}

func TestExemptNamespaces(t *testing.T) {
	t.Parallel()
	privileged := pod(teamPayments, container("app", "nginx:1.27", true))
	tests := map[string]struct {
		config, namespace string
		exempt            bool
	}{
		"exact name":                       {namespace: "kube-system", exempt: true},
		"glob":                             {namespace: "sandbox-alice", exempt: true},
		"glob needs its literal part":      {namespace: "sandbox", exempt: false},
		"glob does not match a prefix":     {namespace: "my-sandbox-1", exempt: false},
		"other namespace":                  {namespace: "default", exempt: false},
		"cluster-scoped is never exempt":   {namespace: "", exempt: false},
		"override replaces the list":       {config: "exempt_namespaces: [team-*]\n", namespace: "kube-system", exempt: false},
		"override's glob":                  {config: "exempt_namespaces: [team-*]\n", namespace: "team-a", exempt: true},
		"empty list exempts nothing":       {config: "exempt_namespaces: []\n", namespace: "kube-system", exempt: false},
		"character class glob":             {config: "exempt_namespaces: [\"ns-[0-9]\"]\n", namespace: "ns-7", exempt: true},
		"character class glob (no match)":  {config: "exempt_namespaces: [\"ns-[0-9]\"]\n", namespace: "ns-x", exempt: false},
		"question mark matches one letter": {config: "exempt_namespaces: [\"ns-?\"]\n", namespace: "ns-ab", exempt: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := loadFixture(t, tc.config)
			for _, phase := range []Phase{Validating, Mutating} {
				dec := evaluate(t, reg, phase, podRequest(t, tc.namespace, privileged))
				if dec.Exempt != tc.exempt {
					t.Errorf("%s: Exempt = %v, want %v", phase, dec.Exempt, tc.exempt)
				}
				if tc.exempt && (!dec.Allowed || dec.Evaluated != nil || dec.Patch != nil || dec.Violations != nil) {
					t.Errorf("%s: exempt decision evaluated something: %+v", phase, dec)
				}
				if !tc.exempt && len(dec.Evaluated) == 0 {
					t.Errorf("%s: nothing evaluated", phase)
				}
			}
		})
	}
}

func TestResourcesFilter(t *testing.T) {
	t.Parallel()
	reg := loadFixture(t, "")
	tests := map[string]struct {
		kind, resource, subResource string
		phase                       Phase
		want                        []string
	}{
		"pods":                      {"Pod", "pods", "", Validating, []string{"fx_privileged", "fx_team_label"}},
		"pods/ephemeralcontainers":  {"Pod", "pods", "ephemeralcontainers", Validating, []string{"fx_privileged", "fx_team_label"}},
		"pods/status is not listed": {"Pod", "pods", "status", Validating, []string{"fx_team_label"}},
		"deployments":               {"Deployment", "deployments", "", Validating, []string{"fx_team_label"}},
		"mutating pods":             {"Pod", "pods", "", Mutating, []string{"fx_pod_defaults"}},
		"mutating pods/status":      {"Pod", "pods", "status", Mutating, nil},
		"mutating configmaps":       {"ConfigMap", "configmaps", "", Mutating, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := request(t, tc.kind, tc.resource, tc.subResource, "default", "web", "CREATE", pod(teamPayments))
			dec := evaluate(t, reg, tc.phase, req)
			if !reflect.DeepEqual(dec.Evaluated, tc.want) {
				t.Errorf("evaluated %q, want %q", dec.Evaluated, tc.want)
			}
		})
	}
}

func TestAppliesTo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resources             []string
		resource, subResource string
		want                  bool
	}{
		{nil, "anything", "", true},
		{nil, "pods", "exec", true},
		{[]string{"pods"}, "pods", "", true},
		{[]string{"pods"}, "pods", "ephemeralcontainers", false},
		{[]string{"pods/ephemeralcontainers"}, "pods", "ephemeralcontainers", true},
		{[]string{"pods/ephemeralcontainers"}, "pods", "", false},
		{[]string{"deployments", "pods"}, "pods", "", true},
		{[]string{"*"}, "secrets", "", true},
		{[]string{"*"}, "pods", "status", true},
	}
	for _, tc := range tests {
		p := &Policy{Resources: tc.resources}
		if got := p.AppliesTo(tc.resource, tc.subResource); got != tc.want {
			t.Errorf("%q.AppliesTo(%q, %q) = %v, want %v", tc.resources, tc.resource, tc.subResource, got, tc.want)
		}
	}
}

func TestPolicyIDOptions(t *testing.T) {
	t.Parallel()
	reg := loadFixture(t, "")
	req := podRequest(t, "default", pod(nil, container("app", "nginx:1.27", true)))
	dec, err := New(reg, nil).Evaluate(context.Background(), Validating, req, Options{Policies: []string{"fx_team_label", "fx_pod_defaults", "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"fx_team_label"}; !reflect.DeepEqual(dec.Evaluated, want) {
		t.Errorf("evaluated %q, want %q", dec.Evaluated, want)
	}
	if !dec.Allowed {
		t.Errorf("denied by a policy that was not selected: %+v", dec.Violations)
	}
}

func TestEnforcementModes(t *testing.T) {
	t.Parallel()
	privileged := pod(teamPayments, container("app", "nginx:1.27", true), container("sidecar", "envoy:1.30", true))
	details := map[string]any{"field": "securityContext.privileged"}
	tests := map[string]struct {
		config       string
		allowed      bool
		violations   []Violation
		warnings     []string
		message      string
		outcome      string
		deniedBy     []string
		warnedBy     []string
		auditedBy    []string
		unprivileged bool
	}{
		"deny rejects": {
			allowed: false,
			violations: []Violation{
				{Policy: "fx_privileged", Enforcement: EnforceDeny, Message: `container "app" must not be privileged`, Details: details},
				{Policy: "fx_privileged", Enforcement: EnforceDeny, Message: `container "sidecar" must not be privileged`, Details: details},
			},
			message:  `[fx_privileged] container "app" must not be privileged; [fx_privileged] container "sidecar" must not be privileged`,
			outcome:  OutcomeDenied,
			deniedBy: []string{"fx_privileged"},
		},
		"warn admits with warnings": {
			config:  "policies:\n  fx_privileged:\n    enforcement: warn\n",
			allowed: true,
			violations: []Violation{
				{Policy: "fx_privileged", Enforcement: EnforceWarn, Message: `container "app" must not be privileged`, Details: details},
				{Policy: "fx_privileged", Enforcement: EnforceWarn, Message: `container "sidecar" must not be privileged`, Details: details},
			},
			warnings: []string{`fx_privileged: container "app" must not be privileged`, `fx_privileged: container "sidecar" must not be privileged`},
			outcome:  OutcomeWarned,
			warnedBy: []string{"fx_privileged"},
		},
		"audit admits silently and records": {
			config:  "policies:\n  fx_privileged:\n    enforcement: audit\n",
			allowed: true,
			violations: []Violation{
				{Policy: "fx_privileged", Enforcement: EnforceAudit, Message: `container "app" must not be privileged`, Details: details},
				{Policy: "fx_privileged", Enforcement: EnforceAudit, Message: `container "sidecar" must not be privileged`, Details: details},
			},
			outcome:   OutcomeAudited,
			auditedBy: []string{"fx_privileged"},
		},
		"no violation is allowed": {
			unprivileged: true,
			allowed:      true,
			outcome:      OutcomeAllowed,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := loadFixture(t, tc.config)
			obs := &recorder{}
			obj := privileged
			if tc.unprivileged {
				obj = pod(teamPayments, container("app", "nginx:1.27", false))
			}
			dec, err := New(reg, obs).Evaluate(context.Background(), Validating, podRequest(t, "default", obj), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed != tc.allowed {
				t.Errorf("Allowed = %v, want %v", dec.Allowed, tc.allowed)
			}
			if !reflect.DeepEqual(dec.Violations, tc.violations) {
				t.Errorf("violations:\n got %+v\nwant %+v", dec.Violations, tc.violations)
			}
			if !reflect.DeepEqual(dec.Warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", dec.Warnings, tc.warnings)
			}
			if got := dec.Message(); got != tc.message {
				t.Errorf("Message() = %q, want %q", got, tc.message)
			}
			for e, want := range map[Enforcement][]string{EnforceDeny: tc.deniedBy, EnforceWarn: tc.warnedBy, EnforceAudit: tc.auditedBy} {
				if got := dec.DeniedBy(e); !reflect.DeepEqual(got, want) {
					t.Errorf("DeniedBy(%s) = %q, want %q", e, got, want)
				}
			}
			wantSeen := []string{"validating/fx_privileged/" + tc.outcome, "validating/fx_team_label/" + OutcomeAllowed}
			if !reflect.DeepEqual(obs.seen, wantSeen) {
				t.Errorf("observed %q, want %q", obs.seen, wantSeen)
			}
		})
	}
}

// warn rules always warn, whatever the policy's enforcement, and never deny.
func TestWarnRules(t *testing.T) {
	t.Parallel()
	latest := pod(teamPayments, container("app", "nginx:latest", false))
	for _, enforcement := range []string{"deny", "warn", "audit"} {
		t.Run(enforcement, func(t *testing.T) {
			t.Parallel()
			reg := loadFixture(t, "policies:\n  fx_privileged:\n    enforcement: "+enforcement+"\n")
			dec := evaluate(t, reg, Validating, podRequest(t, "default", latest))
			if !dec.Allowed || dec.Violations != nil {
				t.Errorf("Allowed = %v, violations %+v", dec.Allowed, dec.Violations)
			}
			if want := []string{`fx_privileged: container "app" uses the latest tag`}; !reflect.DeepEqual(dec.Warnings, want) {
				t.Errorf("warnings = %q, want %q", dec.Warnings, want)
			}
		})
	}
}

// Violations are ordered by policy then message; warnings by policy, deny
// entries (with enforcement warn) before warn entries.
func TestDecisionOrder(t *testing.T) {
	t.Parallel()
	reg := loadFixture(t, "policies:\n  fx_privileged:\n    enforcement: warn\n  fx_team_label:\n    enforcement: deny\n")
	obj := pod(map[string]any{"team": "zeta"}, container("b", "nginx:latest", true), container("a", "nginx:latest", true))
	dec := evaluate(t, reg, Validating, podRequest(t, "default", obj))
	var got []string
	for _, v := range dec.Violations {
		got = append(got, v.Policy+"/"+string(v.Enforcement)+": "+v.Message)
	}
	want := []string{
		`fx_privileged/warn: container "a" must not be privileged`,
		`fx_privileged/warn: container "b" must not be privileged`,
		`fx_team_label/deny: team "zeta" is not one of: payments, search`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("violations:\n got %q\nwant %q", got, want)
	}
	wantWarnings := []string{
		`fx_privileged: container "a" must not be privileged`,
		`fx_privileged: container "b" must not be privileged`,
		`fx_privileged: container "a" uses the latest tag`,
		`fx_privileged: container "b" uses the latest tag`,
	}
	if !reflect.DeepEqual(dec.Warnings, wantWarnings) {
		t.Errorf("warnings:\n got %q\nwant %q", dec.Warnings, wantWarnings)
	}
	if want := `[fx_team_label] team "zeta" is not one of: payments, search`; dec.Message() != want {
		t.Errorf("Message() = %q, want %q", dec.Message(), want)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	const noDeny = `deny contains {"msg": "x"} if false`
	tests := map[string]struct {
		files map[string]string
		want  string
	}{
		"rego syntax error": {
			files: map[string]string{"a/a.rego": validating("a", "deny contains {\"msg\": \"x\"} if {\n\tinput.x ==\n}")},
			want:  "load policies: parse: 1 error occurred: a/a.rego:9: rego_parse_error: unexpected } token\n\t}\n\t^",
		},
		"syntax errors in two files are all reported": {
			files: map[string]string{
				"a/a.rego": validating("a", "deny contains {\"msg\": \"x\"} if {\n\tinput.x ==\n}"),
				"b/b.rego": "package portcullis.b\n\ndeny contains x if x := [\n",
			},
			want: "load policies: parse: 1 error occurred: a/a.rego:9: rego_parse_error: unexpected } token\n\t}\n\t^\n" +
				"1 error occurred: b/b.rego:4: rego_parse_error: unexpected eof token\n\tdeny contains x if x := [\n\t                        ^",
		},
		"unsafe variable": {
			files: map[string]string{"a/a.rego": validating("a", "deny contains {\"msg\": x} if {\n\ty == 1\n}")},
			want:  "load policies: compile: 1 error occurred: a/a.rego:7: rego_unsafe_var_error: var x is unsafe",
		},
		"type error": {
			files: map[string]string{"a/a.rego": validating("a", "deny contains {\"msg\": x} if {\n\tx := concat(1, 2)\n}")},
			want: "load policies: compile: 1 error occurred: a/a.rego:8: rego_type_error: concat: invalid argument(s)\n" +
				"\thave: (number, number, ???)\n\twant: (delimiter: string, collection: any<array[string], set[string]>, output: string)",
		},
		"undefined function in a helper file": {
			files: map[string]string{
				"a/a.rego":       validating("a", noDeny),
				"a/helpers.rego": "package portcullis.a\n\nx := nope(1)\n",
			},
			want: "load policies: compile: 1 error occurred: a/helpers.rego:3: rego_type_error: undefined function nope",
		},
		"duplicate policy ID (METADATA kind in two files of one package)": {
			files: map[string]string{
				"a/a.rego":     validating("a", noDeny),
				"a/again.rego": validating("a", ""),
			},
			// Found before compiling (OPA would call it a redeclared package
			// annotation); both locations are named.
			want: `load policies: a/again.rego:5: duplicate policy ID "a" (METADATA also at a/a.rego:5)`,
		},
		"duplicate policy ID in another directory, three times": {
			files: map[string]string{
				"a/a.rego":   validating("a", noDeny),
				"b/a.rego":   mutating("a", ""),
				"c/dup.rego": "\n" + validating("a", ""),
			},
			want: "load policies: b/a.rego:5: duplicate policy ID \"a\" (METADATA also at a/a.rego:5)\n" +
				"c/dup.rego:6: duplicate policy ID \"a\" (METADATA also at a/a.rego:5)",
		},
		"validating policy without deny": {
			files: map[string]string{"a/a.rego": validating("a", `warn contains {"msg": "x"} if false`)},
			want:  `load policies: a/a.rego:5: validating policy "a" has no "deny" rule`,
		},
		"mutating policy without mutate": {
			files: map[string]string{"m/m.rego": mutating("m", noDeny)},
			want:  `load policies: m/m.rego:5: mutating policy "m" has no "mutate" rule`,
		},
		"bad custom.kind": {
			files: map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: checking\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:4: policy "a": METADATA custom.kind "checking": must be validating or mutating`,
		},
		"no METADATA": {
			files: map[string]string{"a/a.rego": "package portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:1: policy package "portcullis.a": no file declares it with METADATA custom.kind (validating or mutating)`,
		},
		"METADATA without custom.kind": {
			files: map[string]string{"a/a.rego": "# METADATA\n# title: A\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:3: policy package "portcullis.a": no file declares it with METADATA custom.kind (validating or mutating)`,
		},
		"bad custom.enforcement": {
			files: map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: validating\n#   enforcement: block\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:5: policy "a": METADATA custom.enforcement "block": must be deny, warn or audit`,
		},
		"bad custom.failure_mode": {
			files: map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: validating\n#   failure_mode: open\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:5: policy "a": METADATA custom.failure_mode "open": must be deny or allow`,
		},
		"custom.resources not a list": {
			files: map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: validating\n#   resources: pods\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:5: policy "a": METADATA custom.resources: must be a list of resource names`,
		},
		"custom.resources entry not a name": {
			files: map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: validating\n#   resources: [pods, 3]\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:5: policy "a": METADATA custom.resources: 3 is not a resource name`,
		},
		"custom.operations not a list": {
			files: map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: validating\n#   operations: CREATE\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:5: policy "a": METADATA custom.operations: must be a list of CREATE, UPDATE, DELETE or CONNECT`,
		},
		"custom.operations entry unknown": {
			files: map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: validating\n#   operations: [CREATE, PATCH]\npackage portcullis.a\n\n" + noDeny + "\n"},
			want:  `load policies: a/a.rego:5: policy "a": METADATA custom.operations: PATCH: must be CREATE, UPDATE, DELETE or CONNECT`,
		},
		"errors in several policies are all reported, sorted": {
			files: map[string]string{
				"b/b.rego": mutating("b", noDeny),
				"a/a.rego": validating("a", `warn contains {"msg": "x"} if false`),
			},
			want: "load policies: a/a.rego:5: validating policy \"a\" has no \"deny\" rule\n" +
				"b/b.rego:5: mutating policy \"b\" has no \"mutate\" rule",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(context.Background(), Source{Policies: mapFS(tc.files)})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %q\nwant  %q", err, tc.want)
			}
			if !errors.Is(err, ErrLoad) {
				t.Errorf("err does not wrap ErrLoad")
			}
		})
	}
}

func TestLoadNoSource(t *testing.T) {
	t.Parallel()
	_, err := Load(context.Background(), Source{})
	if want := "load policies: no policy source"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// An empty policy set loads and allows everything (the benchmarks' baseline).
func TestEmptyPolicySet(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, fstest.MapFS{})
	if n := len(reg.Policies()); n != 0 {
		t.Fatalf("%d policies", n)
	}
	for _, phase := range []Phase{Validating, Mutating} {
		dec := evaluate(t, reg, phase, podRequest(t, "default", pod(nil, container("app", "x", true))))
		if !dec.Allowed || dec.Evaluated != nil || dec.Patch != nil {
			t.Errorf("%s: %+v", phase, dec)
		}
	}
}

// loopPolicy runs for billions of steps unless cancelled; it allocates little.
const loopPolicy = `deny contains {"msg": "never"} if {
	n := numbers.range(1, 3000)
	some a in n
	some b in n
	some c in n
	(a * b) * c < 0
}`

func TestEvaluationDeadline(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		config     string
		allowed    bool
		violations []Violation
		warnings   []string
		mode       FailureMode
	}{
		"failure mode deny": {
			allowed:    false,
			violations: []Violation{{Policy: "loop", Enforcement: EnforceDeny, Message: "policy timed out; denied by its failure mode (deny)"}},
			mode:       FailDeny,
		},
		"failure mode allow": {
			config:   "policies:\n  loop:\n    failure_mode: allow\n",
			allowed:  true,
			warnings: []string{"loop: policy timed out; admitted by its failure mode (allow)"},
			mode:     FailAllow,
		},
		// A warn or audit policy never rejects when it works, so by default
		// it does not reject when it fails either...
		"enforcement audit: failure mode allow by default": {
			config:   "policies:\n  loop:\n    enforcement: audit\n",
			allowed:  true,
			warnings: []string{"loop: policy timed out; admitted by its failure mode (allow)"},
			mode:     FailAllow,
		},
		// ...unless its failure mode says deny explicitly.
		"enforcement audit with failure mode deny": {
			config:     "policies:\n  loop:\n    enforcement: audit\n    failure_mode: deny\n",
			allowed:    false,
			violations: []Violation{{Policy: "loop", Enforcement: EnforceDeny, Message: "policy timed out; denied by its failure mode (deny)"}},
			mode:       FailDeny,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var configs []string
			if tc.config != "" {
				configs = append(configs, tc.config)
			}
			reg := mustLoad(t, mapFS(map[string]string{"loop/loop.rego": validating("loop", loopPolicy)}), configs...)
			obs := &recorder{}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			dec, err := New(reg, obs).Evaluate(ctx, Validating, podRequest(t, "default", pod(nil)), Options{})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			// Generous for a loaded 2-core machine; without cancellation the
			// policy runs for minutes.
			if took > 2*time.Second {
				t.Errorf("evaluation took %v after a 50ms deadline", took)
			}
			if dec.Allowed != tc.allowed {
				t.Errorf("Allowed = %v, want %v", dec.Allowed, tc.allowed)
			}
			if !reflect.DeepEqual(dec.Violations, tc.violations) {
				t.Errorf("violations = %+v\nwant %+v", dec.Violations, tc.violations)
			}
			if !reflect.DeepEqual(dec.Warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", dec.Warnings, tc.warnings)
			}
			if len(dec.Errors) != 1 {
				t.Fatalf("errors = %+v", dec.Errors)
			}
			pe := dec.Errors[0]
			if pe.Policy != "loop" || !pe.TimedOut || pe.FailureMode != tc.mode || pe.Err == nil {
				t.Errorf("policy error = %+v", pe)
			}
			if want := []string{"validating/loop/" + OutcomeTimeout}; !reflect.DeepEqual(obs.seen, want) {
				t.Errorf("observed %q, want %q", obs.seen, want)
			}
		})
	}
}

// An evaluation error that is not a timeout is handled by the failure mode too,
// and its text (which may quote input) stays out of messages and warnings.
func TestEvaluationErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body, config string
		allowed      bool
		violations   []Violation
		warnings     []string
		errText      string
	}{
		"deny entry without msg, failure mode deny": {
			body:       `deny contains {"message": input.request.object.metadata.name}`,
			violations: []Violation{{Policy: "bad", Enforcement: EnforceDeny, Message: "policy could not be evaluated: invalid_output at bad/bad.rego:5: a deny or warn entry is not an object with a string msg; denied by its failure mode (deny)"}},
			errText:    `policy "bad" deny: entry 0 has no string msg`,
		},
		"deny entry without msg, failure mode allow": {
			body:     `deny contains {"message": input.request.object.metadata.name}`,
			config:   "policies:\n  bad:\n    failure_mode: allow\n",
			allowed:  true,
			warnings: []string{"bad: policy could not be evaluated: invalid_output at bad/bad.rego:5: a deny or warn entry is not an object with a string msg; admitted by its failure mode (allow)"},
			errText:  `policy "bad" deny: entry 0 has no string msg`,
		},
		"warn entry of the wrong type": {
			body:       "deny contains {\"msg\": \"x\"} if false\n\nwarn contains 42",
			violations: []Violation{{Policy: "bad", Enforcement: EnforceDeny, Message: "policy could not be evaluated: invalid_output at bad/bad.rego:5: a deny or warn entry is not an object with a string msg; denied by its failure mode (deny)"}},
			errText:    `policy "bad" warn: entry 0 is a json.Number, not an object with msg`,
		},
		"string entries are tolerated": {
			body:       `deny contains "plain message"`,
			violations: []Violation{{Policy: "bad", Enforcement: EnforceDeny, Message: "plain message"}},
		},
		"runtime error (conflicting values)": {
			body:       "deny contains {\"msg\": \"x\"} if false\n\nv := 1 if input.request.name\n\nv := 2 if input.request.name\n\ndeny contains {\"msg\": \"y\"} if v == 3",
			violations: []Violation{{Policy: "bad", Enforcement: EnforceDeny, Message: "policy could not be evaluated: eval_conflict_error at bad/bad.rego:11: rule data.portcullis.bad.v produced conflicting values; denied by its failure mode (deny)"}},
			errText:    "evaluate policy \"bad\": bad/bad.rego:11: eval_conflict_error: rule data.portcullis.bad.v produced conflicting values",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var configs []string
			if tc.config != "" {
				configs = append(configs, tc.config)
			}
			reg := mustLoad(t, mapFS(map[string]string{"bad/bad.rego": validating("bad", tc.body)}), configs...)
			dec := evaluate(t, reg, Validating, podRequest(t, "default", pod(nil)))
			if dec.Allowed != tc.allowed {
				t.Errorf("Allowed = %v, want %v", dec.Allowed, tc.allowed)
			}
			if !reflect.DeepEqual(dec.Violations, tc.violations) {
				t.Errorf("violations = %+v\nwant %+v", dec.Violations, tc.violations)
			}
			if !reflect.DeepEqual(dec.Warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", dec.Warnings, tc.warnings)
			}
			if tc.errText == "" {
				if dec.Errors != nil {
					t.Errorf("errors = %+v", dec.Errors)
				}
				return
			}
			if len(dec.Errors) != 1 || dec.Errors[0].TimedOut || !strings.Contains(dec.Errors[0].Err.Error(), tc.errText) {
				t.Errorf("errors = %+v, want one containing %q", dec.Errors, tc.errText)
			}
		})
	}
}

func TestEvaluateBadRequest(t *testing.T) {
	t.Parallel()
	reg := loadFixture(t, "")
	_, err := New(reg, nil).Evaluate(context.Background(), Validating, nil, Options{})
	if want := "bad admission request: no request"; err == nil || err.Error() != want || !errors.Is(err, ErrBadRequest) {
		t.Errorf("nil request: err = %v, want %s", err, want)
	}
	// A mutating policy's edits need the object to be a JSON object.
	req := podRequest(t, "default", pod(nil))
	req.Object.Raw = []byte(`["not", "an", "object"]`)
	// The fixture's rules guard nothing on the object's shape, so edits come back.
	_, err = New(reg, nil).Evaluate(context.Background(), Mutating, req, Options{})
	const want = "bad admission request: object is not a JSON object: json: cannot unmarshal array into Go value of type map[string]interface {}"
	if err == nil || err.Error() != want || !errors.Is(err, ErrBadRequest) {
		t.Errorf("array object: err = %v\nwant %s", err, want)
	}
}

// DELETE and CONNECT carry no object: policies see null and nothing is patched.
func TestNoObject(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{
		"always/always.rego": mutating("always", `mutate contains {"op": "set", "path": ["metadata", "labels", "x"], "value": "y"}`),
		"fx/fx.rego":         validating("fx", `deny contains {"msg": "object is null"} if input.request.object == null`),
	}))
	for _, op := range []string{"DELETE", "CONNECT"} {
		req := request(t, "Pod", "pods", "", "default", "web", op, nil)
		mut := evaluate(t, reg, Mutating, req)
		if !mut.Allowed || mut.Patch != nil || mut.Object != nil || mut.Errors != nil {
			t.Errorf("%s mutating: %+v", op, mut)
		}
		val := evaluate(t, reg, Validating, req)
		want := []Violation{{Policy: "fx", Enforcement: EnforceDeny, Message: "object is null"}}
		if !reflect.DeepEqual(val.Violations, want) {
			t.Errorf("%s validating: violations %+v, want %+v", op, val.Violations, want)
		}
	}
}

// Evaluations racing a Swap each finish on one registry or the other.
func TestSwapConcurrent(t *testing.T) {
	t.Parallel()
	deny := mustLoad(t, mapFS(map[string]string{"p/p.rego": validating("p", `deny contains {"msg": "old"}`)}))
	allow := mustLoad(t, mapFS(map[string]string{"p/p.rego": validating("p", `deny contains {"msg": "new"} if false`)}))
	eng := New(deny, nil)
	req := podRequest(t, "default", pod(nil))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				dec, err := eng.Evaluate(context.Background(), Validating, req, Options{})
				if err != nil {
					t.Error(err)
					return
				}
				if !dec.Allowed && dec.Message() != "[p] old" {
					t.Errorf("message %q", dec.Message())
				}
			}
		}()
	}
	for j := 0; j < 50; j++ {
		if j%2 == 0 {
			eng.Swap(allow)
		} else {
			eng.Swap(deny)
		}
	}
	wg.Wait()
	eng.Swap(allow)
	if eng.Registry() != allow || !evaluateEngine(t, eng, req).Allowed {
		t.Error("swap did not take")
	}
}

func evaluateEngine(t testing.TB, eng *Engine, req *admissionv1.AdmissionRequest) *Decision {
	t.Helper()
	dec, err := eng.Evaluate(context.Background(), Validating, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return dec
}
