// Tests and benchmarks of the three issue-4 policies (image_sources,
// secret_handling, apparmor) through the decision engine, on the realistic
// manifests the `portcullis validate` golden tests use
// (cmd/portcullis/testdata/issue4). They live next to the policies because
// the Rego unit tests cover the rules one by one and these cover the
// policies together, the way the server and the CLI run them.
package imagesources_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// testdata is where the golden-test manifests live.
const testdata = "../../cmd/portcullis/testdata/issue4"

// issue4 are the policies under test.
var issue4 = []string{"apparmor", "image_sources", "secret_handling"}

// resources maps the manifests' kinds to their resources.
var resources = map[string]metav1.GroupVersionResource{
	"Pod":        {Version: "v1", Resource: "pods"},
	"ConfigMap":  {Version: "v1", Resource: "configmaps"},
	"Secret":     {Version: "v1", Resource: "secrets"},
	"Deployment": {Group: "apps", Version: "v1", Resource: "deployments"},
	"CronJob":    {Group: "batch", Version: "v1", Resource: "cronjobs"},
}

// loadEngine loads the default policy set with the default configuration
// and, when configFile is set, that file merged over it.
func loadEngine(tb testing.TB, configFile string) *engine.Engine {
	tb.Helper()
	defaults, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		tb.Fatal(err)
	}
	configs := [][]byte{defaults}
	if configFile != "" {
		extra, err := os.ReadFile(configFile)
		if err != nil {
			tb.Fatal(err)
		}
		configs = append(configs, extra)
	}
	reg, err := engine.Load(context.Background(), engine.Source{Policies: policies.FS, Configs: configs})
	if err != nil {
		tb.Fatalf("load policies: %v", err)
	}
	return engine.New(reg, nil)
}

// createRequests reads a multi-document YAML manifest and returns one CREATE
// request per object, as `portcullis validate` builds them.
func createRequests(tb testing.TB, file string) []*admissionv1.AdmissionRequest {
	tb.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var out []*admissionv1.AdmissionRequest
	for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
		obj, err := yaml.YAMLToJSON(doc)
		if err != nil {
			tb.Fatalf("%s document %d: %v", file, i, err)
		}
		out = append(out, request(tb, obj, admissionv1.Create, ""))
	}
	return out
}

// request wraps a JSON object in an AdmissionRequest.
func request(tb testing.TB, obj []byte, op admissionv1.Operation, subResource string) *admissionv1.AdmissionRequest {
	tb.Helper()
	var meta struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(obj, &meta); err != nil {
		tb.Fatal(err)
	}
	gvr, ok := resources[meta.Kind]
	if !ok {
		tb.Fatalf("no resource known for kind %q", meta.Kind)
	}
	return &admissionv1.AdmissionRequest{
		UID:         "issue4",
		Kind:        metav1.GroupVersionKind{Group: gvr.Group, Version: gvr.Version, Kind: meta.Kind},
		Resource:    gvr,
		SubResource: subResource,
		Name:        meta.Metadata.Name,
		Namespace:   meta.Metadata.Namespace,
		Operation:   op,
		Object:      runtime.RawExtension{Raw: obj},
	}
}

// violations evaluates every object of file and returns "policy: message"
// for each violation, sorted, and the decisions' JSON.
func violations(tb testing.TB, eng *engine.Engine, file string) ([]string, []byte) {
	tb.Helper()
	var out []string
	var decisions []*engine.Decision
	for _, req := range createRequests(tb, file) {
		dec, err := eng.Evaluate(context.Background(), engine.Validating, req, engine.Options{Policies: issue4})
		if err != nil {
			tb.Fatalf("%s: evaluate: %v", file, err)
		}
		if len(dec.Errors) > 0 {
			tb.Fatalf("%s: policy errors: %+v", file, dec.Errors)
		}
		for _, v := range dec.Violations {
			out = append(out, v.Policy+": "+v.Message)
		}
		decisions = append(decisions, dec)
	}
	slices.Sort(out)
	all, err := json.Marshal(decisions)
	if err != nil {
		tb.Fatal(err)
	}
	return out, all
}

// Which configuration a manifest is evaluated with.
const (
	defaultConfig = "" // config.yaml alone
	issue4Config  = "config.yaml"
)

