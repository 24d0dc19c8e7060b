package engine

import (
	"fmt"
	"sort"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// diffPatch derives the RFC 6902 patch from original to mutated with
// gomodules.xyz/jsonpatch (never hand-built), then puts the operations in a
// deterministic order. The library walks Go maps, so sibling object keys come
// out in random order; the same request must always get the same bytes back.
// Object siblings are independent, so they are sorted by key; array children
// keep the library's order, which their indices depend on.
func diffPatch(original, mutated []byte, originalObj map[string]any) ([]jsonpatch.Operation, error) {
	ops, err := jsonpatch.CreatePatch(original, mutated)
	if err != nil {
		return nil, fmt.Errorf("diff mutated object: %w", err)
	}
	if len(ops) < 2 {
		return ops, nil
	}
	root := &patchNode{children: map[string]*patchNode{}}
	for i := range ops {
		root.insert(splitPointer(ops[i].Path), &ops[i])
	}
	out := make([]jsonpatch.Operation, 0, len(ops))
	root.flatten(originalObj, &out)
	return out, nil
}

type patchNode struct {
	ops      []*jsonpatch.Operation
	order    []string // child keys in first-seen order
	children map[string]*patchNode
}

func (n *patchNode) insert(segs []string, op *jsonpatch.Operation) {
	if len(segs) == 0 {
		n.ops = append(n.ops, op)
		return
	}
	c := n.children[segs[0]]
	if c == nil {
		c = &patchNode{children: map[string]*patchNode{}}
		n.children[segs[0]] = c
		n.order = append(n.order, segs[0])
	}
	c.insert(segs[1:], op)
}

// flatten emits the node's own operations, then its children: sorted by key
// when doc (the original value at this node) is an object, in first-seen
// order when it is an array.
func (n *patchNode) flatten(doc any, out *[]jsonpatch.Operation) {
	for _, op := range n.ops {
		*out = append(*out, *op)
	}
	keys := n.order
	m, isObject := doc.(map[string]any)
	if isObject {
		keys = append([]string(nil), n.order...)
		sort.Strings(keys)
	}
	arr, _ := doc.([]any)
	for _, k := range keys {
		var sub any
		if isObject {
			sub = m[k]
		} else if arr != nil {
			var i int
			if _, err := fmt.Sscanf(k, "%d", &i); err == nil && i >= 0 && i < len(arr) {
				sub = arr[i]
			}
		}
		n.children[k].flatten(sub, out)
	}
}

// splitPointer splits an RFC 6901 JSON pointer into unescaped segments.
func splitPointer(p string) []string {
	if p == "" || p == "/" {
		return nil
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs
}
