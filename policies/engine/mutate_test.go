package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// decodeJSON decodes like OPA's result decoding and the engine's object
// decoding do: numbers stay json.Number.
func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// canonical re-encodes JSON with sorted keys and plain numbers.
func canonical(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestApplyEdits(t *testing.T) {
	t.Parallel()
	const twoContainers = `{"spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:1"}]}}`
	tests := map[string]struct {
		object, edits, want string
		changed             bool
	}{
		// set
		"set creates missing objects on the way": {
			object: `{}`, edits: `[{"op": "set", "path": ["spec", "securityContext", "runAsUser"], "value": 1000}]`,
			want: `{"spec": {"securityContext": {"runAsUser": 1000}}}`, changed: true,
		},
		"set overrides": {
			object: `{"spec": {"x": 1}}`, edits: `[{"op": "set", "path": ["spec", "x"], "value": 2}]`,
			want: `{"spec": {"x": 2}}`, changed: true,
		},
		"set to the same value is no change (numbers of either source)": {
			object: `{"spec": {"x": 1.0, "o": {"a": [1, "b"]}}}`,
			edits:  `[{"op": "set", "path": ["spec", "x"], "value": 1}, {"op": "set", "path": ["spec", "o"], "value": {"a": [1.0, "b"]}}]`,
			want:   `{"spec": {"x": 1, "o": {"a": [1, "b"]}}}`, changed: false,
		},
		"set replaces null": {
			object: `{"spec": null}`, edits: `[{"op": "set", "path": ["spec", "x"], "value": true}]`,
			want: `{"spec": {"x": true}}`, changed: true,
		},
		"set at an index": {
			object: twoContainers, edits: `[{"op": "set", "path": ["spec", "containers", 1, "image"], "value": "envoy:2"}]`,
			want: `{"spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:2"}]}}`, changed: true,
		},
		"set an array element itself": {
			object: `{"args": ["a", "b"]}`, edits: `[{"op": "set", "path": ["args", 0], "value": "z"}]`,
			want: `{"args": ["z", "b"]}`, changed: true,
		},
		// default
		"default sets an absent value": {
			object: `{"spec": {}}`, edits: `[{"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true}]`,
			want: `{"spec": {"securityContext": {"runAsNonRoot": true}}}`, changed: true,
		},
		"default never overrides the user, not even false": {
			object: `{"spec": {"securityContext": {"runAsNonRoot": false}}}`,
			edits:  `[{"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true}]`,
			want:   `{"spec": {"securityContext": {"runAsNonRoot": false}}}`, changed: false,
		},
		"default never overrides the user, not even 0": {
			object: `{"spec": {"securityContext": {"runAsUser": 0}}}`,
			edits:  `[{"op": "default", "path": ["spec", "securityContext", "runAsUser"], "value": 1000}]`,
			want:   `{"spec": {"securityContext": {"runAsUser": 0}}}`, changed: false,
		},
		"default never overrides the user, not even an empty string": {
			object: `{"metadata": {"annotations": {"a": ""}}}`,
			edits:  `[{"op": "default", "path": ["metadata", "annotations", "a"], "value": "x"}]`,
			want:   `{"metadata": {"annotations": {"a": ""}}}`, changed: false,
		},
		"default replaces null": {
			object: `{"spec": {"x": null}}`, edits: `[{"op": "default", "path": ["spec", "x"], "value": 1}]`,
			want: `{"spec": {"x": 1}}`, changed: true,
		},
		"default on an array element keeps it": {
			object: `{"args": ["a"]}`, edits: `[{"op": "default", "path": ["args", 0], "value": "z"}]`,
			want: `{"args": ["a"]}`, changed: false,
		},
		// merge
		"merge adds missing keys; keys already set win": {
			object: `{"metadata": {"labels": {"app": "web", "tier": "user"}}}`,
			edits:  `[{"op": "merge", "path": ["metadata", "labels"], "value": {"tier": "default", "managed": "yes"}}]`,
			want:   `{"metadata": {"labels": {"app": "web", "tier": "user", "managed": "yes"}}}`, changed: true,
		},
		"merge is deep": {
			object: `{"spec": {"securityContext": {"seccompProfile": {"localhostProfile": "p"}, "runAsUser": 5}}}`,
			edits:  `[{"op": "merge", "path": ["spec", "securityContext"], "value": {"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "q"}, "runAsUser": 1000, "runAsNonRoot": true}}]`,
			want:   `{"spec": {"securityContext": {"seccompProfile": {"localhostProfile": "p", "type": "RuntimeDefault"}, "runAsUser": 5, "runAsNonRoot": true}}}`, changed: true,
		},
		"merge of everything present is no change": {
			object: `{"metadata": {"labels": {"a": "1"}}}`, edits: `[{"op": "merge", "path": ["metadata", "labels"], "value": {"a": "2"}}]`,
			want: `{"metadata": {"labels": {"a": "1"}}}`, changed: false,
		},
		"merge creates an absent object": {
			object: `{"metadata": {}}`, edits: `[{"op": "merge", "path": ["metadata", "annotations"], "value": {"a": "1"}}]`,
			want: `{"metadata": {"annotations": {"a": "1"}}}`, changed: true,
		},
		"merge into a null object": {
			object: `{"metadata": {"annotations": null}}`, edits: `[{"op": "merge", "path": ["metadata", "annotations"], "value": {"a": "1"}}]`,
			want: `{"metadata": {"annotations": {"a": "1"}}}`, changed: true,
		},
		"merge into an array element": {
			object: twoContainers, edits: `[{"op": "merge", "path": ["spec", "containers", 0], "value": {"image": "other", "imagePullPolicy": "Always"}}]`,
			want: `{"spec": {"containers": [{"name": "app", "image": "app:1", "imagePullPolicy": "Always"}, {"name": "proxy", "image": "envoy:1"}]}}`, changed: true,
		},
		// append / prepend
		"append to an existing array": {
			object: twoContainers, edits: `[{"op": "append", "path": ["spec", "containers"], "value": [{"name": "agent", "image": "agent:1"}]}]`,
			want: `{"spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:1"}, {"name": "agent", "image": "agent:1"}]}}`, changed: true,
		},
		"append creates an absent array": {
			object: `{"spec": {}}`, edits: `[{"op": "append", "path": ["spec", "volumes"], "value": [{"name": "v", "emptyDir": {}}]}]`,
			want: `{"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}`, changed: true,
		},
		"append to a null array": {
			object: `{"spec": {"volumes": null}}`, edits: `[{"op": "append", "path": ["spec", "volumes"], "value": [{"name": "v"}]}]`,
			want: `{"spec": {"volumes": [{"name": "v"}]}}`, changed: true,
		},
		"append skips names already present (never a duplicate sidecar)": {
			object: twoContainers,
			edits:  `[{"op": "append", "path": ["spec", "containers"], "value": [{"name": "proxy", "image": "envoy:2"}, {"name": "agent", "image": "agent:1"}]}]`,
			want:   `{"spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:1"}, {"name": "agent", "image": "agent:1"}]}}`, changed: true,
		},
		"append of only present names is no change": {
			object: twoContainers, edits: `[{"op": "append", "path": ["spec", "containers"], "value": [{"name": "app", "image": "other"}]}]`,
			want: twoContainers, changed: false,
		},
		"append skips a name repeated in its own value": {
			object: `{"v": []}`, edits: `[{"op": "append", "path": ["v"], "value": [{"name": "a", "n": 1}, {"name": "a", "n": 2}]}]`,
			want: `{"v": [{"name": "a", "n": 1}]}`, changed: true,
		},
		"append of unnamed elements always appends": {
			object: `{"args": ["--a"]}`, edits: `[{"op": "append", "path": ["args"], "value": ["--a", "--b"]}]`,
			want: `{"args": ["--a", "--a", "--b"]}`, changed: true,
		},
		"prepend keeps the given order, in front": {
			object: twoContainers, edits: `[{"op": "prepend", "path": ["spec", "containers"], "value": [{"name": "init-a"}, {"name": "app"}, {"name": "init-b"}]}]`,
			want: `{"spec": {"containers": [{"name": "init-a"}, {"name": "init-b"}, {"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:1"}]}}`, changed: true,
		},
		"prepend creates an absent array": {
			object: `{}`, edits: `[{"op": "prepend", "path": ["spec", "initContainers"], "value": [{"name": "i"}]}]`,
			want: `{"spec": {"initContainers": [{"name": "i"}]}}`, changed: true,
		},
		// remove
		"remove a key": {
			object: `{"metadata": {"annotations": {"a": "1", "b": "2"}}}`, edits: `[{"op": "remove", "path": ["metadata", "annotations", "a"]}]`,
			want: `{"metadata": {"annotations": {"b": "2"}}}`, changed: true,
		},
		"remove an absent key is no change": {
			object: `{"metadata": {}}`, edits: `[{"op": "remove", "path": ["metadata", "annotations"]}]`,
			want: `{"metadata": {}}`, changed: false,
		},
		"remove through a missing path is no change (nothing created)": {
			object: `{}`, edits: `[{"op": "remove", "path": ["spec", "containers", {"name": "x"}, "image"]}]`,
			want: `{}`, changed: false,
		},
		"remove through a selector matching nothing is no change": {
			object: twoContainers, edits: `[{"op": "remove", "path": ["spec", "containers", {"name": "nope"}, "image"]}]`,
			want: twoContainers, changed: false,
		},
		"remove an out-of-range element is no change": {
			object: `{"a": [1]}`, edits: `[{"op": "remove", "path": ["a", 3]}]`,
			want: `{"a": [1]}`, changed: false,
		},
		"remove a key of a selected element": {
			object: `{"spec": {"containers": [{"name": "app", "image": "app:1", "command": ["sh"]}]}}`,
			edits:  `[{"op": "remove", "path": ["spec", "containers", {"name": "app"}, "command"]}]`,
			want:   `{"spec": {"containers": [{"name": "app", "image": "app:1"}]}}`, changed: true,
		},
		// selectors
		"selector by name": {
			object: twoContainers, edits: `[{"op": "set", "path": ["spec", "containers", {"name": "proxy"}, "image"], "value": "envoy:2"}]`,
			want: `{"spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:2"}]}}`, changed: true,
		},
		"selector stays right after a prepend shifted the elements": {
			object: twoContainers,
			edits: `[{"op": "prepend", "path": ["spec", "containers"], "value": [{"name": "first"}]},
			         {"op": "default", "path": ["spec", "containers", {"name": "proxy"}, "securityContext", "runAsNonRoot"], "value": true}]`,
			want: `{"spec": {"containers": [{"name": "first"}, {"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:1", "securityContext": {"runAsNonRoot": true}}]}}`, changed: true,
		},
		"selector into an element appended by an earlier edit": {
			object: `{"spec": {"containers": [{"name": "app"}]}}`,
			edits: `[{"op": "append", "path": ["spec", "containers"], "value": [{"name": "agent"}]},
			         {"op": "append", "path": ["spec", "containers", {"name": "agent"}, "volumeMounts"], "value": [{"name": "logs", "mountPath": "/logs"}]}]`,
			want: `{"spec": {"containers": [{"name": "app"}, {"name": "agent", "volumeMounts": [{"name": "logs", "mountPath": "/logs"}]}]}}`, changed: true,
		},
		"keys with slashes and tildes are plain keys": {
			object: `{"metadata": {}}`, edits: `[{"op": "set", "path": ["metadata", "annotations", "example.com/a~b"], "value": "1"}]`,
			want: `{"metadata": {"annotations": {"example.com/a~b": "1"}}}`, changed: true,
		},
		"several edits, partly no-ops": {
			object: `{"spec": {"securityContext": {"runAsUser": 7}}}`,
			edits: `[{"op": "default", "path": ["spec", "securityContext", "runAsUser"], "value": 1000},
			         {"op": "default", "path": ["spec", "securityContext", "runAsGroup"], "value": 1000}]`,
			want: `{"spec": {"securityContext": {"runAsUser": 7, "runAsGroup": 1000}}}`, changed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			obj := decodeJSON(t, tc.object).(map[string]any)
			edits, err := decodeEdits(decodeJSON(t, tc.edits))
			if err != nil {
				t.Fatalf("decode edits: %v", err)
			}
			changed, err := applyEdits(obj, edits)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			if got, want := canonical(t, obj), canonical(t, decodeJSON(t, tc.want)); got != want {
				t.Errorf("object:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// Applied values are copies: a later edit of the object never changes the
// policy's value, which may be shared by other edits.
func TestApplyEditsCopiesValues(t *testing.T) {
	t.Parallel()
	edits, err := decodeEdits(decodeJSON(t, `[{"op": "set", "path": ["a"], "value": {"x": 1}}, {"op": "set", "path": ["a", "x"], "value": 2}]`))
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{}
	if _, err := applyEdits(obj, edits); err != nil {
		t.Fatal(err)
	}
	if got := canonical(t, edits[0].value); got != `{"x":1}` {
		t.Errorf("the first edit's value was changed to %s", got)
	}
}

func TestApplyEditsErrors(t *testing.T) {
	t.Parallel()
	const pod = `{"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}`
	tests := map[string]struct{ edits, want string }{
		"step through a scalar": {
			edits: `[{"op": "set", "path": ["metadata", "name", "x"], "value": 1}]`,
			want:  `invalid edit: edit 0 (set /metadata/name/x): cannot walk into string`,
		},
		"selector matching nothing": {
			edits: `[{"op": "set", "path": ["spec", "containers", {"name": "nope"}, "image"], "value": "x"}]`,
			want:  `invalid edit: edit 0 (set /spec/containers/[name=nope]/image): no element named "nope"`,
		},
		"selector as the last step matching nothing": {
			edits: `[{"op": "merge", "path": ["spec", "containers", {"name": "nope"}], "value": {"a": 1}}]`,
			want:  `invalid edit: edit 0 (merge /spec/containers/[name=nope]): no element named "nope"`,
		},
		"selector on an absent array": {
			edits: `[{"op": "default", "path": ["spec", "initContainers", {"name": "app"}, "image"], "value": "x"}]`,
			want:  `invalid edit: edit 0 (default /spec/initContainers/[name=app]/image): "initContainers" is missing: cannot select {app} in it`,
		},
		"index on an absent array": {
			edits: `[{"op": "set", "path": ["spec", "volumes", 0, "name"], "value": "x"}]`,
			want:  `invalid edit: edit 0 (set /spec/volumes/0/name): "volumes" is missing: cannot select 0 in it`,
		},
		"index out of range": {
			edits: `[{"op": "set", "path": ["spec", "containers", 3, "image"], "value": "x"}]`,
			want:  `invalid edit: edit 0 (set /spec/containers/3/image): index 3 out of range (length 1)`,
		},
		"selector on an object": {
			edits: `[{"op": "set", "path": ["spec", {"name": "app"}, "image"], "value": "x"}]`,
			want:  `invalid edit: edit 0 (set /spec/[name=app]/image): cannot index an object with {app}`,
		},
		"index on an object": {
			edits: `[{"op": "set", "path": ["metadata", 0], "value": "x"}]`,
			want:  `invalid edit: edit 0 (set /metadata/0): cannot index an object with 0`,
		},
		"key on an array": {
			edits: `[{"op": "set", "path": ["spec", "containers", "app", "image"], "value": "x"}]`,
			want:  `invalid edit: edit 0 (set /spec/containers/app/image): cannot index an array with "app"`,
		},
		"append to an object": {
			edits: `[{"op": "append", "path": ["metadata"], "value": [1]}]`,
			want:  `invalid edit: edit 0 (append /metadata): cannot append to map[string]interface {}`,
		},
		"prepend to a string": {
			edits: `[{"op": "prepend", "path": ["metadata", "name"], "value": [1]}]`,
			want:  `invalid edit: edit 0 (prepend /metadata/name): cannot prepend to string`,
		},
		"append under an array index": {
			edits: `[{"op": "append", "path": ["spec", "containers", 0], "value": [1]}]`,
			want:  `invalid edit: edit 0 (append /spec/containers/0): append needs an array under an object key`,
		},
		"merge into a scalar": {
			edits: `[{"op": "merge", "path": ["metadata", "name"], "value": {"a": 1}}]`,
			want:  `invalid edit: edit 0 (merge /metadata/name): cannot merge an object into string`,
		},
		"remove an array element": {
			edits: `[{"op": "remove", "path": ["spec", "containers", {"name": "app"}]}]`,
			want:  `invalid edit: edit 0 (remove /spec/containers/[name=app]): removing array elements is not supported; remove the array's key or set it`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			edits, err := decodeEdits(decodeJSON(t, tc.edits))
			if err != nil {
				t.Fatalf("decode edits: %v", err)
			}
			_, err = applyEdits(decodeJSON(t, pod).(map[string]any), edits)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
			if !errors.Is(err, errEdit) {
				t.Errorf("err does not wrap errEdit")
			}
		})
	}
}

func TestDecodeEditsErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ edits, want string }{
		"not a set":          {`{"op": "set"}`, `invalid edit: mutate must be a set of edits, got map[string]interface {}`},
		"entry not object":   {`["set"]`, `invalid edit: mutate entry 0 is not an object`},
		"unknown op":         {`[{"op": "replace", "path": ["a"], "value": 1}]`, `invalid edit: mutate entry 0: unknown op "replace"`},
		"missing op":         {`[{"path": ["a"], "value": 1}]`, `invalid edit: mutate entry 0: unknown op ""`},
		"empty path":         {`[{"op": "set", "path": [], "value": 1}]`, `invalid edit: mutate entry 0 (set): path must be a non-empty array`},
		"string path":        {`[{"op": "set", "path": "/a/b", "value": 1}]`, `invalid edit: mutate entry 0 (set): path must be a non-empty array`},
		"missing value":      {`[{"op": "default", "path": ["a"]}]`, `invalid edit: mutate entry 0 (default /a): value is required`},
		"append non-array":   {`[{"op": "append", "path": ["a"], "value": {"name": "x"}}]`, `invalid edit: mutate entry 0 (append /a): value must be an array`},
		"prepend non-array":  {`[{"op": "prepend", "path": ["a"], "value": "x"}]`, `invalid edit: mutate entry 0 (prepend /a): value must be an array`},
		"merge non-object":   {`[{"op": "merge", "path": ["a"], "value": [1]}]`, `invalid edit: mutate entry 0 (merge /a): value must be an object`},
		"negative index":     {`[{"op": "set", "path": ["a", -1], "value": 1}]`, `invalid edit: mutate entry 0 (set): path step 1: index -1 is not a non-negative integer`},
		"fractional index":   {`[{"op": "set", "path": ["a", 1.5], "value": 1}]`, `invalid edit: mutate entry 0 (set): path step 1: index 1.5 is not a non-negative integer`},
		"huge index":         {`[{"op": "set", "path": ["a", 99999999999], "value": 1}]`, `invalid edit: mutate entry 0 (set): path step 1: index 99999999999 is not a non-negative integer`},
		"selector extra key": {`[{"op": "set", "path": ["a", {"name": "x", "image": "y"}], "value": 1}]`, `invalid edit: mutate entry 0 (set): path step 1: a selector must be {"name": "<name>"}`},
		"selector non-name":  {`[{"op": "set", "path": ["a", {"name": 3}], "value": 1}]`, `invalid edit: mutate entry 0 (set): path step 1: a selector must be {"name": "<name>"}`},
		"bool step":          {`[{"op": "set", "path": ["a", true], "value": 1}]`, `invalid edit: mutate entry 0 (set): path step 1: unsupported step of type bool`},
		"second entry":       {`[{"op": "set", "path": ["a"], "value": 1}, {"op": "nope"}]`, `invalid edit: mutate entry 1: unknown op "nope"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeEdits(decodeJSON(t, tc.edits))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
}

// End to end through Rego: the failure modes of a policy whose edits cannot
// be applied; its edit independent of the failed one (no path a prefix of
// the other's) is kept.
func TestMutateUnresolvableEdit(t *testing.T) {
	t.Parallel()
	const body = `mutate contains {"op": "set", "path": ["metadata", "labels", "ok"], "value": "yes"}

mutate contains {"op": "set", "path": ["spec", "containers", {"name": "nope"}, "image"], "value": "x"}`
	tests := map[string]struct {
		config     string
		allowed    bool
		violations []Violation
		warnings   []string
		mode       FailureMode
	}{
		"default failure mode (allow): warning, the independent edit kept": {
			allowed:  true,
			warnings: []string{"broken: policy asked for an edit that cannot be applied; admitted by its failure mode (allow)"},
			mode:     FailAllow,
		},
		"failure mode deny": {
			config:     "policies:\n  broken:\n    failure_mode: deny\n",
			violations: []Violation{{Policy: "broken", Enforcement: EnforceDeny, Message: "policy asked for an edit that cannot be applied; denied by its failure mode (deny)"}},
			mode:       FailDeny,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var configs []string
			if tc.config != "" {
				configs = append(configs, tc.config)
			}
			reg := mustLoad(t, mapFS(map[string]string{"broken/broken.rego": mutating("broken", body)}), configs...)
			obs := &recorder{}
			dec, err := New(reg, obs).Evaluate(context.Background(), Mutating, podRequest(t, "default", pod(nil, container("app", "a", false))), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed != tc.allowed {
				t.Errorf("Allowed = %v, want %v", dec.Allowed, tc.allowed)
			}
			if !reflect.DeepEqual(dec.Violations, tc.violations) {
				t.Errorf("violations = %+v\nwant %+v", dec.Violations, tc.violations)
			}
			if !reflect.DeepEqual(dec.Warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", dec.Warnings, tc.warnings)
			}
			if len(dec.Patch) != 1 || dec.Patch[0].Operation != "add" || dec.Patch[0].Path != "/metadata/labels" {
				t.Errorf("patch %v, want the independent edit only (add /metadata/labels)", dec.Patch)
			}
			if len(dec.Errors) != 1 || dec.Errors[0].FailureMode != tc.mode || dec.Errors[0].TimedOut {
				t.Fatalf("errors = %+v", dec.Errors)
			}
			const wantErr = `invalid edit: edit 1 (set /spec/containers/[name=nope]/image): no element named "nope"`
			if got := dec.Errors[0].Err.Error(); got != wantErr {
				t.Errorf("error = %q, want %q", got, wantErr)
			}
			if want := []string{"mutating/broken/" + OutcomeError}; !reflect.DeepEqual(obs.seen, want) {
				t.Errorf("observed %q, want %q", obs.seen, want)
			}
		})
	}
}

// Mutating policies run in ID order, each on the object the ones before it
// left; a failing policy in between keeps only its edits independent of the
// failed one (here labels.broken, beside metadata.name).
func TestMutateSequential(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{
		"a_sidecar/a.rego": mutating("a_sidecar", `mutate contains {"op": "append", "path": ["spec", "containers"], "value": [{"name": "agent", "image": "agent:1"}]}`),
		"b_broken/b.rego": mutating("b_broken", `mutate contains {"op": "set", "path": ["metadata", "labels", "broken"], "value": "yes"}

mutate contains {"op": "set", "path": ["metadata", "name", "x"], "value": 1}`),
		"c_count/c.rego": mutating("c_count", `mutate contains {"op": "set", "path": ["metadata", "annotations", "containers"], "value": names} if {
	names := concat(",", [c.name | some c in input.request.object.spec.containers])
}

mutate contains {"op": "set", "path": ["metadata", "annotations", "broken"], "value": "seen"} if {
	input.request.object.metadata.labels.broken
}`),
	}))
	obs := &recorder{}
	dec, err := New(reg, obs).Evaluate(context.Background(), Mutating, podRequest(t, "default", pod(nil, container("app", "app:1", false))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a_sidecar", "b_broken", "c_count"}; !reflect.DeepEqual(dec.Evaluated, want) {
		t.Errorf("evaluated %q, want %q", dec.Evaluated, want)
	}
	want := `{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"broken":"seen","containers":"app,agent"},"labels":{"broken":"yes"},"name":"web","namespace":"default"},"spec":{"containers":[{"image":"app:1","name":"app"},{"image":"agent:1","name":"agent"}]}}`
	if got := string(dec.Object); got != want {
		t.Errorf("object:\n got %s\nwant %s", got, want)
	}
	wantSeen := []string{"mutating/a_sidecar/" + OutcomeMutated, "mutating/b_broken/" + OutcomeError, "mutating/c_count/" + OutcomeMutated}
	if !reflect.DeepEqual(obs.seen, wantSeen) {
		t.Errorf("observed %q, want %q", obs.seen, wantSeen)
	}
	if !dec.Allowed || len(dec.Warnings) != 1 {
		t.Errorf("allowed %v, warnings %q", dec.Allowed, dec.Warnings)
	}
}

// The fixture's mutating policy never overrides the user and is idempotent:
// evaluated on its own output it changes nothing.
func TestMutateFixtureIdempotent(t *testing.T) {
	t.Parallel()
	reg := loadFixture(t, "")
	first := evaluate(t, reg, Mutating, podRequest(t, "default", pod(nil, container("app", "app:1", false))))
	wantFirst := `{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"portcullis.dev/managed":"true"},"name":"web","namespace":"default"},` +
		`"spec":{"containers":[{"image":"app:1","name":"app"},{"image":"registry.example/log-agent:1.0","name":"log-agent"}],"securityContext":{"runAsNonRoot":true}}}`
	if string(first.Object) != wantFirst {
		t.Fatalf("first pass:\n got %s\nwant %s", first.Object, wantFirst)
	}
	again := evaluate(t, reg, Mutating, podRequestRaw(t, first.Object))
	if again.Patch != nil || again.Object != nil || again.Errors != nil {
		t.Errorf("second pass changed the object: %v", again.Patch)
	}

	// A user's own values are kept: only the missing agent is added.
	user := pod(nil, container("app", "app:1", false), container("log-agent", "mine:2", false))
	user["metadata"].(map[string]any)["annotations"] = map[string]any{"portcullis.dev/managed": "false"}
	user["spec"].(map[string]any)["securityContext"] = map[string]any{"runAsNonRoot": false}
	dec := evaluate(t, reg, Mutating, podRequest(t, "default", user))
	if dec.Patch != nil || dec.Object != nil {
		t.Errorf("user values overridden: %v", dec.Patch)
	}
}

func podRequestRaw(t testing.TB, raw []byte) *admissionv1.AdmissionRequest {
	t.Helper()
	req := podRequest(t, "default", nil)
	req.Object.Raw = raw
	return req
}

// A mutating policy may also deny or warn: its entries count like a
// validating policy's, and its edits are still derived (the webhook drops
// them from a denial).
func TestMutatingPolicyDenyAndWarn(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"inject/inject.rego": mutating("inject", `mutate contains {"op": "merge", "path": ["metadata", "labels"], "value": {"injected": "true"}}

deny contains {"msg": "annotation example.com/role is required"} if not input.request.object.metadata.annotations["example.com/role"]

warn contains {"msg": "injecting into a pod without a team label"} if not input.request.object.metadata.labels.team`)}))
	dec := evaluate(t, reg, Mutating, podRequest(t, "default", pod(nil, container("app", "a", false))))
	if dec.Allowed {
		t.Error("allowed")
	}
	wantViolations := []Violation{{Policy: "inject", Enforcement: EnforceDeny, Message: "annotation example.com/role is required"}}
	if !reflect.DeepEqual(dec.Violations, wantViolations) {
		t.Errorf("violations = %+v", dec.Violations)
	}
	if want := []string{"inject: injecting into a pod without a team label"}; !reflect.DeepEqual(dec.Warnings, want) {
		t.Errorf("warnings = %q", dec.Warnings)
	}
	if got, _ := json.Marshal(dec.Patch); string(got) != `[{"op":"add","path":"/metadata/labels","value":{"injected":"true"}}]` {
		t.Errorf("patch = %s", got)
	}
}

// A failed edit drops the edits whose path is a prefix of its path or has
// its path as a prefix (an index and a name selector on one array count as
// the same step); the independent edits are kept.
func TestApplyEditsKeepsIndependent(t *testing.T) {
	t.Parallel()
	const pod = `{"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "a"}]}}`
	tests := map[string]struct{ edits, want, err string }{
		"independent kept, prefix and extension dropped": {
			edits: `[{"op": "set", "path": ["metadata", "labels", "ok"], "value": "yes"},
				{"op": "set", "path": ["spec", "containers", {"name": "nope"}, "image"], "value": "x"},
				{"op": "append", "path": ["spec", "containers"], "value": [{"name": "agent"}]},
				{"op": "set", "path": ["spec", "containers", {"name": "nope"}, "image", "tag"], "value": "y"},
				{"op": "set", "path": ["spec", "containers", {"name": "app"}, "image"], "value": "b"},
				{"op": "merge", "path": ["spec", "containers", 0], "value": {"tty": true}},
				{"op": "set", "path": ["spec", "containers", 0, "command"], "value": ["sh"]}]`,
			want: `{"metadata":{"labels":{"ok":"yes"},"name":"web"},"spec":{"containers":[{"command":["sh"],"image":"b","name":"app"}]}}`,
			err:  `invalid edit: edit 1 (set /spec/containers/[name=nope]/image): no element named "nope"; edit 3 (set /spec/containers/[name=nope]/image/tag): no element named "nope"`,
		},
		"two failures": {
			edits: `[{"op": "set", "path": ["metadata", "name", "x"], "value": 1},
				{"op": "set", "path": ["spec", "containers", {"name": "nope"}, "image"], "value": "x"},
				{"op": "set", "path": ["metadata", "labels", "ok"], "value": "yes"}]`,
			want: `{"metadata":{"labels":{"ok":"yes"},"name":"web"},"spec":{"containers":[{"image":"a","name":"app"}]}}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			edits, err := decodeEdits(decodeJSON(t, tc.edits))
			if err != nil {
				t.Fatal(err)
			}
			obj := decodeJSON(t, pod).(map[string]any)
			_, err = applyEdits(obj, edits)
			if err == nil || !errors.Is(err, errEdit) {
				t.Fatalf("err = %v, want an invalid edit", err)
			}
			if tc.err != "" && err.Error() != tc.err {
				t.Errorf("err = %q\nwant %q", err, tc.err)
			}
			if got := canonical(t, obj); got != tc.want {
				t.Errorf("object:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
