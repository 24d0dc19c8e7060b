package manifests_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/manifests"
)

const (
	namespace  = "portcullis-system"
	name       = "portcullis"
	tlsSecret  = "portcullis-tls"
	certMgr    = "cert-manager"
	selfSigned = "self-signed"
)

// newObject returns an empty typed object for every kind the overlays may
// render; any other kind fails the test, so nothing escapes the checks.
var newObject = map[string]func() any{
	"v1/Namespace":      func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount": func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":      func() any { return &corev1.ConfigMap{} },
	"v1/Service":        func() any { return &corev1.Service{} },
	"apps/v1/Deployment": func() any {
		return &appsv1.Deployment{}
	},
	"policy/v1/PodDisruptionBudget":            func() any { return &policyv1.PodDisruptionBudget{} },
	"rbac.authorization.k8s.io/v1/Role":        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/ClusterRole": func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any {
		return &rbacv1.ClusterRoleBinding{}
	},
	"admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration": func() any {
		return &admissionregistrationv1.ValidatingWebhookConfiguration{}
	},
	"admissionregistration.k8s.io/v1/MutatingWebhookConfiguration": func() any {
		return &admissionregistrationv1.MutatingWebhookConfiguration{}
	},
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"cert-manager.io/v1/Issuer":          func() any { return &cmapi.Issuer{} },
	"cert-manager.io/v1/Certificate":     func() any { return &cmapi.Certificate{} },
}

// rendered is one overlay, decoded into typed objects.
type rendered struct {
	yaml []byte
	keys []string       // "Kind namespace/name", in output order
	objs map[string]any // by key
}

var renderCache = map[string]*rendered{}

// chartPrefix marks a variant rendered from the Helm chart: "chart/<mode>"
// is the chart with the values equivalent to overlays/<mode>.
const chartPrefix = "chart/"

// variants are what every property test checks: each overlay, and the Helm
// chart with the equivalent values.
func variants() []string {
	var out []string
	for _, o := range manifests.Overlays() {
		out = append(out, o, chartPrefix+o)
	}
	return out
}

// mode is the overlay a variant is equivalent to.
func mode(variant string) string { return strings.TrimPrefix(variant, chartPrefix) }

// chartValues are the chart values equivalent to overlays/<mode>: the chart
// renders the namespace too, and takes the certificate mode.
func chartValues(mode string) map[string]any {
	return map[string]any{
		"namespace":    map[string]any{"create": true},
		"certificates": map[string]any{"mode": mode},
	}
}

// render builds overlays/<variant> (or the chart, for "chart/<mode>") and
// decodes every object strictly (an unknown field is an error, so a
// misspelt field cannot pass silently).
func render(t *testing.T, variant string) *rendered {
	t.Helper()
	if r, ok := renderCache[variant]; ok {
		return r
	}
	var out []byte
	var err error
	if strings.HasPrefix(variant, chartPrefix) {
		out, err = manifests.RenderChart(manifests.ChartDir, name, namespace, chartValues(mode(variant)))
	} else {
		out, err = manifests.Render(filepath.Join("overlays", variant))
	}
	if err != nil {
		t.Fatalf("render %s: %v", variant, err)
	}
	r := decode(t, variant, out)
	renderCache[variant] = r
	return r
}

// decode reads a multi-document YAML stream into typed objects.
func decode(t *testing.T, overlay string, out []byte) *rendered {
	t.Helper()
	r := &rendered{yaml: out, objs: map[string]any{}}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: read YAML: %v", overlay, err)
		}
		raw, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: YAML to JSON: %v", overlay, err)
		}
		var meta struct {
			metav1.TypeMeta
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatalf("%s: decode type: %v", overlay, err)
		}
		gvk := meta.APIVersion + "/" + meta.Kind
		mk, ok := newObject[gvk]
		if !ok {
			t.Fatalf("%s: unexpected kind %s (%s)", overlay, gvk, meta.Metadata.Name)
		}
		obj := mk()
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			t.Fatalf("%s: decode %s %s: %v", overlay, gvk, meta.Metadata.Name, err)
		}
		key := objKey(meta.Kind, meta.Metadata.Namespace, meta.Metadata.Name)
		if _, dup := r.objs[key]; dup {
			t.Fatalf("%s: duplicate object %s", overlay, key)
		}
		r.keys = append(r.keys, key)
		r.objs[key] = obj
	}
	return r
}

