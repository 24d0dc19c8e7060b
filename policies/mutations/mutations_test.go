// Package mutations_test tests the mutating policies (security_context and
// vault_agent) end to end through the decision engine, the way the mutating
// webhook runs them: golden injected pods, the decoded Vault Agent
// configuration, idempotence over generated pods and reinvocation, Pod
// Security restricted on the results, and benchmarks.
//
// Golden files live in testdata/, all YAML: <case>.pod.in is a Pod (its
// metadata.namespace is the request's namespace), <case>.config.in an
// optional configuration merged over the defaults, <case>.golden the result.
// They do not end in .yaml because `opa test policies/` loads every YAML
// file under policies/ as data. Regenerate with
// UPDATE_GOLDEN=1 go test ./policies/mutations/.
package mutations_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

const updateEnv = "UPDATE_GOLDEN"

// newEngine loads the embedded policy set with the embedded defaults and the
// given configuration documents merged over them.
func newEngine(tb testing.TB, configs ...[]byte) *engine.Engine {
	tb.Helper()
	defaults, err := fs.ReadFile(policies.FS, policies.ConfigFile)
	if err != nil {
		tb.Fatalf("read default config: %v", err)
	}
	reg, err := engine.Load(context.Background(), engine.Source{
		Policies: policies.FS,
		Configs:  append([][]byte{defaults}, configs...),
	})
	if err != nil {
		tb.Fatalf("load policies: %v", err)
	}
	return engine.New(reg, nil)
}

// podRequest is the AdmissionRequest the apiserver sends for creating pod
// (JSON) in namespace ns.
func podRequest(pod []byte, ns string) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID:       "b3a9c1d2-0000-4000-8000-000000000001",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: pod},
	}
}

// mutate runs the mutating phase on pod and returns the decision and the
// resulting pod JSON (the input when nothing changed).
func mutate(tb testing.TB, eng *engine.Engine, pod []byte, ns string) (*engine.Decision, []byte) {
	tb.Helper()
	dec, err := eng.Evaluate(context.Background(), engine.Mutating, podRequest(pod, ns), engine.Options{})
	if err != nil {
		tb.Fatalf("evaluate: %v", err)
	}
	if len(dec.Errors) > 0 {
		tb.Fatalf("policy errors: %+v (first: %v)", dec.Errors, dec.Errors[0].Err)
	}
	if dec.Object == nil {
		return dec, pod
	}
	return dec, dec.Object
}

func namespaceOf(tb testing.TB, pod []byte) string {
	tb.Helper()
	var meta struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(pod, &meta); err != nil {
		tb.Fatalf("decode pod: %v", err)
	}
	if meta.Metadata.Namespace == "" {
		return "default"
	}
	return meta.Metadata.Namespace
}

// vaultConfigs decodes VAULT_CONFIG of every agent container, by container name.
func vaultConfigs(tb testing.TB, pod *corev1.Pod) map[string]map[string]any {
	tb.Helper()
	out := map[string]map[string]any{}
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, e := range c.Env {
			if e.Name != "VAULT_CONFIG" {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(e.Value)
			if err != nil {
				tb.Fatalf("container %s: VAULT_CONFIG is not base64: %v", c.Name, err)
			}
			var cfg map[string]any
			if err := json.Unmarshal(raw, &cfg); err != nil {
				tb.Fatalf("container %s: VAULT_CONFIG is not JSON: %v", c.Name, err)
			}
			out[c.Name] = cfg
		}
	}
	return out
}

func decodePod(tb testing.TB, raw []byte) *corev1.Pod {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // catches misspelled fields in injected containers
	var pod corev1.Pod
	if err := dec.Decode(&pod); err != nil {
		tb.Fatalf("decode pod: %v\n%s", err, raw)
	}
	return &pod
}

