package input

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// describe renders objects and problems compactly for exact comparison.
func describe(objs []Object, probs []Problem) string {
	var b strings.Builder
	for _, o := range objs {
		fmt.Fprintf(&b, "%s %s/%s doc=%d item=%d line=%d\n", o.GVK.Kind, o.Namespace, o.Name, o.Doc, o.Item, o.Line)
	}
	for _, p := range probs {
		fmt.Fprintf(&b, "problem doc=%d skipped=%v %v\n", p.Doc, p.Skipped, p)
	}
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"YAML documents with comments and empty documents",
			"# header\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# only a comment\n---\n\n# lead\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\n",
			"ConfigMap /a doc=0 item=-1 line=3\nPod x/b doc=1 item=-1 line=11\n"},
		{"concatenated JSON objects",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"}}`,
			"ConfigMap /a doc=0 item=-1 line=1\nPod /b doc=1 item=-1 line=1\n"},
		{"JSON objects on lines",
			"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n\n{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"b\"}}\n",
			"ConfigMap /a doc=0 item=-1 line=1\nPod /b doc=1 item=-1 line=3\n"},
		{"one JSON object then YAML, as the decoder switches",
			"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n",
			"ConfigMap /a doc=0 item=-1 line=1\nPod /b doc=1 item=-1 line=3\n"},
		{"a broken JSON stream after two objects ends it",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}} {"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"}} {"kind": `,
			"ConfigMap /a doc=0 item=-1 line=1\nPod /b doc=1 item=-1 line=1\nproblem doc=2 skipped=false x.yaml:1: invalid JSON: unexpected EOF\n"},
		{"List items with their lines",
			"apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: a}\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: b}\n",
			"ConfigMap /a doc=0 item=0 line=4\nSecret /b doc=0 item=1 line=7\n"},
		{"bad separator, scalar, no kind, kustomization",
			"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n--- !oops\nhello\n---\nfoo: bar\n---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
			"Pod /a doc=0 item=-1 line=1\n" +
				"problem doc=1 skipped=false x.yaml:4: invalid YAML document separator: \"!oops\"\n" +
				"problem doc=2 skipped=false x.yaml:5: not a Kubernetes object (expected a mapping with apiVersion and kind)\n" +
				"problem doc=3 skipped=false x.yaml:7: not a Kubernetes object: no apiVersion or kind\n" +
				"problem doc=4 skipped=false x.yaml:9: not a Kubernetes object: a Kustomization; render it with -k .\n"},
		{"broken YAML at its source line",
			"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: [\n",
			"Pod /a doc=0 item=-1 line=1\nproblem doc=1 skipped=false x.yaml:5: invalid YAML: yaml: line 7: did not find expected node content\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, probs := Parse("x.yaml", []byte(tt.in))
			if got := describe(objs, probs); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestReaderWalksAndSkips(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"app.yaml":                 "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
		"chart/Chart.yaml":         "apiVersion: v2\nname: c\n",
		"chart/templates/d.yaml":   "metadata:\n  name: {{ .Name }}\n  x: [\n",
		"kustomization.yaml":       "resources: [app.yaml]\n",
		"notes.txt":                "not read",
		".github/workflows/ci.yml": "on: push\n",
		"sub/b.json":               `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rd := &Reader{Recursive: true, Stdin: strings.NewReader("apiVersion: v1\nkind: Pod\nmetadata: {name: s}\n")}
	in, err := rd.Read(context.Background(), []Spec{{Path: dir}, {Path: "-"}, {Path: "-"}, {Path: filepath.Join(dir, "chart/Chart.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(describe(in.Objects, in.Problems), dir, "D")
	want := "Pod /a doc=0 item=-1 line=1\nConfigMap /b doc=0 item=-1 line=1\nPod /s doc=0 item=-1 line=1\n" +
		"problem doc=0 skipped=true D/chart/Chart.yaml:1: not a Kubernetes object: missing apiVersion or kind\n" +
		"problem doc=0 skipped=true D/chart/templates/d.yaml:1: invalid YAML: yaml: line 3: did not find expected node content\n" +
		"problem doc=0 skipped=true D/kustomization.yaml: not a Kubernetes object: a kustomization; render it with -k D\n" +
		"problem doc=0 skipped=false -: stdin given more than once\n" +
		"problem doc=0 skipped=false D/chart/Chart.yaml:1: not a Kubernetes object: missing apiVersion or kind\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	rd = &Reader{Recursive: false}
	in, err = rd.Read(context.Background(), []Spec{{Path: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Objects) != 1 || in.Objects[0].Name != "a" {
		t.Errorf("-R=false read %s", describe(in.Objects, in.Problems))
	}
}

func TestReaderLimit(t *testing.T) {
	rd := &Reader{MaxBytes: 100, Stdin: strings.NewReader(strings.Repeat("x", 101))}
	_, err := rd.Read(context.Background(), []Spec{{Path: "-"}})
	if !errors.Is(err, ErrTooLarge) || err.Error() != "-: input too large: the input passes the limit of 100 bytes in total (--max-input-bytes)" {
		t.Errorf("err = %v", err)
	}
	rd = &Reader{MaxBytes: 100, Stdin: strings.NewReader(strings.Repeat("#", 100))}
	if _, err := rd.Read(context.Background(), []Spec{{Path: "-"}}); err != nil {
		t.Errorf("exactly the limit: %v", err)
	}
}

func TestKustomize(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"base/kustomization.yaml":   "resources: [pod.yaml]\n",
		"base/pod.yaml":             "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n",
		"prod/kustomization.yaml":   "namespace: prod\nnamePrefix: prod-\nresources: [../base]\n",
		"broken/kustomization.yaml": "resources: [missing.yaml]\n",
	} {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rd := &Reader{}
	in, err := rd.Read(context.Background(), []Spec{{Path: filepath.Join(dir, "prod"), Kustomize: true}, {Path: filepath.Join(dir, "broken"), Kustomize: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(in.Objects, nil); got != "Pod prod/prod-web doc=0 item=-1 line=0\n" {
		t.Errorf("objects: %s", got)
	}
	if len(in.Problems) != 1 || !strings.HasPrefix(in.Problems[0].Err.Error(), "kustomize: ") {
		t.Errorf("problems: %v", in.Problems)
	}
}

func TestCheckSchema(t *testing.T) {
	tests := []struct {
		name, in string
		checked  bool
		want     string
	}{
		{"valid", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x}]}\n", true, ""},
		{"data as a list", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: [a]\n", true, "data: expected map[string]string, got array"},
		{"containers as a string", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: nginx}\n", true, "spec.containers: expected []v1.Container, got string"},
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replica: 3}\n", true, `unknown field "spec.replica"`},
		{"duplicate key at its line", "\n\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n", true, `duplicate key: line 7: key "name" already set in map`},
		{"duplicate JSON field", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"}}`, true, `duplicate field "metadata.name"`},
		{"custom resource", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\nspec: {x: 1}\n", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, probs := Parse("x.yaml", []byte(tt.in))
			if len(objs) != 1 || len(probs) != 0 {
				t.Fatalf("parse: %s", describe(objs, probs))
			}
			res := objs[0].CheckSchema(nil)
			if res.Checked != tt.checked || strings.Join(res.Errors, "; ") != tt.want {
				t.Errorf("CheckSchema = %+v, want checked=%v %q", res, tt.checked, tt.want)
			}
		})
	}
}

func TestCheckSchemaAgainstCRD(t *testing.T) {
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Thing, plural: things}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, maximum: 10}
                free: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
`
	tests := []struct{ name, obj, want string }{
		{"valid", "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: a}\nspec: {size: 3, free: {x: 1}}\n", ""},
		{"wrong type, no value quoted", "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: a}\nspec: {size: \"SECRET\"}\n", "spec.size must be of type integer"},
		{"too big and unknown", "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: a}\nspec: {size: 11, color: red}\n", `spec.size should be less than or equal to 10; unknown field "spec.color"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, probs := Parse("x.yaml", []byte(crd+tt.obj))
			if len(objs) != 2 || len(probs) != 0 {
				t.Fatalf("parse: %s", describe(objs, probs))
			}
			res := objs[1].CheckSchema(LearnCRDs(objs))
			if !res.Checked || strings.Join(res.Errors, "; ") != tt.want {
				t.Errorf("CheckSchema = %+v, want %q", res, tt.want)
			}
			if res := objs[1].CheckSchema(nil); res.Checked {
				t.Errorf("checked without its CRD: %+v", res)
			}
		})
	}
}