// manifestCases are the golden expectations: every violation, as
// "policy: message", of each manifest under each configuration.
var manifestCases = []struct {
	file, config string
	want         []string
}{
	{"deployment-admitted.yaml", issue4Config, []string{}},
	{"deployment-admitted.yaml", defaultConfig, []string{
		`apparmor: container "metrics-proxy" AppArmor annotation: Localhost profile "k8s-rbac-proxy" is not allowed (allowed: none) (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/metrics-proxy"])`,
		`apparmor: container "metrics-proxy" AppArmor profile: Localhost profile "k8s-rbac-proxy" is not allowed (allowed: none) (spec.template.spec.containers[1].securityContext.appArmorProfile)`,
	}},
	{"deployment-denied.yaml", issue4Config, []string{
		`apparmor: AppArmor annotation names container "sidecar", which the pod does not have (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/sidecar"])`,
		`apparmor: container "api" AppArmor annotation "unconfined" disagrees with type RuntimeDefault (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/api"])`,
		`apparmor: container "api" AppArmor annotation: Unconfined is not allowed (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/api"])`,
		`apparmor: container "metrics-proxy" AppArmor annotation "localhost/k8s-rbac-proxy" disagrees with type Localhost with localhostProfile "custom-proxy" (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/metrics-proxy"])`,
		`apparmor: container "metrics-proxy" AppArmor profile: Localhost profile "custom-proxy" is not allowed (allowed: "k8s-*") (spec.template.spec.containers[1].securityContext.appArmorProfile)`,
		`image_sources: container "api" image "registry.example.com/shop-evil/api:1.4.2" is not from an allowed registry or repository (spec.template.spec.containers[0].image); allowed: "registry.example.com/shop", "registry.example.com/batch", "quay.io/brancz", "docker.io/library/busybox"`,
		`image_sources: container "metrics-proxy" image "quay.io/brancz/kube-rbac-proxy:latest" uses the mutable tag "latest"; pin a version tag or a digest (spec.template.spec.containers[1].image)`,
		`image_sources: container "migrate" image "busybox" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (spec.template.spec.initContainers[0].image)`,
		`secret_handling: Deployment "shop-api" mounts its service account token: set spec.template.spec.automountServiceAccountToken to false (unset means the ServiceAccount's setting, true by default), or opt in with the annotation portcullis.dev/automount-token: "true" (spec.template.metadata.annotations)`,
		`secret_handling: container "api" env var "DB_PASSWORD" has a credential-like name and a literal value; take it from a Secret (spec.template.spec.containers[0].env[2].value)`,
		`secret_handling: container "api" env var "SENTRY_DSN" has a literal value that looks like a URL with an embedded password; take it from a Secret (spec.template.spec.containers[0].env[3].value)`,
	}},
	{"deployment-denied.yaml", defaultConfig, []string{
		`apparmor: AppArmor annotation names container "sidecar", which the pod does not have (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/sidecar"])`,
		`apparmor: container "api" AppArmor annotation "unconfined" disagrees with type RuntimeDefault (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/api"])`,
		`apparmor: container "api" AppArmor annotation: Unconfined is not allowed (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/api"])`,
		`apparmor: container "metrics-proxy" AppArmor annotation "localhost/k8s-rbac-proxy" disagrees with type Localhost with localhostProfile "custom-proxy" (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/metrics-proxy"])`,
		`apparmor: container "metrics-proxy" AppArmor annotation: Localhost profile "k8s-rbac-proxy" is not allowed (allowed: none) (spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/metrics-proxy"])`,
		`apparmor: container "metrics-proxy" AppArmor profile: Localhost profile "custom-proxy" is not allowed (allowed: none) (spec.template.spec.containers[1].securityContext.appArmorProfile)`,
		`image_sources: container "metrics-proxy" image "quay.io/brancz/kube-rbac-proxy:latest" uses the mutable tag "latest"; pin a version tag or a digest (spec.template.spec.containers[1].image)`,
		`image_sources: container "migrate" image "busybox" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (spec.template.spec.initContainers[0].image)`,
		`secret_handling: container "api" env var "DB_PASSWORD" has a credential-like name and a literal value; take it from a Secret (spec.template.spec.containers[0].env[2].value)`,
		`secret_handling: container "api" env var "SENTRY_DSN" has a literal value that looks like a URL with an embedded password; take it from a Secret (spec.template.spec.containers[0].env[3].value)`,
	}},
	{"cronjob-admitted.yaml", issue4Config, []string{}},
	{"cronjob-admitted.yaml", defaultConfig, []string{}},
	{"cronjob-denied.yaml", issue4Config, []string{
		`apparmor: container "report" AppArmor profile: Unconfined is not allowed (spec.jobTemplate.spec.template.spec.containers[0].securityContext.appArmorProfile)`,
		`image_sources: container "fetch" image "busybox:1.36.1" must be pinned by digest (name@sha256:...) in namespace "batch" (spec.jobTemplate.spec.template.spec.initContainers[0].image)`,
		`image_sources: container "report" image "registry.example.com/batch/report:2.3.0" must be pinned by digest (name@sha256:...) in namespace "batch" (spec.jobTemplate.spec.template.spec.containers[0].image)`,
		`secret_handling: CronJob "nightly-report" mounts its service account token: set spec.jobTemplate.spec.template.spec.automountServiceAccountToken to false (unset means the ServiceAccount's setting, true by default), or opt in with the annotation portcullis.dev/automount-token: "true" (spec.jobTemplate.spec.template.metadata.annotations)`,
		`secret_handling: container "report" env var "GIT_AUTH" has a literal value that looks like a GitHub token; take it from a Secret (spec.jobTemplate.spec.template.spec.containers[0].env[3].value)`,
		`secret_handling: container "report" env var "SMTP_PASSWORD" reads key "password" of Secret "smtp-credentials"; in namespace "batch" Secrets must be mounted as files (a Secret volume or the Vault agent) (spec.jobTemplate.spec.template.spec.containers[0].env[2].valueFrom.secretKeyRef)`,
		`secret_handling: container "report" takes env vars from Secret "report-settings"; in namespace "batch" Secrets must be mounted as files (a Secret volume or the Vault agent) (spec.jobTemplate.spec.template.spec.containers[0].envFrom[0].secretRef)`,
	}},
	{"cronjob-denied.yaml", defaultConfig, []string{
		`apparmor: container "report" AppArmor profile: Unconfined is not allowed (spec.jobTemplate.spec.template.spec.containers[0].securityContext.appArmorProfile)`,
		`secret_handling: container "report" env var "GIT_AUTH" has a literal value that looks like a GitHub token; take it from a Secret (spec.jobTemplate.spec.template.spec.containers[0].env[3].value)`,
	}},
	{"pod-ephemeral-admitted.yaml", issue4Config, []string{}},
	{"pod-ephemeral-admitted.yaml", defaultConfig, []string{}},
	{"pod-ephemeral-denied.yaml", issue4Config, []string{
		`apparmor: container "debugger-8xk2p" AppArmor profile: Unconfined is not allowed (spec.ephemeralContainers[0].securityContext.appArmorProfile)`,
		`image_sources: container "debugger-8xk2p" image "nicolaka/netshoot" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (spec.ephemeralContainers[0].image)`,
		`image_sources: container "debugger-8xk2p" image "nicolaka/netshoot" is not from an allowed registry or repository (spec.ephemeralContainers[0].image); allowed: "registry.example.com/shop", "registry.example.com/batch", "quay.io/brancz", "docker.io/library/busybox"`,
		`secret_handling: Pod "web-7d9c8b6f5-x2k4p" mounts its service account token: set spec.automountServiceAccountToken to false (unset means the ServiceAccount's setting, true by default), or opt in with the annotation portcullis.dev/automount-token: "true" (metadata.annotations)`,
		`secret_handling: container "debugger-8xk2p" env var "AWS_ACCESS_KEY_ID" has a literal value that looks like an AWS access key ID; take it from a Secret (spec.ephemeralContainers[0].env[0].value)`,
	}},
	{"pod-ephemeral-denied.yaml", defaultConfig, []string{
		`apparmor: container "debugger-8xk2p" AppArmor profile: Unconfined is not allowed (spec.ephemeralContainers[0].securityContext.appArmorProfile)`,
		`image_sources: container "debugger-8xk2p" image "nicolaka/netshoot" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (spec.ephemeralContainers[0].image)`,
		`secret_handling: container "debugger-8xk2p" env var "AWS_ACCESS_KEY_ID" has a literal value that looks like an AWS access key ID; take it from a Secret (spec.ephemeralContainers[0].env[0].value)`,
	}},
	{"configmap-admitted.yaml", issue4Config, []string{}},
	{"configmap-admitted.yaml", defaultConfig, []string{}},
	{"configmap-denied.yaml", issue4Config, []string{
		`secret_handling: ConfigMap "shop-api" key "application.yaml" holds a value that looks like a URL with an embedded password; store it in a Secret (data["application.yaml"])`,
		`secret_handling: ConfigMap "shop-api" key "tls.key" holds a value that looks like a PEM private key; store it in a Secret (data["tls.key"])`,
		`secret_handling: Secret "shop-api-db" is of type Opaque (an unset type is Opaque); namespace "shop" takes its secrets from Vault only`,
	}},
	{"configmap-denied.yaml", defaultConfig, []string{
		`secret_handling: ConfigMap "shop-api" key "application.yaml" holds a value that looks like a URL with an embedded password; store it in a Secret (data["application.yaml"])`,
		`secret_handling: ConfigMap "shop-api" key "tls.key" holds a value that looks like a PEM private key; store it in a Secret (data["tls.key"])`,
	}},
}

