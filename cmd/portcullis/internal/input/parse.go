package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// document is one YAML or JSON document of a source, as written.
type document struct {
	text []byte
	line int  // 1-based line of the document's first content line
	json bool // part of a JSON stream
	err  error
}

// split cuts data into documents by the rules of apimachinery's
// YAMLOrJSONDecoder (k8s.io/apimachinery/pkg/util/yaml, the decoder behind
// `kubectl apply -f`): a stream whose first non-space byte is '{' is read
// as a stream of JSON values ({…}{…} and {…}\n{…} are two objects); once
// more than one JSON value was read, a later syntax error ends the stream;
// with at most one, the rest is read as YAML documents separated by lines
// starting with "---". It is reimplemented over the bytes (instead of
// calling the decoder) only to keep each document's text and line, which
// the decoder does not expose; FuzzParse checks it against the decoder.
func split(data []byte) []document {
	var docs []document
	pos := 0
	if utilyaml.IsJSONBuffer(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		count := 0
		for {
			start := skipSpace(data, int(dec.InputOffset()))
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				return docs
			}
			if err != nil {
				if count > 1 {
					return append(docs, document{line: lineAt(data, start), json: true, err: fmt.Errorf("invalid JSON: %w", err)})
				}
				break
			}
			count++
			end := int(dec.InputOffset())
			docs = append(docs, document{text: data[start:end], line: lineAt(data, start), json: true})
			pos = end
		}
		// As the decoder does: drop whitespace up to the first newline,
		// then read the rest as YAML.
		for pos < len(data) && data[pos] != '\n' && unicode.IsSpace(rune(data[pos])) {
			pos++
		}
		if pos < len(data) && data[pos] == '\n' {
			pos++
		}
	}
	return append(docs, splitYAML(data, pos)...)
}

