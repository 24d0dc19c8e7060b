package manifests_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/manifests"
)

// TestChartMatchesOverlays: for equivalent values the chart renders the very
// objects of the overlay (and of the examples adding the NetworkPolicy
// component), field for field. The only difference allowed is
// the configuration ConfigMap: its name carries a hash of its content in
// both (so a change rolls the pods), but the hashes differ (kustomize hashes
// the commented file, the chart its YAML), and its config.yaml must parse
// to the same configuration.
func TestChartMatchesOverlays(t *testing.T) {
	cases := map[string]map[string]any{}
	for _, overlay := range manifests.Overlays() {
		cases[overlay] = chartValues(overlay)
		// The examples adding the NetworkPolicy component to each overlay.
		np := chartValues(overlay)
		np["networkPolicy"] = map[string]any{"enabled": true}
		cases[filepath.Join("..", "examples", overlay+"-network-policy")] = np
	}
	for dir, values := range cases {
		t.Run(dir, func(t *testing.T) {
			out, err := manifests.RenderChart(manifests.ChartDir, name, namespace, values)
			if err != nil {
				t.Fatal(err)
			}
			want, got := render(t, dir), decode(t, "chart for "+dir, out)
			wantCM, gotCM := configMapName(t, want), configMapName(t, got)
			wantCfg := get[*corev1.ConfigMap](t, want, "ConfigMap", namespace, wantCM)
			gotCfg := get[*corev1.ConfigMap](t, got, "ConfigMap", namespace, gotCM)
			var wc, gc map[string]any
			if err := yaml.Unmarshal([]byte(wantCfg.Data["config.yaml"]), &wc); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(gotCfg.Data["config.yaml"]), &gc); err != nil {
				t.Fatal(err)
			}
			runChecks(t, []check{{"config.yaml", gc, wc}})

			normalize := func(r *rendered, cm string) map[string]any {
				out := map[string]any{}
				for _, k := range r.keys {
					obj := r.objs[k]
					switch o := obj.(type) {
					case *corev1.ConfigMap:
						if o.Name == cm {
							c := o.DeepCopy()
							c.Name, c.Data = "portcullis-config", nil
							k, obj = objKey("ConfigMap", namespace, c.Name), c
						}
					case *appsv1.Deployment:
						d := o.DeepCopy()
						for i, v := range d.Spec.Template.Spec.Volumes {
							if v.ConfigMap != nil && v.ConfigMap.Name == cm {
								d.Spec.Template.Spec.Volumes[i].ConfigMap.Name = "portcullis-config"
							}
						}
						obj = d
					}
					out[k] = obj
				}
				return out
			}
			w, g := normalize(want, wantCM), normalize(got, gotCM)
			keys := func(m map[string]any) []string {
				var ks []string
				for k := range m {
					ks = append(ks, k)
				}
				return slices.Sorted(slices.Values(ks))
			}
			runChecks(t, []check{{"objects", keys(g), keys(w)}})
			for k, wo := range w {
				if gObj, ok := g[k]; ok && !reflect.DeepEqual(gObj, wo) {
					gj, _ := json.MarshalIndent(gObj, "", "  ")
					wj, _ := json.MarshalIndent(wo, "", "  ")
					t.Errorf("%s differs:\nchart:   %s\noverlay: %s", k, gj, wj)
				}
			}
		})
	}
}

// TestChartLint runs Helm's own linter (what `helm lint` runs: Chart.yaml,
// values against values.schema.json, templates render and parse, no
// deprecated APIs) on the default values and on every optional part.
func TestChartLint(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults":     nil,
		"cert-manager": chartValues(certMgr),
		"everything":   everything(),
	} {
		t.Run(name, func(t *testing.T) {
			l := lint.RunAll(manifests.ChartDir, values, namespace)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %v", m)
				}
			}
		})
	}
}

// everything turns on every optional part of the chart.
func everything() map[string]any {
	return map[string]any{
		"namespace":        map[string]any{"create": true},
		"image":            map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)},
		"webhooks":         map[string]any{"syncRules": true},
		"certificates":     map[string]any{"resyncInterval": "30s"},
		"policies":         map[string]any{"files": map[string]any{"no_nodeport.rego": "package portcullis.no_nodeport\n", "config.yaml": "policies: {}\n"}},
		"extraArgs":        []any{"--eval-timeout=500ms"},
		"networkPolicy":    map[string]any{"enabled": true},
		"serviceMonitor":   map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}},
		"prometheusRule":   map[string]any{"enabled": true},
		"grafanaDashboard": map[string]any{"enabled": true},
	}
}

