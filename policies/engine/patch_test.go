package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	// The RFC 6902 implementation the apiserver uses (v4 is the line
	// already in go.mod through the Kubernetes modules).
	jsonpatchapply "gopkg.in/evanphx/json-patch.v4"
)

// applyPatch applies ops to original with an independent implementation.
func applyPatch(t testing.TB, original []byte, ops any) []byte {
	t.Helper()
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatchapply.DecodePatch(raw)
	if err != nil {
		t.Fatalf("decode patch %s: %v", raw, err)
	}
	out, err := p.Apply(original)
	if err != nil {
		t.Fatalf("apply patch %s: %v", raw, err)
	}
	return out
}

// mutateWith applies edits to a copy of original and returns both encodings
// and the derived patch.
func mutateWith(t testing.TB, original string, edits []edit) (orig, mutated []byte, patch []byte) {
	t.Helper()
	obj, err := decodeObject([]byte(original))
	if err != nil {
		t.Fatal(err)
	}
	work := deepCopy(obj).(map[string]any)
	if _, err := applyEdits(work, edits); err != nil {
		t.Fatalf("apply edits: %v", err)
	}
	mutated, err = json.Marshal(work)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := diffPatch([]byte(original), mutated, obj)
	if err != nil {
		t.Fatal(err)
	}
	patch, err = json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(original), mutated, patch
}

