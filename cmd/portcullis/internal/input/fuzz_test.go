package input

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// FuzzParse feeds arbitrary bytes to the reader: it must never panic,
// every problem must name the source, every object must carry a kind and a
// line inside the input, and whenever apimachinery's YAMLOrJSONDecoder (what
// kubectl reads with) decodes the whole input, the documents found here
// are the same values in the same order.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(aliasBomb))
	f.Add([]byte(strings.Repeat("[", 10000)))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"}}`))
	f.Add([]byte("{\"a\": 1}\n---\nb: 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, probs := Parse("fuzz.yaml", data)
		lines := strings.Count(string(data), "\n") + 1
		for _, p := range probs {
			if !strings.HasPrefix(p.Error(), "fuzz.yaml") {
				t.Fatalf("problem does not name the source: %v", p)
			}
		}
		for _, o := range objs {
			if o.GVK.Kind == "" || o.Line < 1 || o.Line > lines {
				t.Fatalf("object without kind or with line %d of %d: %+v", o.Line, lines, o.Position)
			}
		}
		want, ok := decodeAll(data)
		if !ok {
			return
		}
		var got []any
		for _, d := range split(data) {
			if d.err != nil {
				t.Fatalf("document error %v where the decoder read everything", d.err)
			}
			js, err := yaml.YAMLToJSON(d.text)
			if err != nil {
				return // the decoder is more lenient on some YAML edge cases
			}
			var v any
			if err := yaml.Unmarshal(js, &v); err != nil {
				t.Fatal(err)
			}
			if v != nil {
				got = append(got, v)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("documents differ from apimachinery's decoder:\n got %#v\nwant %#v", got, want)
		}
	})
}

// decodeAll reads data with apimachinery's decoder; ok is false when it
// fails anywhere or takes too many documents.
func decodeAll(data []byte) (vals []any, ok bool) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
	for i := 0; i < 1000; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return vals, true
		}
		if err != nil {
			return nil, false
		}
		if v != nil {
			js, err := yaml.Marshal(v)
			if err != nil {
				return nil, false
			}
			var norm any
			if yaml.Unmarshal(js, &norm) != nil {
				return nil, false
			}
			vals = append(vals, norm)
		}
	}
	return nil, false
}

// aliasBomb is the billion-laughs YAML of CVE-2019-11253.
const aliasBomb = `apiVersion: v1
kind: ConfigMap
metadata: {name: bomb}
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`

func TestHostileYAMLFailsFast(t *testing.T) {
	tests := map[string]string{
		"alias bomb":   aliasBomb,
		"deep nesting": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + strings.Repeat("[", 100000) + "\n",
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			objs, probs := Parse("hostile.yaml", []byte(doc))
			if len(objs) != 0 || len(probs) != 1 {
				t.Fatalf("want one problem, got %d objects, %v", len(objs), probs)
			}
			if !strings.HasPrefix(probs[0].Error(), "hostile.yaml:1: invalid YAML: ") {
				t.Errorf("problem does not name the document: %v", probs[0])
			}
			// Not a timing assertion on the decision path: a guard that the
			// reader refuses instead of expanding (expansion takes minutes).
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
