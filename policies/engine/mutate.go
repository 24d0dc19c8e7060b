package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
)

// Edit operations a mutating policy may ask for (see policies/README.md).
const (
	opSet     = "set"
	opDefault = "default"
	opMerge   = "merge"
	opAppend  = "append"
	opPrepend = "prepend"
	opRemove  = "remove"
)

// errEdit marks an edit that cannot be applied; it is an evaluation error of
// the policy that asked for it.
var errEdit = errors.New("invalid edit")

// edit is one decoded entry of a policy's mutate set.
type edit struct {
	op    string
	path  []any // string | int | selector
	value any
}

// selector picks the array element whose name equals name.
type selector struct{ name string }

// decodeEdits turns the mutate set, as returned by OPA, into edits.
func decodeEdits(raw any) ([]edit, error) {
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: mutate must be a set of edits, got %T", errEdit, raw)
	}
	edits := make([]edit, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: mutate entry %d is not an object", errEdit, i)
		}
		op, _ := m["op"].(string)
		switch op {
		case opSet, opDefault, opMerge, opAppend, opPrepend, opRemove:
		default:
			return nil, fmt.Errorf("%w: mutate entry %d: unknown op %q", errEdit, i, op)
		}
		rawPath, ok := m["path"].([]any)
		if !ok || len(rawPath) == 0 {
			return nil, fmt.Errorf("%w: mutate entry %d (%s): path must be a non-empty array", errEdit, i, op)
		}
		path := make([]any, len(rawPath))
		for j, step := range rawPath {
			s, err := decodeStep(step)
			if err != nil {
				return nil, fmt.Errorf("%w: mutate entry %d (%s): path step %d: %w", errEdit, i, op, j, err)
			}
			path[j] = s
		}
		value, hasValue := m["value"]
		if op != opRemove && !hasValue {
			return nil, fmt.Errorf("%w: mutate entry %d (%s %s): value is required", errEdit, i, op, pathString(path))
		}
		if op == opAppend || op == opPrepend {
			if _, ok := value.([]any); !ok {
				return nil, fmt.Errorf("%w: mutate entry %d (%s %s): value must be an array", errEdit, i, op, pathString(path))
			}
		}
		if op == opMerge {
			if _, ok := value.(map[string]any); !ok {
				return nil, fmt.Errorf("%w: mutate entry %d (%s %s): value must be an object", errEdit, i, op, pathString(path))
			}
		}
		edits = append(edits, edit{op: op, path: path, value: value})
	}
	return edits, nil
}

func decodeStep(step any) (any, error) {
	switch s := step.(type) {
	case string:
		return s, nil
	case json.Number:
		n, err := s.Int64()
		if err != nil || n < 0 || n > math.MaxInt32 {
			return nil, fmt.Errorf("index %s is not a non-negative integer", s)
		}
		return int(n), nil
	case float64:
		if s < 0 || s != math.Trunc(s) || s > math.MaxInt32 {
			return nil, fmt.Errorf("index %v is not a non-negative integer", s)
		}
		return int(s), nil
	case map[string]any:
		name, ok := s["name"].(string)
		if !ok || len(s) != 1 {
			return nil, errors.New(`a selector must be {"name": "<name>"}`)
		}
		return selector{name: name}, nil
	}
	return nil, fmt.Errorf("unsupported step of type %T", step)
}

func pathString(path []any) string {
	var b strings.Builder
	for _, s := range path {
		switch s := s.(type) {
		case string:
			b.WriteString("/" + s)
		case int:
			fmt.Fprintf(&b, "/%d", s)
		case selector:
			fmt.Fprintf(&b, "/[name=%s]", s.name)
		}
	}
	return b.String()
}