func objKey(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// get returns the object of type T under key, failing the test if absent.
func get[T any](t *testing.T, r *rendered, kind, ns, name string) T {
	t.Helper()
	obj, ok := r.objs[objKey(kind, ns, name)]
	if !ok {
		t.Fatalf("no %s in %v", objKey(kind, ns, name), r.keys)
	}
	typed, ok := obj.(T)
	if !ok {
		t.Fatalf("%s is %T", objKey(kind, ns, name), obj)
	}
	return typed
}

// configMapName returns the generated (hash-suffixed) name of the config.
func configMapName(t *testing.T, r *rendered) string {
	t.Helper()
	var found []string
	for _, k := range r.keys {
		if strings.HasPrefix(k, "ConfigMap "+namespace+"/portcullis-config-") {
			found = append(found, strings.TrimPrefix(k, "ConfigMap "+namespace+"/"))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one generated portcullis-config ConfigMap, got %v", found)
	}
	return found[0]
}

// check is one exact expectation: got must deep-equal want.
type check struct {
	name      string
	got, want any
}

func runChecks(t *testing.T, checks []check) {
	t.Helper()
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			got, _ := json.MarshalIndent(c.got, "", "  ")
			want, _ := json.MarshalIndent(c.want, "", "  ")
			t.Errorf("%s:\n got: %s\nwant: %s", c.name, got, want)
		}
	}
}

func TestObjects(t *testing.T) {
	common := func(cm string) []string { return []string{objKey("ConfigMap", namespace, cm)} }
	for _, overlay := range variants() {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			cm := configMapName(t, r)
			want := map[string][]string{
				certMgr: slices.Concat([]string{
					objKey("Namespace", "", namespace),
					objKey("ServiceAccount", namespace, name),
				}, common(cm), []string{
					objKey("Service", namespace, name),
					objKey("Deployment", namespace, name),
					objKey("PodDisruptionBudget", namespace, name),
					objKey("Certificate", namespace, "portcullis-ca"),
					objKey("Certificate", namespace, "portcullis-serving"),
					objKey("Issuer", namespace, "portcullis-ca"),
					objKey("Issuer", namespace, "portcullis-selfsigned"),
					objKey("MutatingWebhookConfiguration", "", name),
					objKey("ValidatingWebhookConfiguration", "", name),
				}),
				selfSigned: slices.Concat([]string{
					objKey("Namespace", "", namespace),
					objKey("ServiceAccount", namespace, name),
					objKey("Role", namespace, "portcullis-cert-secret"),
					objKey("ClusterRole", "", "portcullis-webhook-ca-bundle"),
					objKey("RoleBinding", namespace, "portcullis-cert-secret"),
					objKey("ClusterRoleBinding", "", "portcullis-webhook-ca-bundle"),
				}, common(cm), []string{
					objKey("Service", namespace, name),
					objKey("Deployment", namespace, name),
					objKey("PodDisruptionBudget", namespace, name),
					objKey("MutatingWebhookConfiguration", "", name),
					objKey("ValidatingWebhookConfiguration", "", name),
				}),
			}[mode(overlay)]
			// The order matters: `kubectl apply -f` creates in this order, so
			// the namespace comes first and the webhooks last. Helm has its
			// own install order (kinds it does not know, such as the webhook
			// configurations, last): the same objects, the same ends.
			got := r.keys
			if strings.HasPrefix(overlay, chartPrefix) {
				got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
				deployment := slices.Index(r.keys, objKey("Deployment", namespace, name))
				runChecks(t, []check{
					{"Helm: namespace first", r.keys[0], objKey("Namespace", "", namespace)},
					{"Helm: webhooks after the Deployment", []bool{
						slices.Index(r.keys, objKey("MutatingWebhookConfiguration", "", name)) > deployment,
						slices.Index(r.keys, objKey("ValidatingWebhookConfiguration", "", name)) > deployment,
					}, []bool{true, true}},
				})
			}
			runChecks(t, []check{{"objects in apply order", got, want}})
			for _, key := range r.keys {
				if !strings.HasPrefix(key, "Namespace ") && !strings.Contains(key, "Role") &&
					!strings.Contains(key, "WebhookConfiguration") && !strings.HasPrefix(key, "ConfigMap ") &&
					!strings.Contains(key, " "+namespace+"/") {
					t.Errorf("%s: not in %s", key, namespace)
				}
			}
		})
	}
}

