package report

import (
	"strings"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
)

// FuzzFieldPath feeds arbitrary field paths (policy output) and documents
// to the field locator and the YAML patcher: no panic, lines inside the
// document, and a patch that cannot be applied node by node falls back or
// fails with an error, never a panic.
func FuzzFieldPath(f *testing.F) {
	f.Add("spec.containers[0].image", "spec:\n  containers:\n    - image: x\n")
	f.Add(`metadata.annotations["a.b/c"]`, "metadata: {annotations: {a.b/c: x}}\n")
	f.Add("a[", "a: &x [1]\nb: *x\n")
	f.Fuzz(func(t *testing.T, field, text string) {
		if len(text) > 1<<16 {
			return
		}
		res := Result{Original: &Original{Text: []byte(text), Item: -1, TextLine: 1, JSON: []byte(`{}`)},
			Violations: []Violation{{Policy: "p", Field: field}}}
		res.locateFields()
		if l := res.Violations[0].Line; l < 0 || l > strings.Count(text, "\n")+1 {
			t.Fatalf("line %d outside the document", l)
		}
		if path, ok := parseFieldPath(field); ok {
			p := "/" + strings.Join(path, "/")
			res.Patch = []jsonpatch.Operation{{Operation: "add", Path: p, Value: "v"}, {Operation: "remove", Path: p}}
			_, _ = mutatedYAML(res)
		}
	})
}