func TestIssue4Manifests(t *testing.T) {
	engines := map[string]*engine.Engine{
		defaultConfig: loadEngine(t, ""),
		issue4Config:  loadEngine(t, filepath.Join(testdata, issue4Config)),
	}
	for _, tc := range manifestCases {
		name := tc.file + "/config=" + tc.config
		if tc.config == defaultConfig {
			name = tc.file + "/defaults"
		}
		t.Run(name, func(t *testing.T) {
			got, _ := violations(t, engines[tc.config], filepath.Join(testdata, tc.file))
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("violations:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
		})
	}
}

// The policies carry the METADATA the engine selects and enforces them by.
func TestIssue4Metadata(t *testing.T) {
	eng := loadEngine(t, "")
	workloads := []string{"pods", "pods/ephemeralcontainers", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs", "replicationcontrollers", "podtemplates"}
	want := map[string][]string{
		"image_sources":   workloads,
		"apparmor":        workloads,
		"secret_handling": append(slices.Clone(workloads), "configmaps", "secrets"),
	}
	for id, resources := range want {
		p := eng.Registry().Policy(id)
		if p == nil {
			t.Fatalf("policy %q not loaded", id)
		}
		if p.Kind != engine.Validating || p.Enforcement != engine.EnforceDeny {
			t.Errorf("%s: kind %q enforcement %q, want validating deny", id, p.Kind, p.Enforcement)
		}
		if !slices.Equal(p.Resources, resources) {
			t.Errorf("%s: resources %v, want %v", id, p.Resources, resources)
		}
		if p.Title == "" || p.Description == "" {
			t.Errorf("%s: METADATA without title or description", id)
		}
	}
}

// Denied manifests deny, and nothing of the credentials they carry reaches
// the decision: not in messages, not in details, not even a prefix.
func TestIssue4DecisionsNeverEchoSecrets(t *testing.T) {
	eng := loadEngine(t, filepath.Join(testdata, issue4Config))
	canaries := []string{
		"canary-hunter2", "hunter2", "canarykey", "canarypass42", "ghp_canary", "canaryCANARY",
		"AKIACANARY", "CANARY0123456789", "MIIEvQ", "BEGIN PRIVATE KEY",
	}
	for _, file := range []string{"deployment-denied.yaml", "cronjob-denied.yaml", "pod-ephemeral-denied.yaml", "configmap-denied.yaml"} {
		for _, req := range createRequests(t, filepath.Join(testdata, file)) {
			dec, err := eng.Evaluate(context.Background(), engine.Validating, req, engine.Options{Policies: issue4})
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed {
				t.Errorf("%s %s %q: allowed, want denied", file, req.Kind.Kind, req.Name)
			}
			out, err := json.Marshal(struct {
				*engine.Decision
				Message string
			}{dec, dec.Message()})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range canaries {
				if bytes.Contains(bytes.ToLower(out), bytes.ToLower([]byte(c))) {
					t.Errorf("%s: decision contains %q: %s", file, c, out)
				}
			}
		}
	}
}

// Through pods/ephemeralcontainers only the ephemeral containers are
// checked: the pod's own containers, annotations and token were checked
// when it was created and cannot change here.
func TestIssue4EphemeralContainersSubresource(t *testing.T) {
	eng := loadEngine(t, filepath.Join(testdata, issue4Config))
	reqs := createRequests(t, filepath.Join(testdata, "pod-ephemeral-denied.yaml"))
	req := reqs[0]
	// A pod whose own container would be denied, to show it is not checked.
	obj := bytes.Replace(req.Object.Raw, []byte(`registry.example.com/shop/web:3.1.0`), []byte(`registry.example.com/shop/web:latest`), 1)
	sub := request(t, obj, admissionv1.Update, "ephemeralcontainers")
	dec, err := eng.Evaluate(context.Background(), engine.Validating, sub, engine.Options{Policies: issue4})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range dec.Violations {
		got = append(got, v.Policy+": "+v.Message)
	}
	slices.Sort(got)
	want := []string{
		`apparmor: container "debugger-8xk2p" AppArmor profile: Unconfined is not allowed (spec.ephemeralContainers[0].securityContext.appArmorProfile)`,
		`image_sources: container "debugger-8xk2p" image "nicolaka/netshoot" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (spec.ephemeralContainers[0].image)`,
		`image_sources: container "debugger-8xk2p" image "nicolaka/netshoot" is not from an allowed registry or repository (spec.ephemeralContainers[0].image); allowed: "registry.example.com/shop", "registry.example.com/batch", "quay.io/brancz", "docker.io/library/busybox"`,
		`secret_handling: container "debugger-8xk2p" env var "AWS_ACCESS_KEY_ID" has a literal value that looks like an AWS access key ID; take it from a Secret (spec.ephemeralContainers[0].env[0].value)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if dec.Allowed {
		t.Error("allowed, want denied")
	}
}

// benchPod returns a Pod in namespace shop with one init container and n
// containers, each with a realistic mix of env vars, a Secret reference, a
// security context with an AppArmor profile and the matching annotation.
func benchPod(tb testing.TB, n int) []byte {
	tb.Helper()
	container := func(name, image string) map[string]any {
		return map[string]any{
			"name":            name,
			"image":           image,
			"imagePullPolicy": "IfNotPresent",
			"args":            []any{"--config=/etc/app/config.yaml", "--listen=:8080"},
			"env": []any{
				map[string]any{"name": "LOG_LEVEL", "value": "info"},
				map[string]any{"name": "DB_HOST", "value": "postgres.shop.svc"},
				map[string]any{"name": "DB_PASSWORD_FILE", "value": "/vault/secrets/db"},
				map[string]any{"name": "UPSTREAM_URL", "value": "http://backend.shop.svc:8080/api"},
				map[string]any{"name": "API_TOKEN", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "api", "key": "token"}}},
				map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}},
			},
			"resources": map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}},
			"securityContext": map[string]any{
				"allowPrivilegeEscalation": false,
				"capabilities":             map[string]any{"drop": []any{"ALL"}},
				"appArmorProfile":          map[string]any{"type": "Localhost", "localhostProfile": "k8s-app"},
			},
		}
	}
	annotations := map[string]any{}
	containers := []any{}
	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		containers = append(containers, container(name, fmt.Sprintf("registry.example.com/shop/app-%d:1.%d.0", i, i)))
		annotations["container.apparmor.security.beta.kubernetes.io/"+name] = "localhost/k8s-app"
	}
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":        "shop-api-6f7d9c-abcde",
			"namespace":   "shop",
			"labels":      map[string]any{"app.kubernetes.io/name": "api", "pod-template-hash": "6f7d9c"},
			"annotations": annotations,
		},
		"spec": map[string]any{
			"automountServiceAccountToken": false,
			"securityContext":              map[string]any{"runAsNonRoot": true, "appArmorProfile": map[string]any{"type": "RuntimeDefault"}},
			"initContainers":               []any{container("init", "registry.example.com/shop/migrate:1.0.0")},
			"containers":                   containers,
		},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// cpuTime is the CPU time the process has used (user + system). On a
// machine shared with other work, cpu-ns/op is steadier than ns/op, which
// counts the time spent waiting for a core.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIssue4Policies evaluates image_sources, secret_handling and
// apparmor together (all optional modes on, through the engine as the
// server does) on a typical pod (1 init container + 2 containers) and a
// 30-container pod, and each policy alone on the large one. The pods are
// admitted, so every rule runs to the end. "baseline" runs the trivial
// required_labels policy: the engine's own cost (converting the request
// into a Rego value), which the others include.
func BenchmarkIssue4Policies(b *testing.B) {
	eng := loadEngine(b, filepath.Join(testdata, issue4Config))
	for _, bc := range []struct {
		name       string
		containers int
		policies   []string
	}{
		{"typical/all", 2, issue4},
		{"typical/baseline", 2, []string{"required_labels"}},
		{"typical/image_sources", 2, []string{"image_sources"}},
		{"typical/secret_handling", 2, []string{"secret_handling"}},
		{"typical/apparmor", 2, []string{"apparmor"}},
		{"30-containers/all", 30, issue4},
		{"30-containers/baseline", 30, []string{"required_labels"}},
		{"30-containers/image_sources", 30, []string{"image_sources"}},
		{"30-containers/secret_handling", 30, []string{"secret_handling"}},
		{"30-containers/apparmor", 30, []string{"apparmor"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := benchPod(b, bc.containers)
			req := request(b, raw, admissionv1.Create, "")
			dec, err := eng.Evaluate(context.Background(), engine.Validating, req, engine.Options{Policies: bc.policies})
			if err != nil || !dec.Allowed || len(dec.Violations) > 0 || len(dec.Errors) > 0 {
				b.Fatalf("pod must be admitted cleanly: err %v, decision %+v", err, dec)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				if _, err := eng.Evaluate(context.Background(), engine.Validating, req, engine.Options{Policies: bc.policies}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