func TestNamespace(t *testing.T) {
	for _, overlay := range variants() {
		t.Run(overlay, func(t *testing.T) {
			ns := get[*corev1.Namespace](t, render(t, overlay), "Namespace", "", namespace)
			runChecks(t, []check{{"namespace labels", ns.Labels, map[string]string{
				"app.kubernetes.io/part-of":                  "portcullis",
				"kubernetes.io/metadata.name":                namespace,
				"pod-security.kubernetes.io/enforce":         "restricted",
				"pod-security.kubernetes.io/enforce-version": "latest",
				"pod-security.kubernetes.io/audit":           "restricted",
				"pod-security.kubernetes.io/audit-version":   "latest",
				"pod-security.kubernetes.io/warn":            "restricted",
				"pod-security.kubernetes.io/warn-version":    "latest",
			}}})
		})
	}
}

var (
	podLabels = map[string]string{
		"app.kubernetes.io/name":      "portcullis",
		"app.kubernetes.io/component": "webhook",
	}
	baseArgs = []string{
		"serve",
		"--bind-address=0.0.0.0",
		"--port=9443",
		"--cert-dir=/certs",
		"--health-probe-bind-address=:8081",
		"--metrics-bind-address=:8080",
		"--config=/etc/portcullis/config.yaml",
	}
)

