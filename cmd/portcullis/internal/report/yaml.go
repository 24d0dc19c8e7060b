package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	yamlv3 "go.yaml.in/yaml/v3"
	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/yaml"
)

// writeYAML writes each object as it would be stored after the mutating
// policies, keeping what the user wrote: an unchanged object is copied
// byte for byte (comments, order, quoting); a changed one has the patch
// applied to its parsed document, which keeps comments and key order but
// re-indents (2 spaces) and re-flows it; keys the policies add come after
// the existing ones. No namespace is added. Objects without their text
// (rendered by kustomize, or when the patch cannot be applied to the
// document, e.g. through a YAML alias) are written from JSON with keys
// sorted.
func writeYAML(w io.Writer, r *Report) error {
	for i, res := range r.Results {
		out, err := mutatedYAML(res)
		if err != nil {
			return fmt.Errorf("%s: %w", res.Location(), err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

func mutatedYAML(res Result) ([]byte, error) {
	o := res.Original
	if o == nil {
		return nil, errors.New("the object was not kept")
	}
	if o.Text != nil {
		if len(res.Patch) == 0 && o.Item < 0 && !o.JSONText {
			out := o.Text
			if !bytes.HasSuffix(out, []byte("\n")) {
				out = append(append([]byte{}, out...), '\n')
			}
			return out, nil
		}
		if out, err := patchText(o, res.Patch); err == nil {
			return out, nil
		}
	}
	js := o.JSON
	if len(res.Patch) > 0 {
		raw, err := json.Marshal(res.Patch)
		if err != nil {
			return nil, err
		}
		p, err := jsonpatchapply.DecodePatch(raw)
		if err != nil {
			return nil, err
		}
		if js, err = p.Apply(js); err != nil {
			return nil, fmt.Errorf("apply patch: %w", err)
		}
	}
	return yaml.JSONToYAML(js)
}

// patchText applies patch to the object's document node by node.
func patchText(o *Original, patch []jsonpatch.Operation) ([]byte, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(o.Text, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yamlv3.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("not one document")
	}
	target := &doc
	root := doc.Content[0]
	if o.Item >= 0 {
		items := mapValue(root, "items")
		if items == nil || items.Kind != yamlv3.SequenceNode || o.Item >= len(items.Content) {
			return nil, errors.New("list item not found")
		}
		root = items.Content[o.Item]
		target = root
	}
	for _, op := range patch {
		if err := applyOp(root, op); err != nil {
			return nil, err
		}
	}
	if o.JSONText {
		blockStyle(target)
	}
	var buf bytes.Buffer
	enc := yamlv3.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(target); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func blockStyle(n *yamlv3.Node) {
	n.Style &^= yamlv3.FlowStyle
	if n.Kind == yamlv3.ScalarNode && n.Style&yamlv3.DoubleQuotedStyle != 0 && n.Tag == "!!str" {
		n.Style &^= yamlv3.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func mapValue(m *yamlv3.Node, key string) *yamlv3.Node {
	if m.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// applyOp applies one add/replace/remove operation (JSON pointer path,
// RFC 6901) to the node tree.
func applyOp(root *yamlv3.Node, op jsonpatch.Operation) error {
	if !strings.HasPrefix(op.Path, "/") {
		return fmt.Errorf("path %q", op.Path)
	}
	tokens := strings.Split(op.Path[1:], "/")
	for i, t := range tokens {
		tokens[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
	}
	parent := root
	for _, t := range tokens[:len(tokens)-1] {
		next, err := child(parent, t)
		if err != nil {
			return err
		}
		parent = next
	}
	last := tokens[len(tokens)-1]
	var value *yamlv3.Node
	if op.Operation != "remove" {
		value = &yamlv3.Node{}
		if err := value.Encode(op.Value); err != nil {
			return err
		}
	}
	switch parent.Kind {
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(parent.Content); i += 2 {
			if parent.Content[i].Value != last {
				continue
			}
			switch op.Operation {
			case "remove":
				parent.Content = append(parent.Content[:i], parent.Content[i+2:]...)
			default:
				parent.Content[i+1] = value
			}
			return nil
		}
		if op.Operation != "add" {
			return fmt.Errorf("%s %s: no such key", op.Operation, op.Path)
		}
		parent.Content = append(parent.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: last}, value)
		return nil
	case yamlv3.SequenceNode:
		if last == "-" && op.Operation == "add" {
			parent.Content = append(parent.Content, value)
			return nil
		}
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i > len(parent.Content) || (i == len(parent.Content) && op.Operation != "add") {
			return fmt.Errorf("%s %s: bad index", op.Operation, op.Path)
		}
		switch op.Operation {
		case "add":
			parent.Content = append(parent.Content[:i], append([]*yamlv3.Node{value}, parent.Content[i:]...)...)
		case "remove":
			parent.Content = append(parent.Content[:i], parent.Content[i+1:]...)
		default:
			parent.Content[i] = value
		}
		return nil
	}
	return fmt.Errorf("%s %s: parent is not a mapping or sequence", op.Operation, op.Path)
}

func child(n *yamlv3.Node, token string) (*yamlv3.Node, error) {
	switch n.Kind {
	case yamlv3.MappingNode:
		if v := mapValue(n, token); v != nil && v.Kind != yamlv3.AliasNode {
			return v, nil
		}
	case yamlv3.SequenceNode:
		if i, err := strconv.Atoi(token); err == nil && i >= 0 && i < len(n.Content) && n.Content[i].Kind != yamlv3.AliasNode {
			return n.Content[i], nil
		}
	}
	return nil, fmt.Errorf("path element %q not found", token)
}