// TestChartOptions: the optional parts render what their values say.
func TestChartOptions(t *testing.T) {
	out, err := manifests.RenderChart(manifests.ChartDir, name, namespace, everything())
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]map[string]any{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(out)), 4096)
	for {
		var o map[string]any
		if err := dec.Decode(&o); err != nil {
			break
		}
		md := o["metadata"].(map[string]any)
		objs[o["kind"].(string)+" "+md["name"].(string)] = o
	}
	var kinds []string
	for k := range objs {
		kinds = append(kinds, k)
	}
	for _, want := range []string{"ServiceMonitor portcullis", "PrometheusRule portcullis", "NetworkPolicy portcullis", "Service portcullis-metrics", "ConfigMap portcullis-dashboard"} {
		if objs[want] == nil {
			t.Errorf("no %s in %v", want, slices.Sorted(slices.Values(kinds)))
		}
	}
	r := decode(t, "everything", []byte(filterKinds(t, out, "Deployment", "ConfigMap")))
	d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
	c := d.Spec.Template.Spec.Containers[0]
	runChecks(t, []check{
		{"image by digest", c.Image, "ghcr.io/portcullis/portcullis@sha256:" + strings.Repeat("ab", 32)},
		{"extra args", c.Args[len(c.Args)-5:], []string{"--webhook-config-name=portcullis", "--cert-resync-interval=30s", "--sync-webhook-rules", "--policies=/etc/portcullis/policies", "--eval-timeout=500ms"}},
		{"policies mount", c.VolumeMounts[len(c.VolumeMounts)-1], corev1.VolumeMount{Name: "policies", MountPath: "/etc/portcullis/policies", ReadOnly: true}},
	})
	policiesCM := d.Spec.Template.Spec.Volumes[len(d.Spec.Template.Spec.Volumes)-1].ConfigMap.Name
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap", namespace, policiesCM)
	runChecks(t, []check{{"policies ConfigMap", cm.Data, map[string]string{"no_nodeport.rego": "package portcullis.no_nodeport\n", "config.yaml": "policies: {}\n"}}})

	// The dashboard is valid JSON, labelled for the Grafana sidecar.
	dash := objs["ConfigMap portcullis-dashboard"]
	runChecks(t, []check{{"dashboard label", dash["metadata"].(map[string]any)["labels"].(map[string]any)["grafana_dashboard"], "1"}})
	var board struct {
		UID    string           `json:"uid"`
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal([]byte(dash["data"].(map[string]any)["portcullis.json"].(string)), &board); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if board.UID != "portcullis" || len(board.Panels) < 8 {
		t.Errorf("dashboard uid %q with %d panels", board.UID, len(board.Panels))
	}
	// The ServiceMonitor selects the metrics Service by its labels and port.
	sm := objs["ServiceMonitor portcullis"]["spec"].(map[string]any)
	svc := objs["Service portcullis-metrics"]
	sel := sm["selector"].(map[string]any)["matchLabels"].(map[string]any)
	for k, v := range sel {
		if svc["metadata"].(map[string]any)["labels"].(map[string]any)[k] != v {
			t.Errorf("ServiceMonitor selects %s=%v; the metrics Service does not carry it", k, v)
		}
	}
}