func TestDeployment(t *testing.T) {
	selector := &metav1.LabelSelector{MatchLabels: podLabels}
	tests := map[string]struct {
		automount bool
		args      []string
		env       []corev1.EnvVar
		certs     corev1.VolumeSource
		// certsReadOnly: the server only reads /certs (cert-manager mode)
		// or writes it (self-signed mode).
		certsReadOnly bool
	}{
		certMgr: {
			automount: false,
			args:      baseArgs,
			certs:     corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: tlsSecret, DefaultMode: ptr.To[int32](0o440)}},

			certsReadOnly: true,
		},
		selfSigned: {
			automount: true,
			args: slices.Concat(baseArgs, []string{
				"--cert-mode=self-signed",
				"--cert-secret-name=portcullis-tls",
				"--cert-secret-namespace=$(POD_NAMESPACE)",
				"--service-name=portcullis",
				"--webhook-config-name=portcullis",
			}),
			env: []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"},
			}}},
			// The server reads the Secret through the API and writes the
			// pair here; in memory, so the key never reaches the node's disk.
			certs: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				Medium:    corev1.StorageMediumMemory,
				SizeLimit: ptr.To(resource.MustParse("1Mi")),
			}},
		},
	}
	for _, overlay := range variants() {
		tt, ok := tests[mode(overlay)]
		if !ok {
			t.Fatalf("no expectations for overlay %s", overlay)
		}
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
			sa := get[*corev1.ServiceAccount](t, r, "ServiceAccount", namespace, name)
			spec := d.Spec.Template.Spec
			if len(spec.Containers) != 1 {
				t.Fatalf("want 1 container, got %d", len(spec.Containers))
			}
			c := spec.Containers[0]
			runChecks(t, []check{
				{"replicas", d.Spec.Replicas, ptr.To[int32](3)},
				{"selector", d.Spec.Selector, selector},
				{"template labels", d.Spec.Template.Labels, podLabels},
				{"strategy", d.Spec.Strategy, appsv1.DeploymentStrategy{
					Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{
						MaxSurge:       ptr.To(intstr.FromInt32(1)),
						MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					},
				}},
				{"serviceAccountName", spec.ServiceAccountName, name},
				{"pod automountServiceAccountToken", spec.AutomountServiceAccountToken, ptr.To(tt.automount)},
				{"ServiceAccount automountServiceAccountToken", sa.AutomountServiceAccountToken, ptr.To(tt.automount)},
				{"priorityClassName", spec.PriorityClassName, "system-cluster-critical"},
				{"terminationGracePeriodSeconds", spec.TerminationGracePeriodSeconds, ptr.To[int64](30)},
				{"hostNetwork/PID/IPC", []bool{spec.HostNetwork, spec.HostPID, spec.HostIPC}, []bool{false, false, false}},
				{"initContainers", spec.InitContainers, []corev1.Container(nil)},
				{"pod securityContext", spec.SecurityContext, &corev1.PodSecurityContext{
					RunAsNonRoot:   ptr.To(true),
					RunAsUser:      ptr.To[int64](65532),
					RunAsGroup:     ptr.To[int64](65532),
					FSGroup:        ptr.To[int64](65532),
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				}},
				{"affinity", spec.Affinity, &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
						Weight: 100,
						PodAffinityTerm: corev1.PodAffinityTerm{
							TopologyKey:   "kubernetes.io/hostname",
							LabelSelector: selector,
						},
					}},
				}}},
				{"topologySpreadConstraints", spec.TopologySpreadConstraints, []corev1.TopologySpreadConstraint{
					{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: selector},
					{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: selector},
				}},
				{"container name", c.Name, name},
				{"image", c.Image, "ghcr.io/portcullis/portcullis:" + releaseVersion(t)},
				{"args", c.Args, tt.args},
				{"command", c.Command, []string(nil)},
				{"env", c.Env, tt.env},
				{"ports", c.Ports, []corev1.ContainerPort{
					{Name: "webhook", ContainerPort: 9443, Protocol: corev1.ProtocolTCP},
					{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
					{Name: "health", ContainerPort: 8081, Protocol: corev1.ProtocolTCP},
				}},
				{"readinessProbe", c.ReadinessProbe, &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("health")}},
					PeriodSeconds:    5,
					TimeoutSeconds:   2,
					FailureThreshold: 3,
				}},
				{"livenessProbe", c.LivenessProbe, &corev1.Probe{
					ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("health")}},
					InitialDelaySeconds: 10,
					PeriodSeconds:       10,
					TimeoutSeconds:      2,
					FailureThreshold:    3,
				}},
				{"resources", c.Resources, corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("100m"),
						corev1.ResourceMemory: resource.MustParse("128Mi"),
					},
					Limits: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("1"),
						corev1.ResourceMemory: resource.MustParse("512Mi"),
					},
				}},
				{"container securityContext", c.SecurityContext, &corev1.SecurityContext{
					RunAsNonRoot:             ptr.To(true),
					AllowPrivilegeEscalation: ptr.To(false),
					Privileged:               ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				}},
				{"volumeMounts", c.VolumeMounts, []corev1.VolumeMount{
					{Name: "certs", MountPath: "/certs", ReadOnly: tt.certsReadOnly},
					{Name: "config", MountPath: "/etc/portcullis", ReadOnly: true},
					{Name: "tmp", MountPath: "/tmp"},
				}},
				{"volumes", spec.Volumes, []corev1.Volume{
					{Name: "certs", VolumeSource: tt.certs},
					{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(t, r)},
					}}},
					{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
						SizeLimit: ptr.To(resource.MustParse("64Mi")),
					}}},
				}},
			})
			// The --config path is a key of the mounted ConfigMap.
			cm := get[*corev1.ConfigMap](t, r, "ConfigMap", namespace, configMapName(t, r))
			if _, ok := cm.Data["config.yaml"]; !ok {
				t.Errorf("ConfigMap %s has no config.yaml: %v", cm.Name, cm.Data)
			}
		})
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	for _, overlay := range variants() {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			pdb := get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", namespace, name)
			d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
			runChecks(t, []check{
				{"minAvailable", pdb.Spec.MinAvailable, ptr.To(intstr.FromInt32(2))},
				{"maxUnavailable", pdb.Spec.MaxUnavailable, (*intstr.IntOrString)(nil)},
				{"selector is the Deployment's", pdb.Spec.Selector, d.Spec.Selector},
				{"unhealthyPodEvictionPolicy", pdb.Spec.UnhealthyPodEvictionPolicy, ptr.To(policyv1.AlwaysAllow)},
			})
			// minAvailable must leave room for a drain.
			if got := int(*d.Spec.Replicas) - pdb.Spec.MinAvailable.IntValue(); got < 1 {
				t.Errorf("replicas - minAvailable = %d, want >= 1", got)
			}
		})
	}
}