// applyEdits applies edits to obj in order and reports whether anything
// changed. When edits fail, the policy's other edits are kept only when they
// are independent of every failed one: neither edit's path is a prefix of
// the other's (an index and a name selector on one array may address the
// same element, so they count as the same step). The dependent edits are
// dropped, obj holds only the independent ones, and the error names the
// failed edits (their index in the applied, sorted, order, op and path).
func applyEdits(obj map[string]any, edits []edit) (bool, error) {
	snapshot := deepCopy(obj).(map[string]any)
	changed := false
	ok := true
	for _, e := range edits {
		c, err := applyEdit(obj, e)
		if err != nil {
			ok = false
			break
		}
		changed = changed || c
	}
	if ok {
		return changed, nil
	}
	// An edit failed (possibly half-applied): start again from the object
	// as received, edit by edit.
	clear(obj)
	for k, v := range deepCopy(snapshot).(map[string]any) {
		obj[k] = v
	}
	failed := map[int]error{}
	changed = tryEdits(obj, edits, failed)
	// Re-apply, on the object as received, the edits independent of every
	// failed one; one of those failing now (it needed a dropped edit) drops
	// its own dependents in turn.
	for {
		skip := map[int]error{}
		for i, e := range edits {
			if failed[i] != nil {
				skip[i] = failed[i]
				continue
			}
			for j := range failed {
				if dependent(e.path, edits[j].path) {
					skip[i] = errDropped
				}
			}
		}
		clear(obj)
		for k, v := range deepCopy(snapshot).(map[string]any) {
			obj[k] = v
		}
		before := len(failedOnly(skip))
		changed = tryEdits(obj, edits, skip)
		for i, err := range skip {
			if err != errDropped {
				failed[i] = err
			}
		}
		if len(failedOnly(skip)) == before {
			break
		}
	}
	idx := make([]int, 0, len(failed))
	for i := range failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	if len(idx) == 1 {
		i := idx[0]
		return changed, fmt.Errorf("%w: edit %d (%s %s): %w", errEdit, i, edits[i].op, pathString(edits[i].path), failed[i])
	}
	errs := make([]string, 0, len(idx))
	for _, i := range idx {
		errs = append(errs, fmt.Sprintf("edit %d (%s %s): %s", i, edits[i].op, pathString(edits[i].path), failed[i]))
	}
	return changed, fmt.Errorf("%w: %s", errEdit, strings.Join(errs, "; "))
}

// errDropped marks an edit left out because it depends on a failed one.
var errDropped = errors.New("dropped: depends on a failed edit")

func failedOnly(m map[int]error) map[int]error {
	out := map[int]error{}
	for i, err := range m {
		if err != errDropped {
			out[i] = err
		}
	}
	return out
}

// tryEdits applies, in order, the edits not already in skip, recording in
// skip each that fails; it reports whether anything changed.
func tryEdits(obj map[string]any, edits []edit, skip map[int]error) bool {
	changed := false
	for i, e := range edits {
		if skip[i] != nil {
			continue
		}
		// Apply to a copy so a failed edit leaves nothing half-done.
		work := deepCopy(obj).(map[string]any)
		c, err := applyEdit(work, e)
		if err != nil {
			skip[i] = err
			continue
		}
		clear(obj)
		for k, v := range work {
			obj[k] = v
		}
		changed = changed || c
	}
	return changed
}

// dependent reports whether one path is a prefix of the other.
func dependent(a, b []any) bool {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if !sameStep(a[i], b[i]) {
			return false
		}
	}
	return true
}

// sameStep reports whether two steps may address the same key or element.
func sameStep(a, b any) bool {
	switch a.(type) {
	case string:
		return a == b
	case int, selector:
		switch b.(type) {
		case int, selector:
			_, ai := a.(int)
			_, bi := b.(int)
			if ai != bi {
				return true // an index and a selector may pick the same element
			}
			return a == b
		}
	}
	return false
}

// applyEdit walks to the parent of the last step (creating objects for
// missing keys unless the op is remove) and applies the op there.
func applyEdit(root map[string]any, e edit) (bool, error) {
	var parent any = root
	// setChild replaces parent in its own container when an array grows.
	for i, step := range e.path[:len(e.path)-1] {
		next, err := child(parent, step, e.op != opRemove, e.path[i+1])
		if err != nil {
			return false, err
		}
		if next == nil { // remove through a missing path: nothing to do
			return false, nil
		}
		parent = next
	}
	last := e.path[len(e.path)-1]
	switch p := parent.(type) {
	case map[string]any:
		key, ok := last.(string)
		if !ok {
			return false, fmt.Errorf("cannot index an object with %v", last)
		}
		cur, exists := p[key]
		switch e.op {
		case opRemove:
			if !exists {
				return false, nil
			}
			delete(p, key)
			return true, nil
		case opDefault:
			if exists && cur != nil {
				return false, nil
			}
			p[key] = deepCopy(e.value)
			return true, nil
		case opSet:
			if exists && reflect.DeepEqual(normalize(cur), normalize(e.value)) {
				return false, nil
			}
			p[key] = deepCopy(e.value)
			return true, nil
		case opMerge:
			if !exists || cur == nil {
				p[key] = deepCopy(e.value)
				return true, nil
			}
			cm, ok := cur.(map[string]any)
			if !ok {
				return false, fmt.Errorf("cannot merge an object into %T", cur)
			}
			return mergeMissing(cm, e.value.(map[string]any)), nil
		case opAppend, opPrepend:
			var arr []any
			if exists && cur != nil {
				if arr, ok = cur.([]any); !ok {
					return false, fmt.Errorf("cannot %s to %T", e.op, cur)
				}
			}
			next, changed := addElements(arr, e.value.([]any), e.op == opPrepend)
			if changed {
				p[key] = next
			}
			return changed, nil
		}
	case []any:
		idx, err := index(p, last)
		if err != nil {
			if e.op == opRemove {
				return false, nil
			}
			return false, err
		}
		switch e.op {
		case opRemove:
			return false, errors.New("removing array elements is not supported; remove the array's key or set it")
		case opDefault:
			if p[idx] != nil {
				return false, nil
			}
			p[idx] = deepCopy(e.value)
			return true, nil
		case opSet:
			if reflect.DeepEqual(normalize(p[idx]), normalize(e.value)) {
				return false, nil
			}
			p[idx] = deepCopy(e.value)
			return true, nil
		case opMerge:
			cm, ok := p[idx].(map[string]any)
			if !ok {
				return false, fmt.Errorf("cannot merge an object into %T", p[idx])
			}
			return mergeMissing(cm, e.value.(map[string]any)), nil
		default:
			return false, fmt.Errorf("%s needs an array under an object key", e.op)
		}
	}
	return false, fmt.Errorf("cannot walk into %T", parent)
}

