package app

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzReadDocuments feeds arbitrary bytes to the CLI's manifest reader: it
// must never panic, every error must name the source, and every manifest
// must carry a kind.
func FuzzReadDocuments(f *testing.F) {
	for _, p := range []string{"testdata/manifests/mixed.yaml", "testdata/manifests/list.json", "testdata/manifests/broken.yaml", "testdata/manifests/nokind.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(aliasBomb))
	f.Add([]byte(strings.Repeat("[", 10000)))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := ReadDocuments("fuzz.yaml", bytes.NewReader(data))
		if err != nil && !strings.Contains(err.Error(), "fuzz.yaml") {
			t.Fatalf("error does not name the source: %v", err)
		}
		for _, m := range ms {
			if m.GVK.Kind == "" {
				t.Fatalf("manifest without kind: %+v", m)
			}
		}
	})
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
			_, err := ReadDocuments("hostile.yaml", strings.NewReader(doc))
			if err == nil {
				t.Fatal("expected an error")
			}
			if !strings.HasPrefix(err.Error(), "hostile.yaml: document 0: ") {
				t.Errorf("error does not name the document: %v", err)
			}
			// Not a timing assertion on the decision path: a guard that the
			// reader refuses instead of expanding (expansion takes minutes).
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