func TestService(t *testing.T) {
	for _, overlay := range variants() {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			svc := get[*corev1.Service](t, r, "Service", namespace, name)
			d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
			runChecks(t, []check{
				{"type", svc.Spec.Type, corev1.ServiceTypeClusterIP},
				{"selector", svc.Spec.Selector, podLabels},
				{"ports", svc.Spec.Ports, []corev1.ServicePort{{
					Name: "https", Port: 443, TargetPort: intstr.FromString("webhook"), Protocol: corev1.ProtocolTCP,
				}}},
			})
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
			}
			var target int32
			for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
				if p.Name == svc.Spec.Ports[0].TargetPort.StrVal {
					target = p.ContainerPort
				}
			}
			runChecks(t, []check{{"Service targetPort resolves to the server's --port", target, int32(9443)}})
		})
	}
}

// The webhooks as every overlay must render them (annotations aside).
var (
	namespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "kube-node-lease", namespace}},
		{Key: "portcullis.dev/ignore", Operator: metav1.LabelSelectorOpDoesNotExist},
	}}
	skipMirrorPods = []admissionregistrationv1.MatchCondition{{
		Name: "not-a-mirror-pod",
		Expression: "request.resource.group != '' || request.resource.resource != 'pods' || " +
			"object == null || !has(object.metadata.annotations) || " +
			"!('kubernetes.io/config.mirror' in object.metadata.annotations) || " +
			"!has(request.userInfo.groups) || !('system:nodes' in request.userInfo.groups)",
	}}
	createUpdate = []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	namespaced   = ptr.To(admissionregistrationv1.NamespacedScope)

	wantValidating = admissionregistrationv1.ValidatingWebhook{
		Name: "validate.portcullis.dev",
		ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: namespace, Name: name, Path: ptr.To("/validate"), Port: ptr.To[int32](443),
		}},
		Rules: []admissionregistrationv1.RuleWithOperations{
			{Operations: createUpdate, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Scope: namespaced,
				Resources: []string{"pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates", "configmaps", "secrets"},
			}},
			{Operations: createUpdate, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Scope: namespaced,
				Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"},
			}},
			{Operations: createUpdate, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Scope: namespaced,
				Resources: []string{"jobs", "cronjobs"},
			}},
		},
		FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		NamespaceSelector:       namespaceSelector,
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To[int32](3),
		AdmissionReviewVersions: []string{"v1"},
		MatchConditions:         skipMirrorPods,
	}
	wantMutating = admissionregistrationv1.MutatingWebhook{
		Name: "mutate.portcullis.dev",
		ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: namespace, Name: name, Path: ptr.To("/mutate"), Port: ptr.To[int32](443),
		}},
		Rules: []admissionregistrationv1.RuleWithOperations{
			{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Scope: namespaced,
				Resources: []string{"pods"},
			}},
			{Operations: createUpdate, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Scope: namespaced,
				Resources: []string{"replicationcontrollers", "podtemplates"},
			}},
			{Operations: createUpdate, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Scope: namespaced,
				Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"},
			}},
			{Operations: createUpdate, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Scope: namespaced,
				Resources: []string{"jobs", "cronjobs"},
			}},
		},
		FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		NamespaceSelector:       namespaceSelector,
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To[int32](2),
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		MatchConditions:         skipMirrorPods,
	}
)