func TestDiffPatch(t *testing.T) {
	t.Parallel()
	const base = `{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"app:1"},{"name":"proxy","image":"envoy:1"}]}}`
	tests := map[string]struct {
		original, edits, want string
	}{
		"sibling keys come out sorted": {
			original: base,
			edits: `[{"op": "merge", "path": ["metadata", "labels"], "value": {"zeta": "1", "alpha": "1", "mid": "1"}},
			         {"op": "set", "path": ["spec", "securityContext"], "value": {"runAsNonRoot": true}},
			         {"op": "set", "path": ["spec", "automountServiceAccountToken"], "value": false},
			         {"op": "set", "path": ["metadata", "annotations"], "value": {"b": "2"}}]`,
			want: `[{"op":"add","path":"/metadata/annotations","value":{"b":"2"}},` +
				`{"op":"add","path":"/metadata/labels/alpha","value":"1"},` +
				`{"op":"add","path":"/metadata/labels/mid","value":"1"},` +
				`{"op":"add","path":"/metadata/labels/zeta","value":"1"},` +
				`{"op":"add","path":"/spec/automountServiceAccountToken","value":false},` +
				`{"op":"add","path":"/spec/securityContext","value":{"runAsNonRoot":true}}]`,
		},
		"keys with slash and tilde are escaped": {
			original: base,
			edits:    `[{"op": "set", "path": ["metadata", "labels", "example.com/a~b"], "value": "1"}, {"op": "set", "path": ["metadata", "labels", "a/b"], "value": "2"}]`,
			want:     `[{"op":"add","path":"/metadata/labels/a~1b","value":"2"},{"op":"add","path":"/metadata/labels/example.com~1a~0b","value":"1"}]`,
		},
		"append adds at the end": {
			original: base,
			edits:    `[{"op": "append", "path": ["spec", "containers"], "value": [{"name": "agent"}, {"name": "agent2"}]}]`,
			want:     `[{"op":"add","path":"/spec/containers/2","value":{"name":"agent"}},{"op":"add","path":"/spec/containers/3","value":{"name":"agent2"}}]`,
		},
		"a field of an element": {
			original: base,
			edits:    `[{"op": "set", "path": ["spec", "containers", {"name": "proxy"}, "image"], "value": "envoy:2"}, {"op": "remove", "path": ["metadata", "labels", "app"]}]`,
			want:     `[{"op":"remove","path":"/metadata/labels/app"},{"op":"replace","path":"/spec/containers/1/image","value":"envoy:2"}]`,
		},
		"no change, no patch": {
			original: base,
			edits:    `[{"op": "default", "path": ["metadata", "name"], "value": "other"}]`,
			want:     `[]`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			edits, err := decodeEdits(decodeJSON(t, tc.edits))
			if err != nil {
				t.Fatal(err)
			}
			orig, mutated, patch := mutateWith(t, tc.original, edits)
			if string(patch) != tc.want && !(tc.want == "[]" && string(patch) == "null") {
				t.Errorf("patch:\n got %s\nwant %s", patch, tc.want)
			}
			if got, want := canonical(t, decodeJSON(t, string(applyPatch(t, orig, json.RawMessage(patch))))), canonical(t, decodeJSON(t, string(mutated))); got != want {
				t.Errorf("patched original:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// The same request always gets the same patch bytes, even though the diff
// library walks Go maps in random order.
func TestPatchDeterministic(t *testing.T) {
	t.Parallel()
	var labels, annotations []string
	for i := 0; i < 20; i++ {
		labels = append(labels, fmt.Sprintf(`"l%02d": "v"`, i))
		annotations = append(annotations, fmt.Sprintf(`"example.com/a%02d": "v"`, i))
	}
	body := `mutate contains {"op": "merge", "path": ["metadata", "labels"], "value": {` + strings.Join(labels, ", ") + `}}

mutate contains {"op": "merge", "path": ["metadata", "annotations"], "value": {` + strings.Join(annotations, ", ") + `}}

mutate contains {"op": "merge", "path": ["spec", "containers", {"name": c.name}, "securityContext"], "value": {
	"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
	"capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}} if {
	some c in input.request.object.spec.containers
}

mutate contains {"op": "prepend", "path": ["spec", "initContainers"], "value": [{"name": "init", "image": "init:1"}]}

mutate contains {"op": "append", "path": ["spec", "volumes"], "value": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}]}`
	reg := mustLoad(t, mapFS(map[string]string{"many/many.rego": mutating("many", body)}))
	obj := pod(map[string]any{"app": "web", "l05": "user"},
		container("a", "a:1", false), container("b", "b:1", false), container("c", "c:1", false))
	obj["spec"].(map[string]any)["volumes"] = []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}}
	req := podRequest(t, "default", obj)
	var first []byte
	for i := 0; i < 50; i++ {
		dec := evaluate(t, reg, Mutating, req)
		b, err := json.Marshal(dec.Patch)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b
			if got, want := canonical(t, decodeJSON(t, string(applyPatch(t, req.Object.Raw, dec.Patch)))), canonical(t, decodeJSON(t, string(dec.Object))); got != want {
				t.Fatalf("patch does not produce the mutated object:\n got %s\nwant %s", got, want)
			}
			if len(dec.Patch) < 20 {
				t.Fatalf("only %d operations: the test needs many siblings", len(dec.Patch))
			}
			continue
		}
		if string(b) != string(first) {
			t.Fatalf("run %d gave a different patch:\n%s\nfirst:\n%s", i, b, first)
		}
	}
}

// Generated objects and edits: every derived patch, applied by an
// independent RFC 6902 implementation, gives exactly the mutated object,
// whatever mix of array insertions, element edits and key changes.
func TestPatchAppliesProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2, 6902))
	for i := 0; i < 300; i++ {
		original := genPod(rng)
		edits := genEdits(rng, original)
		orig, err := json.Marshal(original)
		if err != nil {
			t.Fatal(err)
		}
		_, mutated, patch := mutateWith(t, string(orig), edits)
		got := applyPatch(t, orig, json.RawMessage(patch))
		if g, w := canonical(t, decodeJSON(t, string(got))), canonical(t, decodeJSON(t, string(mutated))); g != w {
			t.Fatalf("case %d: patch %s\napplied to %s\n got %s\nwant %s", i, patch, orig, g, w)
		}
		// Deterministic: the same diff again gives the same bytes.
		_, _, again := mutateWith(t, string(orig), edits)
		if string(again) != string(patch) {
			t.Fatalf("case %d: patch not deterministic:\n%s\n%s", i, patch, again)
		}
	}
}