// child returns the container at step under parent. With create, a missing
// object key gets a new object (or array, when the next step is an index).
// Without create, a missing step returns nil.
func child(parent any, step any, create bool, next any) (any, error) {
	switch p := parent.(type) {
	case map[string]any:
		key, ok := step.(string)
		if !ok {
			return nil, fmt.Errorf("cannot index an object with %v", step)
		}
		v, exists := p[key]
		if exists && v != nil {
			return v, nil
		}
		if !create {
			return nil, nil
		}
		if _, isKey := next.(string); !isKey {
			return nil, fmt.Errorf("%q is missing: cannot select %v in it", key, next)
		}
		m := map[string]any{}
		p[key] = m
		return m, nil
	case []any:
		idx, err := index(p, step)
		if err != nil {
			if !create {
				return nil, nil
			}
			return nil, err
		}
		return p[idx], nil
	}
	return nil, fmt.Errorf("cannot walk into %T", parent)
}

func index(arr []any, step any) (int, error) {
	switch s := step.(type) {
	case int:
		if s >= len(arr) {
			return 0, fmt.Errorf("index %d out of range (length %d)", s, len(arr))
		}
		return s, nil
	case selector:
		for i, el := range arr {
			if m, ok := el.(map[string]any); ok && m["name"] == s.name {
				return i, nil
			}
		}
		return 0, fmt.Errorf("no element named %q", s.name)
	}
	return 0, fmt.Errorf("cannot index an array with %q", step)
}

// addElements appends (or prepends, keeping their order) the elements, skipping
// objects whose name is already present so sidecars and volumes are never
// duplicated.
func addElements(arr, elems []any, prepend bool) ([]any, bool) {
	names := map[string]bool{}
	for _, el := range arr {
		if m, ok := el.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				names[n] = true
			}
		}
	}
	add := make([]any, 0, len(elems))
	for _, el := range elems {
		if m, ok := el.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				if names[n] {
					continue
				}
				names[n] = true
			}
		}
		add = append(add, deepCopy(el))
	}
	if len(add) == 0 {
		return arr, false
	}
	if prepend {
		return append(add, arr...), true
	}
	return append(append(make([]any, 0, len(arr)+len(add)), arr...), add...), true
}

// mergeMissing sets the keys of src that dst lacks, recursing into objects
// both have; values dst already has win.
func mergeMissing(dst, src map[string]any) bool {
	changed := false
	for k, sv := range src {
		dv, exists := dst[k]
		if !exists || dv == nil {
			dst[k] = deepCopy(sv)
			changed = true
			continue
		}
		dm, ok1 := dv.(map[string]any)
		sm, ok2 := sv.(map[string]any)
		if ok1 && ok2 && mergeMissing(dm, sm) {
			changed = true
		}
	}
	return changed
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, x := range t {
			a[i] = deepCopy(x)
		}
		return a
	}
	return v
}

// normalize makes numbers comparable whatever their source (json.Number from
// the object, json.Number or float64 from OPA).
func normalize(v any) any {
	switch t := v.(type) {
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = normalize(x)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, x := range t {
			a[i] = normalize(x)
		}
		return a
	}
	return v
}