// splitYAML splits data[pos:] at separator lines, as utilyaml.YAMLReader
// does: a line starting with "---" followed by nothing, spaces or a comment.
func splitYAML(data []byte, pos int) []document {
	var docs []document
	line := lineAt(data, pos)
	start, startLine := pos, line
	flush := func(end int) {
		if text := data[start:end]; !blank(text) {
			docs = append(docs, document{text: text, line: startLine + leadingBlankLines(text)})
		}
	}
	for pos < len(data) {
		end := bytes.IndexByte(data[pos:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += pos + 1
		}
		l := data[pos:end]
		if bytes.HasPrefix(l, []byte("---")) {
			flush(pos)
			rest := strings.TrimSpace(string(l[3:]))
			if rest != "" && rest[0] != '#' {
				docs = append(docs, document{line: line, err: fmt.Errorf("invalid YAML document separator: %q", truncate(rest, 40))})
			}
			start, startLine = end, line+1
		}
		pos = end
		line++
	}
	flush(len(data))
	return docs
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && unicode.IsSpace(rune(data[i])) {
		i++
	}
	return i
}

// lineAt is the 1-based line of data[off].
func lineAt(data []byte, off int) int {
	if off > len(data) {
		off = len(data)
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// blank reports whether a document holds only comments, blank lines or
// document markers: kubectl skips those, and so do we (they get no index).
func blank(doc []byte) bool {
	return leadingBlankLines(doc) < 0
}

// leadingBlankLines counts the comment and blank lines before the first
// content line, or returns -1 when there is none.
func leadingBlankLines(doc []byte) int {
	n := 0
	for len(doc) > 0 {
		i := bytes.IndexByte(doc, '\n')
		var l []byte
		if i < 0 {
			l, doc = doc, nil
		} else {
			l, doc = doc[:i], doc[i+1:]
		}
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("...")) {
			return n
		}
		n++
	}
	return -1
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// header is what the reader needs of an object; the rest stays JSON.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
		Namespace    string `json:"namespace"`
	} `json:"metadata"`
}

// Parse reads every document of one source. Broken documents and documents
// that are not Kubernetes objects become problems (Skipped false: the caller
// decides); the other documents are still returned.
func Parse(source string, data []byte) ([]Object, []Problem) {
	var objs []Object
	var probs []Problem
	for index, d := range split(data) {
		pos := Position{Source: source, Doc: index, Item: -1, Line: d.line}
		if d.err != nil {
			probs = append(probs, Problem{Position: pos, Err: d.err})
			continue
		}
		os, err := decodeDocument(pos, d)
		if err != nil {
			probs = append(probs, Problem{Position: pos, Err: err})
			continue
		}
		objs = append(objs, os...)
	}
	return objs, probs
}

// ErrNotObject marks a document that parses but is not a Kubernetes object.
var ErrNotObject = errors.New("not a Kubernetes object")

func decodeDocument(pos Position, d document) ([]Object, error) {
	js := d.text
	var strict error
	if !d.json {
		var err error
		// Strict first (duplicate keys, which the apiserver's strict field
		// validation refuses); the document is still read when only that
		// fails, and the duplicate is reported by the schema check.
		// sigs.k8s.io/yaml also refuses alias bombs (CVE-2019-11253).
		if js, err = yaml.YAMLToJSONStrict(d.text); err != nil {
			var lerr error
			if js, lerr = yaml.YAMLToJSON(d.text); lerr != nil {
				if utilyaml.IsJSONBuffer(d.text) && !json.Valid(d.text) {
					var v any
					return nil, fmt.Errorf("invalid JSON: %w", json.Unmarshal(d.text, &v))
				}
				return nil, &yamlError{msg: absoluteLines(lerr.Error(), d.line-leadingBlankLines(d.text)), err: lerr}
			}
			strict = err
		}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		return nil, fmt.Errorf("%w (expected a mapping with apiVersion and kind)", ErrNotObject)
	}
	o, err := toObject(pos, top, js)
	if err != nil {
		return nil, err
	}
	o.Text, o.JSONText, o.Strict, o.TextLine = d.text, d.json, strict, d.line-leadingBlankLines(d.text)
	if !isList(o.GVK) {
		return []Object{o}, nil
	}
	rawItems, ok := top["items"]
	if !ok || string(rawItems) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(rawItems, &items); err != nil {
		return nil, fmt.Errorf("%s: items must be a list", o.GVK.Kind)
	}
	lines := itemLines(d.text, len(items))
	var out []Object
	for i, it := range items {
		ipos := pos
		ipos.Item = i
		if lines[i] > 0 {
			ipos.Line = d.line + lines[i] - 1 - leadingBlankLines(d.text)
		}
		var itop map[string]json.RawMessage
		if err := json.Unmarshal(it, &itop); err != nil || itop == nil {
			return nil, fmt.Errorf("%s item %d: %w", o.GVK.Kind, i, ErrNotObject)
		}
		io, err := toObject(ipos, itop, it)
		if err != nil {
			return nil, fmt.Errorf("%s item %d: %w", o.GVK.Kind, i, err)
		}
		io.Text, io.JSONText, io.Strict, io.TextLine = d.text, d.json, strict, o.TextLine
		out = append(out, io)
	}
	return out, nil
}

// isList reports whether gvk is a List (v1 List or a typed …List).
func isList(gvk schema.GroupVersionKind) bool {
	return strings.HasSuffix(gvk.Kind, "List")
}

// itemLines returns, for each item of a List document, its line relative
// to the document's text (1-based), or 0 when not found.
func itemLines(text []byte, n int) []int {
	lines := make([]int, n)
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(text, &root); err != nil || len(root.Content) == 0 {
		return lines
	}
	m := root.Content[0]
	if m.Kind != yamlv3.MappingNode {
		return lines
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "items" && m.Content[i+1].Kind == yamlv3.SequenceNode {
			for j, it := range m.Content[i+1].Content {
				if j < n {
					lines[j] = it.Line
				}
			}
		}
	}
	return lines
}

func toObject(pos Position, top map[string]json.RawMessage, js []byte) (Object, error) {
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return Object{}, fmt.Errorf("%w: apiVersion, kind and metadata.name/namespace must be strings", ErrNotObject)
	}
	_, hasKind := top["kind"]
	_, hasAPIVersion := top["apiVersion"]
	if h.APIVersion == "" || h.Kind == "" {
		if !hasKind && !hasAPIVersion {
			return Object{}, fmt.Errorf("%w: no apiVersion or kind", ErrNotObject)
		}
		return Object{}, fmt.Errorf("%w: missing apiVersion or kind", ErrNotObject)
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return Object{}, fmt.Errorf("apiVersion %q: %w", truncate(h.APIVersion, 60), err)
	}
	if gv.Group == "kustomize.config.k8s.io" {
		return Object{}, fmt.Errorf("%w: a %s; render it with -k %s", ErrNotObject, h.Kind, filepath.Dir(pos.Source))
	}
	name := h.Metadata.Name
	if name == "" {
		name = h.Metadata.GenerateName
	}
	return Object{Position: pos, GVK: gv.WithKind(h.Kind), Name: name, Namespace: h.Metadata.Namespace, JSON: js}, nil
}

// yamlError is a YAML error whose "line N" are lines of the source, not of
// the document.
type yamlError struct {
	msg string
	err error
}

func (e *yamlError) Error() string { return "invalid YAML: " + e.msg }
func (e *yamlError) Unwrap() error { return e.err }

var docLine = regexp.MustCompile(`\bline (\d+)\b`)

// absoluteLines rewrites "line N" (1-based, within a document starting at
// line start of the source) into lines of the source.
func absoluteLines(msg string, start int) string {
	if start <= 1 {
		return msg
	}
	return docLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, err := strconv.Atoi(m[len("line "):])
		if err != nil {
			return m
		}
		return "line " + strconv.Itoa(start+n-1)
	})
}