func TestWebhookConfigurations(t *testing.T) {
	annotations := map[string]map[string]string{
		// cainjector fills caBundle from the serving Certificate's Secret.
		certMgr: {"cert-manager.io/inject-ca-from": namespace + "/portcullis-serving"},
		// The server writes caBundle itself.
		selfSigned: nil,
	}
	for _, overlay := range variants() {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			vwc := get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", "", name)
			mwc := get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", "", name)
			runChecks(t, []check{
				{"validating webhooks", vwc.Webhooks, []admissionregistrationv1.ValidatingWebhook{wantValidating}},
				{"mutating webhooks", mwc.Webhooks, []admissionregistrationv1.MutatingWebhook{wantMutating}},
				{"validating annotations", vwc.Annotations, annotations[mode(overlay)]},
				{"mutating annotations", mwc.Annotations, annotations[mode(overlay)]},
			})
			// Every webhook points at the rendered Service and its port.
			svc := get[*corev1.Service](t, r, "Service", namespace, name)
			for _, ref := range []*admissionregistrationv1.ServiceReference{
				vwc.Webhooks[0].ClientConfig.Service, mwc.Webhooks[0].ClientConfig.Service,
			} {
				if ref.Namespace != svc.Namespace || ref.Name != svc.Name || *ref.Port != svc.Spec.Ports[0].Port {
					t.Errorf("webhook service %s/%s:%d is not the rendered Service %s/%s:%d",
						ref.Namespace, ref.Name, *ref.Port, svc.Namespace, svc.Name, svc.Spec.Ports[0].Port)
				}
			}
		})
	}
}

// TestNamespaceSelector evaluates the selector on namespaces as the
// apiserver labels them: the control plane, the lease namespace, our own and
// opted-out namespaces are never sent to the webhook.
func TestNamespaceSelector(t *testing.T) {
	sel, err := metav1.LabelSelectorAsSelector(namespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		labels map[string]string
		want   bool
	}{
		"kube-system":            {map[string]string{"kubernetes.io/metadata.name": "kube-system"}, false},
		"kube-node-lease":        {map[string]string{"kubernetes.io/metadata.name": "kube-node-lease"}, false},
		"portcullis-system":      {map[string]string{"kubernetes.io/metadata.name": namespace}, false},
		"opted out":              {map[string]string{"kubernetes.io/metadata.name": "legacy", "portcullis.dev/ignore": "true"}, false},
		"opted out, empty value": {map[string]string{"kubernetes.io/metadata.name": "legacy", "portcullis.dev/ignore": ""}, false},
		"default":                {map[string]string{"kubernetes.io/metadata.name": "default"}, true},
		"kube-public":            {map[string]string{"kubernetes.io/metadata.name": "kube-public"}, true},
		"team namespace":         {map[string]string{"kubernetes.io/metadata.name": "team-a", "portcullis.dev/other": "x"}, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sel.Matches(labels.Set(tt.labels)); got != tt.want {
				t.Errorf("selected = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRBAC(t *testing.T) {
	for _, prefix := range []string{"", chartPrefix} {
		testRBAC(t, prefix)
	}
}

func testRBAC(t *testing.T, prefix string) {
	t.Run(prefix+certMgr, func(t *testing.T) {
		// cert-manager mode needs no API access at all.
		for _, key := range render(t, prefix+certMgr).keys {
			if strings.Contains(key, "Role") {
				t.Errorf("unexpected RBAC object %s", key)
			}
		}
	})
	t.Run(prefix+selfSigned, func(t *testing.T) {
		r := render(t, prefix+selfSigned)
		subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}}
		cr := get[*rbacv1.ClusterRole](t, r, "ClusterRole", "", "portcullis-webhook-ca-bundle")
		crb := get[*rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding", "", "portcullis-webhook-ca-bundle")
		role := get[*rbacv1.Role](t, r, "Role", namespace, "portcullis-cert-secret")
		rb := get[*rbacv1.RoleBinding](t, r, "RoleBinding", namespace, "portcullis-cert-secret")
		runChecks(t, []check{
			{"ClusterRole rules", cr.Rules, []rbacv1.PolicyRule{{
				APIGroups:     []string{"admissionregistration.k8s.io"},
				Resources:     []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"},
				ResourceNames: []string{name},
				Verbs:         []string{"get", "patch"},
			}}},
			{"ClusterRole aggregation", cr.AggregationRule, (*rbacv1.AggregationRule)(nil)},
			{"ClusterRoleBinding roleRef", crb.RoleRef, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name}},
			{"ClusterRoleBinding subjects", crb.Subjects, subjects},
			{"Role rules", role.Rules, []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{tlsSecret}, Verbs: []string{"get", "update"}},
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
			}},
			{"RoleBinding roleRef", rb.RoleRef, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}},
			{"RoleBinding subjects", rb.Subjects, subjects},
		})
		// The names in the rules are the objects the server manages.
		d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
		args := d.Spec.Template.Spec.Containers[0].Args
		runChecks(t, []check{
			{"Secret in the Role is the server's", "--cert-secret-name=" + role.Rules[0].ResourceNames[0], argWithPrefix(args, "--cert-secret-name=")},
			{"configurations in the ClusterRole are the server's", "--webhook-config-name=" + cr.Rules[0].ResourceNames[0], argWithPrefix(args, "--webhook-config-name=")},
			{"Secret namespace is the Role's", "--cert-secret-namespace=$(POD_NAMESPACE)", argWithPrefix(args, "--cert-secret-namespace=")},
			{"Role namespace is the pod's", role.Namespace, d.Namespace},
		})
		get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", "", cr.Rules[0].ResourceNames[0])
		get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", "", cr.Rules[0].ResourceNames[0])
		// No wildcards anywhere, and nothing cluster-wide without a name.
		for _, rule := range slices.Concat(cr.Rules, role.Rules) {
			for _, v := range slices.Concat(rule.APIGroups, rule.Resources, rule.Verbs) {
				if v == "*" {
					t.Errorf("wildcard in rule %+v", rule)
				}
			}
		}
		for _, rule := range cr.Rules {
			if len(rule.ResourceNames) == 0 {
				t.Errorf("cluster-wide rule without resourceNames: %+v", rule)
			}
		}
	})
}