// restrictedFailures evaluates pod with the upstream Pod Security Admission
// checks at restricted, latest version, and returns the failures.
func restrictedFailures(tb testing.TB, pod *corev1.Pod) []string {
	tb.Helper()
	ev, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		tb.Fatalf("pod security evaluator: %v", err)
	}
	var out []string
	for _, r := range ev.EvaluatePod(psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}, &pod.ObjectMeta, &pod.Spec) {
		if !r.Allowed {
			out = append(out, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	return out
}

// notRestricted lists the golden cases whose own explicit settings keep the
// pod from passing restricted.
var notRestricted = map[string]bool{
	"security-context-root": true, // runAsUser: 0 by the user
	"kube-system":           true, // exempt: untouched
}

// golden is what a case's golden file records.
type golden struct {
	Allowed     bool                      `json:"allowed"`
	Violations  []string                  `json:"violations,omitempty"`
	Warnings    []string                  `json:"warnings,omitempty"`
	PatchOps    int                       `json:"patchOperations"`
	VaultConfig map[string]map[string]any `json:"vaultConfig,omitempty"`
	Pod         map[string]any            `json:"pod"`
}

func TestGoldenMutations(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.pod.in"))
	if err != nil || len(inputs) < 10 {
		t.Fatalf("want at least 10 golden cases, found %d (%v)", len(inputs), err)
	}
	base := newEngine(t)
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".pod.in")
		t.Run(name, func(t *testing.T) {
			eng := base
			if cfg, err := os.ReadFile(filepath.Join("testdata", name+".config.in")); err == nil {
				eng = newEngine(t, cfg)
			}
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			podJSON, err := yaml.YAMLToJSON(src)
			if err != nil {
				t.Fatalf("%s: %v", in, err)
			}
			ns := namespaceOf(t, podJSON)
			dec, mutated := mutate(t, eng, podJSON, ns)

			pod := decodePod(t, mutated)
			got := golden{Allowed: dec.Allowed, Warnings: dec.Warnings, PatchOps: len(dec.Patch), VaultConfig: vaultConfigs(t, pod)}
			for _, v := range dec.Violations {
				got.Violations = append(got.Violations, fmt.Sprintf("[%s/%s] %s", v.Policy, v.Enforcement, v.Message))
			}
			if err := json.Unmarshal(mutated, &got.Pod); err != nil {
				t.Fatal(err)
			}
			out, err := yaml.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			goldenFile := filepath.Join("testdata", name+".golden")
			if os.Getenv(updateEnv) == "1" {
				if err := os.WriteFile(goldenFile, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenFile)
			if err != nil {
				t.Fatalf("%v (run with %s=1 to create it)", err, updateEnv)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("result differs from %s (run with %s=1 to update):\n%s", goldenFile, updateEnv, lineDiff(string(want), string(out)))
			}

			// Mutating the result again changes nothing.
			if dec2, _ := mutate(t, eng, mutated, ns); len(dec2.Patch) != 0 {
				t.Errorf("second pass is not empty: %+v", dec2.Patch)
			}
			// The mutated pod passes restricted unless the user chose otherwise.
			if fails := restrictedFailures(t, pod); len(fails) > 0 && !notRestricted[name] {
				t.Errorf("mutated pod fails Pod Security restricted:\n  %s", strings.Join(fails, "\n  "))
			}
		})
	}
}

// lineDiff shows the lines that differ, enough to find a golden mismatch.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  - %s\n  + %s\n", i+1, wl, gl)
			if b.Len() > 4000 {
				b.WriteString("  ...\n")
				break
			}
		}
	}
	return b.String()
}

// agentConfig is the Vault Agent configuration vault-k8s writes, decoded
// strictly so that a misspelled or unexpected key fails the test.
type agentConfig struct {
	AutoAuth struct {
		Method struct {
			Type      string         `json:"type"`
			MountPath string         `json:"mount_path"`
			Namespace string         `json:"namespace,omitempty"`
			Config    map[string]any `json:"config"`
		} `json:"method"`
		Sink []struct {
			Type   string         `json:"type"`
			Config map[string]any `json:"config"`
		} `json:"sink"`
	} `json:"auto_auth"`
	ExitAfterAuth *bool  `json:"exit_after_auth"`
	PidFile       string `json:"pid_file"`
	Vault         struct {
		Address       string `json:"address"`
		CACert        string `json:"ca_cert,omitempty"`
		CAPath        string `json:"ca_path,omitempty"`
		ClientCert    string `json:"client_cert,omitempty"`
		ClientKey     string `json:"client_key,omitempty"`
		TLSServerName string `json:"tls_server_name,omitempty"`
		TLSSkipVerify bool   `json:"tls_skip_verify,omitempty"`
	} `json:"vault"`
	Template []struct {
		Destination       string `json:"destination"`
		Contents          string `json:"contents,omitempty"`
		Source            string `json:"source,omitempty"`
		LeftDelimiter     string `json:"left_delimiter"`
		RightDelimiter    string `json:"right_delimiter"`
		Command           string `json:"command,omitempty"`
		Perms             string `json:"perms,omitempty"`
		ErrorOnMissingKey bool   `json:"error_on_missing_key,omitempty"`
	} `json:"template"`
	TemplateConfig *struct {
		ExitOnRetryFailure         *bool  `json:"exit_on_retry_failure"`
		StaticSecretRenderInterval string `json:"static_secret_render_interval,omitempty"`
	} `json:"template_config"`
}

