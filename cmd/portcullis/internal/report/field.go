package report

import (
	"encoding/json"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// locateFields gives each violation whose policy names a field (the
// "field" of its deny entry, e.g. spec.containers[0].image or
// metadata.annotations["a.b/c"]) the line of that field in the object's
// text, when the field is there as written (not only added by a mutation).
func (r *Result) locateFields() {
	o := r.Original
	if o == nil || o.Text == nil || o.TextLine <= 0 {
		return
	}
	var root *yamlv3.Node
	for i := range r.Violations {
		v := &r.Violations[i]
		if v.Field == "" {
			continue
		}
		path, ok := parseFieldPath(v.Field)
		if !ok {
			continue
		}
		if root == nil {
			var doc yamlv3.Node
			if yamlv3.Unmarshal(o.Text, &doc) != nil || len(doc.Content) != 1 {
				return
			}
			root = doc.Content[0]
			if o.Item >= 0 {
				items := mapValue(root, "items")
				if items == nil || items.Kind != yamlv3.SequenceNode || o.Item >= len(items.Content) {
					return
				}
				root = items.Content[o.Item]
			}
		}
		if line := nodeLine(root, path); line > 0 {
			v.Line = o.TextLine + line - 1
		}
	}
}

// nodeLine follows path from n and returns the line of the last key (or
// sequence element), 0 when the path is not there.
func nodeLine(n *yamlv3.Node, path []string) int {
	line := 0
	for _, p := range path {
		switch n.Kind {
		case yamlv3.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return 0
			}
		case yamlv3.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(n.Content) {
				return 0
			}
			n = n.Content[i]
			line = n.Line
		default:
			return 0
		}
	}
	return line
}

// parseFieldPath splits a field path as the policies write it: names
// separated by dots, [N] indexes and ["key"] subscripts (JSON strings).
func parseFieldPath(s string) ([]string, bool) {
	var out []string
	for len(s) > 0 {
		switch {
		case s[0] == '.':
			s = s[1:]
		case strings.HasPrefix(s, `["`):
			var key string
			dec := json.NewDecoder(strings.NewReader(s[1:]))
			if err := dec.Decode(&key); err != nil {
				return nil, false
			}
			rest := s[1+int(dec.InputOffset()):]
			if !strings.HasPrefix(rest, "]") {
				return nil, false
			}
			out = append(out, key)
			s = rest[1:]
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, false
			}
			if _, err := strconv.Atoi(s[1:end]); err != nil {
				return nil, false
			}
			out = append(out, s[1:end])
			s = s[end+1:]
		default:
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			out = append(out, s[:end])
			s = s[end:]
		}
	}
	return out, len(out) > 0
}