func TestCertManager(t *testing.T) {
	for _, variant := range []string{certMgr, chartPrefix + certMgr} {
		t.Run(variant, func(t *testing.T) { testCertManager(t, render(t, variant)) })
	}
}

func testCertManager(t *testing.T, r *rendered) {
	selfIssuer := get[*cmapi.Issuer](t, r, "Issuer", namespace, "portcullis-selfsigned")
	caCert := get[*cmapi.Certificate](t, r, "Certificate", namespace, "portcullis-ca")
	caIssuer := get[*cmapi.Issuer](t, r, "Issuer", namespace, "portcullis-ca")
	serving := get[*cmapi.Certificate](t, r, "Certificate", namespace, "portcullis-serving")
	ecdsa := &cmapi.CertificatePrivateKey{
		Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmapi.RotationPolicyAlways,
	}
	runChecks(t, []check{
		{"self-signed Issuer", selfIssuer.Spec, cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{
			SelfSigned: &cmapi.SelfSignedIssuer{},
		}}},
		{"CA Certificate", caCert.Spec, cmapi.CertificateSpec{
			IsCA:        true,
			CommonName:  "portcullis-ca",
			SecretName:  "portcullis-ca",
			Duration:    &metav1.Duration{Duration: 5 * 365 * 24 * time.Hour},
			RenewBefore: &metav1.Duration{Duration: 365 * 24 * time.Hour},
			PrivateKey:  ecdsa,
			IssuerRef:   cmmeta.IssuerReference{Group: "cert-manager.io", Kind: "Issuer", Name: selfIssuer.Name},
		}},
		{"CA Issuer", caIssuer.Spec, cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{
			CA: &cmapi.CAIssuer{SecretName: caCert.Spec.SecretName},
		}}},
		{"serving Certificate", serving.Spec, cmapi.CertificateSpec{
			SecretName: tlsSecret,
			DNSNames: []string{
				"portcullis.portcullis-system.svc",
				"portcullis.portcullis-system.svc.cluster.local",
			},
			Duration:    &metav1.Duration{Duration: 90 * 24 * time.Hour},
			RenewBefore: &metav1.Duration{Duration: 30 * 24 * time.Hour},
			PrivateKey:  ecdsa,
			Usages:      []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature},
			IssuerRef:   cmmeta.IssuerReference{Group: "cert-manager.io", Kind: "Issuer", Name: caIssuer.Name},
		}},
	})
	// The serving certificate covers the name the apiserver dials, lands in
	// the Secret the pods mount, and is the one the webhooks' CA comes from.
	svc := get[*corev1.Service](t, r, "Service", namespace, name)
	dialed := fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace)
	if !slices.Contains(serving.Spec.DNSNames, dialed) {
		t.Errorf("serving certificate %v does not cover %s", serving.Spec.DNSNames, dialed)
	}
	d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
	runChecks(t, []check{{"mounted Secret", d.Spec.Template.Spec.Volumes[0].Secret.SecretName, serving.Spec.SecretName}})
	vwc := get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", "", name)
	runChecks(t, []check{{"inject-ca-from", vwc.Annotations["cert-manager.io/inject-ca-from"], serving.Namespace + "/" + serving.Name}})
}