// TestChartNetworkPolicy: ingress only to the server's named ports, egress
// only to the API server in self-signed mode and none with cert-manager.
func TestChartNetworkPolicy(t *testing.T) {
	ingress := `[{"ports":[{"port":"webhook","protocol":"TCP"},{"port":"health","protocol":"TCP"},{"port":"metrics","protocol":"TCP"}]}]`
	for mode, egress := range map[string]string{
		selfSigned: `[{"ports":[{"port":443,"protocol":"TCP"},{"port":6443,"protocol":"TCP"}],"to":[{"ipBlock":{"cidr":"10.0.0.1/32"}}]}]`,
		certMgr:    `[]`,
	} {
		t.Run(mode, func(t *testing.T) {
			out, err := manifests.RenderChart(manifests.ChartDir, name, namespace, map[string]any{
				"certificates":  map[string]any{"mode": mode},
				"networkPolicy": map[string]any{"enabled": true, "apiServerCIDRs": []any{"10.0.0.1/32"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			var np struct {
				Spec struct {
					PodSelector map[string]any  `json:"podSelector"`
					PolicyTypes []string        `json:"policyTypes"`
					Ingress     json.RawMessage `json:"ingress"`
					Egress      json.RawMessage `json:"egress"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(filterKinds(t, out, "NetworkPolicy")), &np); err != nil {
				t.Fatal(err)
			}
			runChecks(t, []check{
				{"pod selector", np.Spec.PodSelector, map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "portcullis", "app.kubernetes.io/component": "webhook"}}},
				{"policy types", np.Spec.PolicyTypes, []string{"Ingress", "Egress"}},
				{"ingress", string(np.Spec.Ingress), ingress},
				{"egress", string(np.Spec.Egress), egress},
			})
		})
	}
}

// filterKinds returns the documents of out whose kind is one of kinds.
func filterKinds(t *testing.T, out []byte, kinds ...string) string {
	t.Helper()
	var keep []string
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var tm struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(kinds, tm.Kind) {
			keep = append(keep, doc)
		}
	}
	return strings.Join(keep, "\n---\n")
}

// TestChartSchema: values.schema.json refuses what the templates cannot use.
func TestChartSchema(t *testing.T) {
	for name, tt := range map[string]struct {
		values map[string]any
		want   string
	}{
		"unknown mode": {map[string]any{"certificates": map[string]any{"mode": "vault"}}, "at '/certificates/mode': value must be one of 'self-signed', 'cert-manager'"},
		"typo":         {map[string]any{"replica": 2}, "additional properties 'replica' not allowed"},
		"bad digest":   {map[string]any{"image": map[string]any{"digest": "latest"}}, "at '/image/digest'"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := manifests.RenderChart(manifests.ChartDir, "portcullis", namespace, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestChartVersion: the chart's appVersion is VERSION, its version VERSION
// without the "v".
func TestChartVersion(t *testing.T) {
	b, err := os.ReadFile(manifests.ChartDir + "/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	v := releaseVersion(t)
	runChecks(t, []check{{"Chart.yaml version, appVersion", []string{c.Version, c.AppVersion}, []string{strings.TrimPrefix(v, "v"), v}}})
}

// TestChartBundles: bundles.* become the --bundle flags, the key, token and
// CA files mounted where the flags point, and egress for DNS and HTTPS.
func TestChartBundles(t *testing.T) {
	out, err := manifests.RenderChart(manifests.ChartDir, name, namespace, map[string]any{
		"certificates": map[string]any{"mode": certMgr},
		"bundles": map[string]any{
			"urls":            []any{"team=https://bundles.example/team.tar.gz", "oci://ghcr.io/acme/policies:v7"},
			"required":        true,
			"minDelay":        "30s",
			"maxDelay":        "2m",
			"verificationKey": map[string]any{"secretName": "bundle-key", "keyId": "release", "algorithm": "ES256", "scope": "write"},
			"tokenSecret":     "bundle-token",
			"caConfigMap":     "bundle-ca",
		},
		"networkPolicy": map[string]any{"enabled": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, "bundles", []byte(filterKinds(t, out, "Deployment")))
	d := get[*appsv1.Deployment](t, r, "Deployment", namespace, name)
	c := d.Spec.Template.Spec.Containers[0]
	i := slices.Index(c.Args, "--bundle=team=https://bundles.example/team.tar.gz")
	if i < 0 {
		t.Fatalf("no --bundle in %q", c.Args)
	}
	mode := int32(0o440)
	runChecks(t, []check{
		{"bundle args", c.Args[i:], []string{
			"--bundle=team=https://bundles.example/team.tar.gz", "--bundle=oci://ghcr.io/acme/policies:v7", "--bundle-required",
			"--bundle-min-delay=30s", "--bundle-max-delay=2m",
			"--bundle-verification-key=/etc/portcullis/bundle-key/key.pem", "--bundle-verification-key-id=release",
			"--bundle-verification-key-algorithm=ES256", "--bundle-verification-scope=write",
			"--bundle-token-file=/etc/portcullis/bundle-token/token", "--bundle-ca-file=/etc/portcullis/bundle-ca/ca.crt",
		}},
		{"mounts", c.VolumeMounts[len(c.VolumeMounts)-3:], []corev1.VolumeMount{
			{Name: "bundle-key", MountPath: "/etc/portcullis/bundle-key", ReadOnly: true},
			{Name: "bundle-token", MountPath: "/etc/portcullis/bundle-token", ReadOnly: true},
			{Name: "bundle-ca", MountPath: "/etc/portcullis/bundle-ca", ReadOnly: true},
		}},
		{"volumes", d.Spec.Template.Spec.Volumes[len(d.Spec.Template.Spec.Volumes)-3:], []corev1.Volume{
			{Name: "bundle-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "bundle-key", DefaultMode: &mode, Items: []corev1.KeyToPath{{Key: "key.pem", Path: "key.pem"}}}}},
			{Name: "bundle-token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "bundle-token", DefaultMode: &mode, Items: []corev1.KeyToPath{{Key: "token", Path: "token"}}}}},
			{Name: "bundle-ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "bundle-ca"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}}},
		}},
	})
	var np struct {
		Spec struct {
			Egress json.RawMessage `json:"egress"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(filterKinds(t, out, "NetworkPolicy")), &np); err != nil {
		t.Fatal(err)
	}
	runChecks(t, []check{{"egress", string(np.Spec.Egress), `[{"ports":[{"port":53,"protocol":"UDP"},{"port":53,"protocol":"TCP"},{"port":443,"protocol":"TCP"}]}]`}})

	withRule, err := manifests.RenderChart(manifests.ChartDir, name, namespace, map[string]any{
		"bundles":        map[string]any{"urls": []any{"oci://ghcr.io/acme/policies:v7"}},
		"prometheusRule": map[string]any{"enabled": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rule := filterKinds(t, withRule, "PrometheusRule"); !strings.Contains(rule, "alert: PortcullisBundleFailing\n          expr: max(portcullis_bundle_last_attempt_failed{namespace=\"portcullis-system\"}) by (bundle) == 1") {
		t.Errorf("no PortcullisBundleFailing alert:\n%s", rule)
	}

	if _, err := manifests.RenderChart(manifests.ChartDir, name, namespace, map[string]any{"bundles": map[string]any{"urls": []any{"http://bundles.example/a.tar.gz"}}}); err == nil || !strings.Contains(err.Error(), "at '/bundles/urls/0'") {
		t.Errorf("plain http URL: err = %v, want the schema to refuse /bundles/urls/0", err)
	}
}