func genPod(rng *rand.Rand) map[string]any {
	var containers []any
	for i := 0; i < 1+rng.IntN(4); i++ {
		c := map[string]any{"name": fmt.Sprintf("c%d", i), "image": fmt.Sprintf("img%d:1", i)}
		if rng.IntN(2) == 0 {
			c["args"] = []any{"--a", "--b"}
		}
		if rng.IntN(2) == 0 {
			c["env"] = []any{map[string]any{"name": "E1", "value": "1"}, map[string]any{"name": "E2", "value": "2"}}
		}
		containers = append(containers, c)
	}
	labels := map[string]any{}
	for i := 0; i < rng.IntN(4); i++ {
		labels[fmt.Sprintf("k%d", i)] = "v"
	}
	return map[string]any{
		"metadata": map[string]any{"name": "p", "labels": labels},
		"spec":     map[string]any{"containers": containers},
	}
}

// genEdits returns edits that apply in order to p (which it leaves as is):
// each is tried on a working copy, and selectors pick current names.
func genEdits(rng *rand.Rand, p map[string]any) []edit {
	work := deepCopy(p).(map[string]any)
	pick := func() string {
		containers := work["spec"].(map[string]any)["containers"].([]any)
		return containers[rng.IntN(len(containers))].(map[string]any)["name"].(string)
	}
	var edits []edit
	for i := 0; i < 1+rng.IntN(6); i++ {
		var e edit
		switch rng.IntN(12) {
		case 0:
			e = edit{op: opPrepend, path: []any{"spec", "containers"}, value: []any{map[string]any{"name": fmt.Sprintf("pre%d", i)}}}
		case 1:
			e = edit{op: opAppend, path: []any{"spec", "containers"}, value: []any{map[string]any{"name": fmt.Sprintf("post%d", i)}, map[string]any{"name": fmt.Sprintf("post%db", i)}}}
		case 2:
			e = edit{op: opSet, path: []any{"spec", "containers", selector{pick()}, "image"}, value: fmt.Sprintf("new%d", i)}
		case 3:
			e = edit{op: opMerge, path: []any{"spec", "containers", selector{pick()}, "securityContext"}, value: map[string]any{"runAsNonRoot": true, "capabilities": map[string]any{"drop": []any{"ALL"}}}}
		case 4:
			e = edit{op: opPrepend, path: []any{"spec", "containers", selector{pick()}, "env"}, value: []any{map[string]any{"name": "FIRST", "value": "x"}}}
		case 5:
			e = edit{op: opAppend, path: []any{"spec", "containers", selector{pick()}, "args"}, value: []any{fmt.Sprintf("--x%d", i)}}
		case 6:
			e = edit{op: opRemove, path: []any{"spec", "containers", selector{pick()}, "args"}}
		case 7:
			e = edit{op: opSet, path: []any{"metadata", "labels", fmt.Sprintf("k%d", rng.IntN(6))}, value: "changed"}
		case 8:
			e = edit{op: opRemove, path: []any{"metadata", "labels", fmt.Sprintf("k%d", rng.IntN(4))}}
		case 9:
			e = edit{op: opSet, path: []any{"spec", "containers", 0, "name"}, value: fmt.Sprintf("renamed%d", i)}
		case 10: // shrinks arrays: element removals in the diff
			e = edit{op: opSet, path: []any{"spec", "containers"}, value: []any{map[string]any{"name": "only"}}}
		case 11:
			e = edit{op: opSet, path: []any{"spec", "containers", selector{pick()}, "env"}, value: []any{map[string]any{"name": "E2", "value": "2"}}}
		}
		if _, err := applyEdit(work, e); err == nil {
			edits = append(edits, e)
		}
	}
	return edits
}

func TestSplitPointer(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"":                  nil,
		"/":                 nil,
		"/a":                {"a"},
		"/a/0/b":            {"a", "0", "b"},
		"/metadata/a~1b~0c": {"metadata", "a/b~c"},
		"/x/~01":            {"x", "~1"},
	}
	for in, want := range tests {
		if got := splitPointer(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitPointer(%q) = %q, want %q", in, got, want)
		}
	}
}