// TestRenderedUpToDate keeps rendered/ (what users apply without kustomize)
// in step with the sources. Regenerate with `go run ./manifests/cmd/render`
// from the repository root (make manifests).
func TestRenderedUpToDate(t *testing.T) {
	for _, overlay := range manifests.Overlays() {
		t.Run(overlay, func(t *testing.T) {
			path := filepath.Join("rendered", overlay+".yaml")
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `make manifests`)", err)
			}
			_, body, ok := bytes.Cut(got, []byte("\n"))
			if !ok || !bytes.Equal(body, render(t, overlay).yaml) {
				t.Errorf("%s is out of date: run `make manifests` (go run ./manifests/cmd/render)", path)
			}
		})
	}
}

// argWithPrefix returns the first argument starting with prefix, or "".
func argWithPrefix(args []string, prefix string) string {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return a
		}
	}
	return ""
}

// The optional NetworkPolicy (components/network-policy, with
// components/network-policy-apiserver in self-signed mode), rendered through
// the examples and decoded strictly: it selects exactly the webhook's pods,
// admits traffic only to the webhook, health and metrics ports (which must
// be the container's port names), and lets nothing out but connections to
// the API server's ports in self-signed mode. The overlays alone carry none.
func TestNetworkPolicy(t *testing.T) {
	port := func(p intstr.IntOrString) networkingv1.NetworkPolicyPort {
		tcp := corev1.ProtocolTCP
		return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p}
	}
	ingress := []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
		port(intstr.FromString("webhook")), port(intstr.FromString("health")), port(intstr.FromString("metrics")),
	}}}
	for example, egress := range map[string][]networkingv1.NetworkPolicyEgressRule{
		"cert-manager-network-policy": {},
		"self-signed-network-policy":  {{Ports: []networkingv1.NetworkPolicyPort{port(intstr.FromInt32(443)), port(intstr.FromInt32(6443))}}},
	} {
		t.Run(example, func(t *testing.T) {
			r := render(t, filepath.Join("..", "examples", example))
			np := get[*networkingv1.NetworkPolicy](t, r, "NetworkPolicy", namespace, name)
			dep := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
			named := map[string]bool{}
			for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
				named[p.Name] = true
			}
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port.Type == intstr.String && !named[p.Port.StrVal] {
						t.Errorf("ingress port %q is not a port name of the container", p.Port.StrVal)
					}
				}
			}
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			runChecks(t, []check{
				{"selects the webhook's pods", sel.Matches(labels.Set(dep.Spec.Template.Labels)), true},
				{"pod selector", np.Spec.PodSelector.MatchLabels, dep.Spec.Selector.MatchLabels},
				{"policy types", np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}},
				{"ingress", np.Spec.Ingress, ingress},
				{"egress", np.Spec.Egress, egress},
			})
		})
	}
	for _, overlay := range manifests.Overlays() {
		for _, k := range render(t, overlay).keys {
			if strings.HasPrefix(k, "NetworkPolicy ") {
				t.Errorf("%s renders %s: the NetworkPolicy is opt-in", overlay, k)
			}
		}
	}
}
