package engine

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
)

// A later layer adds policies, replaces an earlier layer's policy of the same
// ID (with its tests and other files), and replaces a lib module at the same
// path; other lib modules are shared.
func TestLayersStack(t *testing.T) {
	t.Parallel()
	base := mapFS(map[string]string{
		"lib/helpers.rego":      "package portcullis.lib.helpers\n\nname := input.request.object.metadata.name\n",
		"lib/other.rego":        "package portcullis.lib.other\n\nx := 1\n",
		"a/a.rego":              validating("a", `deny contains {"msg": "base a"} if true`),
		"a/extra.rego":          "package portcullis.a\n\nhelper := 1\n",
		"a/a_test.rego":         "package portcullis.a_test\n\ntest_a if true\n",
		"b/b.rego":              validating("b", `deny contains {"msg": "base b"} if false`),
		"mutations/m/m.rego":    mutating("m", `mutate contains {"op": "set", "path": ["x"], "value": 1} if false`),
		"lib/helpers_test.rego": "package portcullis.lib.helpers_test\n\ntest_h if true\n",
	})
	top := mapFS(map[string]string{
		"lib/helpers.rego": "package portcullis.lib.helpers\n\nname := \"replaced\"\n",
		"a/a.rego":         validating("a", `deny contains {"msg": "top a"} if true`),
		"c/c.rego":         validating("c", `deny contains {"msg": sprintf("c %s", [data.portcullis.lib.helpers.name])} if true`),
	})
	src := Source{Layers: []Layer{{Name: "built-in", FS: base}, {Name: "mine", FS: top, Prefix: "mine"}}}
	reg, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range reg.Policies() {
		ids = append(ids, p.ID+"@"+p.File)
	}
	if want := []string{"a@mine/a/a.rego", "b@b/b.rego", "c@mine/c/c.rego", "m@mutations/m/m.rego"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("policies = %q, want %q", ids, want)
	}
	wantNotices := []string{
		`lib/helpers.rego from mine replaces the one from built-in`,
		`policy "a" from mine replaces the one from built-in`,
	}
	if !reflect.DeepEqual(reg.Notices, wantNotices) {
		t.Errorf("notices = %q, want %q", reg.Notices, wantNotices)
	}
	dec, err := New(reg, nil).Evaluate(context.Background(), Validating, request(t, "Pod", "pods", "", "default", "web", "CREATE", map[string]any{"metadata": map[string]any{"name": "web"}}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, v := range dec.Violations {
		msgs = append(msgs, v.Message)
	}
	if want := []string{"top a", "c replaced"}; !reflect.DeepEqual(msgs, want) {
		t.Errorf("violations = %q, want %q", msgs, want)
	}

	// With tests: the replaced policy's tests are gone with it; the top
	// layer's tests only when asked for.
	mods, _, err := Modules(src, func(i int) bool { return i == 0 })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range mods {
		names = append(names, name)
	}
	sort.Strings(names)
	want := []string{"b/b.rego", "lib/helpers_test.rego", "lib/other.rego", "mine/a/a.rego", "mine/c/c.rego", "mine/lib/helpers.rego", "mutations/m/m.rego"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("modules = %q\nwant %q", names, want)
	}
}

// Each layer's config document is merged in layer order and named in errors.
func TestLayerConfigNamed(t *testing.T) {
	t.Parallel()
	fsys := mapFS(map[string]string{"a/a.rego": "# METADATA\n# custom:\n#   kind: validating\n#   settings:\n#     level: string\npackage portcullis.a\n\ndeny contains {\"msg\": data.portcullis.config.policies.a.level} if true\n"})
	src := Source{
		Layers:      []Layer{{Name: "dir", FS: fsys, Prefix: "dir", Config: []byte("policies:\n  a:\n    level: one\n")}},
		ConfigFiles: []ConfigFile{{Name: "override.yaml", Data: []byte("policies:\n  a:\n    level: two\n")}},
	}
	reg, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Config()["policies"].(map[string]any)["a"].(map[string]any)["level"]; got != "two" {
		t.Errorf("level = %v, want two (--config over the layer's config.yaml)", got)
	}
	src.Layers[0].Config = []byte("policies:\n  a:\n    levle: one\n")
	_, err = Load(context.Background(), src)
	if want := `load policies: dir/config.yaml: policies.a.levle: unknown setting of policy "a" (did you mean "level"?)`; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// Configuration typos are load errors naming the file and the key path,
// with the closest known name.
func TestStrictConfig(t *testing.T) {
	t.Parallel()
	schema := "# METADATA\n# custom:\n#   kind: validating\n#   settings:\n#     level: string\n#     labels: array\n#     retries: integer\n" +
		"#     exemptions:\n#       namespaces: array\n#       usernames: array\n#     overrides:\n#       - namespaces: array\n#         strict: boolean\n" +
		"package portcullis.pod_security\n\ndeny contains {\"msg\": \"x\"} if false\n"
	fsys := mapFS(map[string]string{
		"pod_security/p.rego": schema,
		"free/free.rego":      validating("free", `deny contains {"msg": "x"} if false`),
	})
	tests := map[string]struct{ config, want string }{
		"top-level typo": {
			"polices:\n  pod_security: {}\n",
			`load policies: user.yaml: polices: unknown key (did you mean "policies"?)`,
		},
		"unknown policy": {
			"policies:\n  pod_securty:\n    level: baseline\n",
			`load policies: user.yaml: policies.pod_securty: no such policy (did you mean "pod_security"?)`,
		},
		"unknown policy, nothing close": {
			"policies:\n  zzzzzzzzzz: {}\n",
			`load policies: user.yaml: policies.zzzzzzzzzz: no such policy`,
		},
		"unknown setting": {
			"policies:\n  pod_security:\n    levle: baseline\n",
			`load policies: user.yaml: policies.pod_security.levle: unknown setting of policy "pod_security" (did you mean "level"?)`,
		},
		"nested unknown setting": {
			"policies:\n  pod_security:\n    exemptions:\n      namespace: [a]\n",
			`load policies: user.yaml: policies.pod_security.exemptions.namespace: unknown setting (did you mean "namespaces"?)`,
		},
		"array of objects": {
			"policies:\n  pod_security:\n    overrides:\n      - namespaces: [a]\n        strict: true\n      - namespaces: [b]\n        strikt: true\n",
			`load policies: user.yaml: policies.pod_security.overrides[1].strikt: unknown setting (did you mean "strict"?)`,
		},
		"wrong type": {
			"policies:\n  pod_security:\n    labels: app\n    retries: 1.5\n",
			"load policies: user.yaml: policies.pod_security.labels: must be an array, got a string\n" +
				"user.yaml: policies.pod_security.retries: must be an integer, got a number",
		},
		"common key typo": {
			"policies:\n  pod_security:\n    enforcment: warn\n",
			`load policies: user.yaml: policies.pod_security.enforcment: unknown setting of policy "pod_security" (did you mean "enforcement"?)`,
		},
		"undeclared settings of a policy without a schema are not checked": {
			"policies:\n  free:\n    anything: 1\n", "",
		},
		"null means unset": {
			"policies:\n  pod_security:\n    level: null\n", "",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(context.Background(), Source{Policies: fsys, ConfigFiles: []ConfigFile{{Name: "user.yaml", Data: []byte(tc.config)}}})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant  %s", err, tc.want)
			}
			if !errors.Is(err, ErrLoad) {
				t.Error("err does not wrap ErrLoad")
			}
		})
	}
}

func TestSettingsSchemaErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ settings, want string }{
		"unknown type": {
			"#   settings:\n#     level: strng\n",
			`load policies: a/a.rego:6: policy "a": METADATA custom.settings.level: type "strng": must be one of any, array, boolean, integer, number, object, string (did you mean "string"?)`,
		},
		"not a map": {
			"#   settings: [a]\n",
			`load policies: a/a.rego:5: policy "a": METADATA custom.settings: must be a map of setting name to type`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := "# METADATA\n# custom:\n#   kind: validating\n" + tc.settings + "package portcullis.a\n\ndeny contains {\"msg\": \"x\"} if false\n"
			_, err := Load(context.Background(), Source{Policies: mapFS(map[string]string{"a/a.rego": src})})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant  %s", err, tc.want)
			}
		})
	}
}