func decodeAgentConfig(t *testing.T, c corev1.Container) agentConfig {
	t.Helper()
	for _, e := range c.Env {
		if e.Name != "VAULT_CONFIG" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(e.Value)
		if err != nil {
			t.Fatalf("%s: VAULT_CONFIG: %v", c.Name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var cfg agentConfig
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%s: VAULT_CONFIG does not decode as a Vault Agent config: %v\n%s", c.Name, err, raw)
		}
		return cfg
	}
	t.Fatalf("%s has no VAULT_CONFIG", c.Name)
	return agentConfig{}
}

func TestVaultConfigStructure(t *testing.T) {
	src := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","annotations":{
		"vault.hashicorp.com/agent-inject":"true",
		"vault.hashicorp.com/role":"web",
		"vault.hashicorp.com/agent-inject-secret-db":"database/creds/web",
		"vault.hashicorp.com/agent-inject-secret-api":"kv/data/api",
		"vault.hashicorp.com/agent-inject-template-api":"{{ with secret \"kv/data/api\" }}{{ .Data.data.key }}{{ end }}",
		"vault.hashicorp.com/agent-inject-perms-api":"0400",
		"vault.hashicorp.com/agent-inject-command-api":"pkill -HUP app",
		"vault.hashicorp.com/agent-inject-token":"true"}},
		"spec":{"containers":[{"name":"app","image":"app:1","volumeMounts":[
			{"name":"kube-api-access-x","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}]}]}}`)
	_, mutated := mutate(t, newEngine(t), src, "shop")
	pod := decodePod(t, mutated)
	if len(pod.Spec.InitContainers) != 1 || len(pod.Spec.Containers) != 2 {
		t.Fatalf("want 1 init container and 2 containers, got %d and %d", len(pod.Spec.InitContainers), len(pod.Spec.Containers))
	}
	tests := []struct {
		container     corev1.Container
		exitAfterAuth bool
	}{
		{pod.Spec.InitContainers[0], true},
		{pod.Spec.Containers[1], false},
	}
	for _, tt := range tests {
		t.Run(tt.container.Name, func(t *testing.T) {
			cfg := decodeAgentConfig(t, tt.container)
			m := cfg.AutoAuth.Method
			if m.Type != "kubernetes" || m.MountPath != "auth/kubernetes" {
				t.Errorf("auto_auth.method = %s at %s, want kubernetes at auth/kubernetes", m.Type, m.MountPath)
			}
			wantAuth := map[string]any{"role": "web", "token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
			if fmt.Sprint(m.Config) != fmt.Sprint(wantAuth) {
				t.Errorf("auto_auth.method.config = %v, want %v", m.Config, wantAuth)
			}
			var sinks []string
			for _, s := range cfg.AutoAuth.Sink {
				sinks = append(sinks, s.Type+":"+fmt.Sprint(s.Config["path"]))
			}
			if got, want := strings.Join(sinks, ","), "file:/home/vault/.vault-token,file:/vault/secrets/token"; got != want {
				t.Errorf("sinks = %s, want %s", got, want)
			}
			if cfg.ExitAfterAuth == nil || *cfg.ExitAfterAuth != tt.exitAfterAuth {
				t.Errorf("exit_after_auth = %v, want %v", cfg.ExitAfterAuth, tt.exitAfterAuth)
			}
			if cfg.PidFile != "/home/vault/.pid" || cfg.Vault.Address != "https://vault.vault.svc:8200" {
				t.Errorf("pid_file %q, vault.address %q", cfg.PidFile, cfg.Vault.Address)
			}
			if cfg.TemplateConfig == nil || cfg.TemplateConfig.ExitOnRetryFailure == nil || !*cfg.TemplateConfig.ExitOnRetryFailure {
				t.Errorf("template_config.exit_on_retry_failure must be true")
			}
			if len(cfg.Template) != 2 {
				t.Fatalf("want 2 templates, got %d", len(cfg.Template))
			}
			api, db := cfg.Template[0], cfg.Template[1]
			if api.Destination != "/vault/secrets/api" || api.Perms != "0400" || api.Command != "pkill -HUP app" ||
				api.Contents != `{{ with secret "kv/data/api" }}{{ .Data.data.key }}{{ end }}` {
				t.Errorf("api template = %+v", api)
			}
			wantDB := "{{ with secret \"database/creds/web\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}"
			if db.Destination != "/vault/secrets/db" || db.Contents != wantDB || db.LeftDelimiter != "{{" || db.RightDelimiter != "}}" {
				t.Errorf("db template = %+v", db)
			}
		})
	}
}

func TestReinvocationAddsNoSecondAgent(t *testing.T) {
	eng := newEngine(t)
	src := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","annotations":{
		"vault.hashicorp.com/agent-inject":"true","vault.hashicorp.com/role":"web",
		"vault.hashicorp.com/agent-inject-secret-db":"database/creds/web"}},
		"spec":{"containers":[{"name":"app","image":"app:1"}]}}`)
	_, first := mutate(t, eng, src, "shop")

	// Another mutating webhook adds a container; the apiserver reinvokes us
	// (reinvocationPolicy: IfNeeded).
	var pod map[string]any
	if err := json.Unmarshal(first, &pod); err != nil {
		t.Fatal(err)
	}
	spec := pod["spec"].(map[string]any)
	spec["containers"] = append(spec["containers"].([]any), map[string]any{"name": "mesh-proxy", "image": "proxy:1"})
	withProxy, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	dec, second := mutate(t, eng, withProxy, "shop")
	var paths []string
	for _, op := range dec.Patch {
		paths = append(paths, op.Operation+" "+op.Path)
	}
	wantPaths := []string{
		"add /spec/containers/2/securityContext",
	}
	if strings.Join(paths, ",") != strings.Join(wantPaths, ",") {
		t.Errorf("reinvocation patch = %v, want %v", paths, wantPaths)
	}
	final := decodePod(t, second)
	agents := 0
	for _, c := range append(final.Spec.InitContainers, final.Spec.Containers...) {
		if c.Name == "vault-agent" {
			agents++
		}
	}
	if agents != 1 {
		t.Errorf("want exactly one vault-agent, got %d", agents)
	}
	if dec3, _ := mutate(t, eng, second, "shop"); len(dec3.Patch) != 0 {
		t.Errorf("third pass is not empty: %+v", dec3.Patch)
	}
}

func TestUserSecurityContextNeverOverwritten(t *testing.T) {
	eng := newEngine(t, []byte("policies: {security_context: {defaults: {read_only_root_filesystem: true}}}"))
	src := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{
		"securityContext":{"runAsNonRoot":false,"seccompProfile":{"type":"Localhost","localhostProfile":"p.json"},"appArmorProfile":{"type":"Unconfined"}},
		"containers":[{"name":"app","image":"app:1","securityContext":{
			"allowPrivilegeEscalation":true,"readOnlyRootFilesystem":false,
			"capabilities":{"add":["NET_ADMIN"],"drop":["ALL"]}}}]}}`)
	dec, _ := mutate(t, eng, src, "shop")
	if len(dec.Patch) != 0 {
		t.Errorf("explicit values were changed: %+v", dec.Patch)
	}
}

// A pod whose container has no runAsUser, with an image whose user admission
// cannot know, is admitted with runAsNonRoot defaulted and a warning that
// names the container, its image and the fix.
func TestImageOfUnknownUserIsWarned(t *testing.T) {
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"cache"},"spec":{"containers":[{"name":"redis","image":"redis:7.4"}]}}`)
	dec, mutated := mutate(t, newEngine(t), pod, "shop")
	want := []string{`security_context: container "redis" (image "redis:7.4") has no runAsUser and gets runAsNonRoot: true: ` +
		`the kubelet will refuse to start it if the image runs as root or as a non-numeric user; ` +
		`use an image whose USER is a numeric non-root UID, or set securityContext.runAsUser (cluster-wide: policies.security_context.run_as_user)`}
	if !dec.Allowed || strings.Join(dec.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("allowed %v, warnings %q; want allowed with %q", dec.Allowed, dec.Warnings, want)
	}
	got := decodePod(t, mutated)
	if sc := got.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser != nil {
		t.Errorf("pod security context %+v, want runAsNonRoot true and no runAsUser", sc)
	}

	// With a cluster-wide UID configured the pod gets it and no warning.
	dec, mutated = mutate(t, newEngine(t, []byte("policies: {security_context: {run_as_user: 10001}}")), pod, "shop")
	if len(dec.Warnings) != 0 {
		t.Errorf("warnings %q with run_as_user configured, want none", dec.Warnings)
	}
	got = decodePod(t, mutated)
	if sc := got.Spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 10001 || sc.RunAsGroup == nil || *sc.RunAsGroup != 10001 {
		t.Errorf("pod security context %+v, want runAsUser and runAsGroup 10001", sc)
	}
}