// Resource names that are not the request's plural lowercase resource are
// warned about, with the name meant.
func TestResourceWarnings(t *testing.T) {
	t.Parallel()
	src := "# METADATA\n# custom:\n#   kind: validating\n#   resources: [Service, pods, pods/ephemeralcontainers, deploymnets, Ingress, widgets, \"*\"]\npackage portcullis.a\n\ndeny contains {\"msg\": \"x\"} if false\n"
	reg := mustLoad(t, mapFS(map[string]string{"a/a.rego": src}))
	want := []string{
		`a/a.rego:5: policy "a": METADATA custom.resources "Ingress": resource names are plural and lowercase, as in the request's resource.resource: did you mean "ingresses"?`,
		`a/a.rego:5: policy "a": METADATA custom.resources "Service": resource names are plural and lowercase, as in the request's resource.resource: did you mean "services"?`,
		`a/a.rego:5: policy "a": METADATA custom.resources "deploymnets": not a built-in Kubernetes resource (fine for a custom resource's plural name): did you mean "deployments"?`,
		`a/a.rego:5: policy "a": METADATA custom.resources "widgets": not a built-in Kubernetes resource (fine for a custom resource's plural name)`,
	}
	if !reflect.DeepEqual(reg.Warnings, want) {
		t.Errorf("warnings =\n%q\nwant\n%q", reg.Warnings, want)
	}
}

func TestKindDidYouMean(t *testing.T) {
	t.Parallel()
	src := "# METADATA\n# custom:\n#   kind: validate\npackage portcullis.a\n\ndeny contains {\"msg\": \"x\"} if false\n"
	_, err := Load(context.Background(), Source{Policies: mapFS(map[string]string{"a/a.rego": src})})
	if want := `load policies: a/a.rego:4: policy "a": METADATA custom.kind "validate": must be validating or mutating (did you mean "validating"?)`; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
