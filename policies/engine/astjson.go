package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync/atomic"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Limits of the JSON → ast.Value decoder. The depth matches encoding/json's,
// so a document either decoder accepts, the other accepts too; the size is
// well above the webhook's body cap (an AdmissionReview carries at most two
// objects of ~1.5 MiB, etcd's limit).
const (
	maxJSONDepth = 10000
	maxJSONBytes = 64 << 20
)

// errJSON marks input the decoder refuses; messages give the byte offset,
// never the content (objects may carry secrets).
var errJSON = errors.New("invalid JSON")

// parseJSONValue decodes one JSON document straight into an OPA value,
// without the JSON → any → ast.Value detour of ast.ValueFromReader (which
// allocates every value twice). For valid JSON the result equals
// ast.ValueFromReader's (FuzzParseJSONValue checks it): numbers keep their
// text, strings are unescaped by encoding/json's rules (invalid UTF-8 becomes
// U+FFFD), and of duplicate object keys the last wins. Unlike a json.Decoder
// it refuses anything but whitespace after the value.
func parseJSONValue(data []byte) (ast.Value, error) {
	if len(data) > maxJSONBytes {
		return nil, fmt.Errorf("%w: document of %d bytes exceeds %d", errJSON, len(data), maxJSONBytes)
	}
	d := &astDecoder{data: data}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.space()
	if d.pos != len(d.data) {
		return nil, d.errorf("data after the value")
	}
	return v, nil
}

// astDecoder is a recursive-descent JSON parser producing ast values. It
// keeps pending array elements and object members on shared stacks, so each
// array or object is allocated once, at its final size.
type astDecoder struct {
	data  []byte
	pos   int
	depth int
	vals  []ast.Value
	keys  []ast.Value
	// strs holds this document's short string values (see strValue).
	strs map[string]ast.Value
}

// maxInterned is the longest string interned.
const maxInterned = 32

func (d *astDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", errJSON, d.pos, fmt.Sprintf(format, args...))
}

func (d *astDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *astDecoder) value() (ast.Value, error) {
	d.space()
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.strValue(false)
	case c == 't':
		return d.literal("true", ast.Boolean(true))
	case c == 'f':
		return d.literal("false", ast.Boolean(false))
	case c == 'n':
		return d.literal("null", ast.NullValue)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		return nil, d.errorf("unexpected character %q", rune(c))
	}
}

func (d *astDecoder) literal(word string, v ast.Value) (ast.Value, error) {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return nil, d.errorf("invalid literal")
	}
	d.pos += len(word)
	return v, nil
}

func (d *astDecoder) enter() error {
	d.depth++
	if d.depth > maxJSONDepth {
		return d.errorf("nesting deeper than %d", maxJSONDepth)
	}
	return nil
}

func (d *astDecoder) array() (ast.Value, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // [
	base := len(d.vals)
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return ast.NewArray(), nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.vals = append(d.vals, v)
		d.space()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unterminated array")
		}
		c := d.data[d.pos]
		d.pos++
		if c == ']' {
			break
		}
		if c != ',' {
			d.pos--
			return nil, d.errorf("expected , or ] in array")
		}
	}
	n := len(d.vals) - base
	terms := make([]ast.Term, n)
	ptrs := make([]*ast.Term, n)
	for i := range n {
		terms[i].Value = d.vals[base+i]
		ptrs[i] = &terms[i]
	}
	clear(d.vals[base:])
	d.vals = d.vals[:base]
	d.depth--
	return ast.NewArray(ptrs...), nil
}

func (d *astDecoder) object() (ast.Value, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // {
	kbase, vbase := len(d.keys), len(d.vals)
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return ast.NewObject(), nil
	}
	for {
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errorf("expected a string key in object")
		}
		k, err := d.strValue(true)
		if err != nil {
			return nil, err
		}
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("expected : after object key")
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, v)
		d.space()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unterminated object")
		}
		c := d.data[d.pos]
		d.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			d.pos--
			return nil, d.errorf("expected , or } in object")
		}
	}
	keys := d.keys[kbase:]
	vals := d.vals[vbase:]
	n := dedupeKeys(keys, vals)
	terms := make([]ast.Term, 2*n)
	pairs := make([][2]*ast.Term, n)
	for i := range n {
		terms[2*i].Value = keys[i]
		terms[2*i+1].Value = vals[i]
		pairs[i] = [2]*ast.Term{&terms[2*i], &terms[2*i+1]}
	}
	clear(keys)
	clear(vals)
	d.keys = d.keys[:kbase]
	d.vals = d.vals[:vbase]
	d.depth--
	return ast.NewObject(pairs...), nil
}

// dedupeKeys keeps the last value of each repeated key, as decoding into a
// Go map does, and returns how many members remain (compacted to the front,
// in first-seen order; ast.Object sorts its keys itself).
func dedupeKeys(keys, vals []ast.Value) int {
	n := len(keys)
	if n < 2 {
		return n
	}
	if n <= 16 {
		dup := false
		for i := 1; i < n && !dup; i++ {
			for j := range i {
				if keys[i] == keys[j] {
					dup = true
					break
				}
			}
		}
		if !dup {
			return n
		}
	}
	at := make(map[ast.Value]int, n)
	out := 0
	for i := range n {
		if j, ok := at[keys[i]]; ok {
			vals[j] = vals[i]
			continue
		}
		at[keys[i]] = out
		keys[out], vals[out] = keys[i], vals[i]
		out++
	}
	return out
}

// strValue decodes the string starting at d.pos (an opening quote) into an
// ast.String. Short object keys are interned (sharedStrings): Kubernetes
// objects repeat their field names (name, image, containerPort,
// securityContext) in every request, and an interned key costs neither a
// copy nor boxing into an ast.Value. Values are not: a table shared by
// every request must not keep a request's data (an env value, a password)
// alive after it.
func (d *astDecoder) strValue(key bool) (ast.Value, error) {
	raw, plain, err := d.scanString()
	if err != nil {
		return nil, err
	}
	if !plain {
		s, err := d.unquote(raw)
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	}
	// raw is the string's content.
	if len(raw) > maxInterned {
		return ast.String(raw), nil
	}
	if key {
		return sharedStrings.get(raw), nil
	}
	// A value: shared within this document only (the containers of a pod
	// repeat their values: TCP, IfNotPresent, the image).
	if v, ok := d.strs[string(raw)]; ok { // no allocation for the lookup
		return v, nil
	}
	if d.strs == nil {
		d.strs = make(map[string]ast.Value, 16)
	}
	str := string(raw)
	v := ast.Value(ast.String(str))
	d.strs[str] = v
	return v, nil
}

// internTable is a bounded, lock-free table of short object keys shared by
// every decode: the field names of Kubernetes objects (metadata, containers,
// image, securityContext...) are the same in every request, so most requests
// find them here instead of allocating them again. Direct-mapped by hash: a string
// whose slot holds another one replaces it, so the table never grows past
// its slots, whatever strings requests carry. ast.String values are
// immutable, so sharing them between requests (and goroutines) is safe.
type internTable struct {
	seed  maphash.Seed
	slots [internSlots]atomic.Pointer[ast.Value]
}

// internSlots bounds the table (8 bytes a slot, plus the strings held: at
// most internSlots × (maxInterned + 32) bytes, ~600 KiB).
const internSlots = 1 << 13

var sharedStrings = &internTable{seed: maphash.MakeSeed()}

// get returns the interned ast.String for b, adding it if its slot holds
// another string.
func (t *internTable) get(b []byte) ast.Value {
	slot := &t.slots[maphash.Bytes(t.seed, b)&(internSlots-1)]
	if p := slot.Load(); p != nil {
		if s := (*p).(ast.String); string(s) == string(b) {
			return *p
		}
	}
	v := ast.Value(ast.String(string(b)))
	slot.Store(&v)
	return v
}

// scanString moves past the string starting at d.pos. For a plain string (no
// escapes, valid UTF-8) it returns the content; otherwise the whole quoted
// token, for unquote.
func (d *astDecoder) scanString() (raw []byte, plain bool, err error) {
	start := d.pos
	d.pos++ // "
	plain, ascii := true, true
	for {
		if d.pos >= len(d.data) {
			return nil, false, d.errorf("unterminated string")
		}
		c := d.data[d.pos]
		switch {
		case c == '"':
			content := d.data[start+1 : d.pos]
			d.pos++
			if plain && (ascii || utf8.Valid(content)) {
				return content, true, nil
			}
			return d.data[start:d.pos], false, nil
		case c == '\\':
			plain = false
			d.pos += 2
		case c < 0x20:
			return nil, false, d.errorf("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
			d.pos++
		default:
			d.pos++
		}
	}
}

// unquote decodes a quoted string token with escapes or invalid UTF-8
// through encoding/json, so the rules are exactly its own.
func (d *astDecoder) unquote(quoted []byte) (string, error) {
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		d.pos -= len(quoted)
		return "", d.errorf("invalid string")
	}
	return s, nil
}

// number scans a JSON number and keeps its text, like json.Number.
func (d *astDecoder) number() (ast.Value, error) {
	start := d.pos
	p := d.pos
	data := d.data
	digits := func() int {
		s := p
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			p++
		}
		return p - s
	}
	if p < len(data) && data[p] == '-' {
		p++
	}
	switch {
	case p < len(data) && data[p] == '0':
		p++
	case digits() == 0:
		d.pos = p
		return nil, d.errorf("invalid number")
	}
	if p < len(data) && data[p] == '.' {
		p++
		if digits() == 0 {
			d.pos = p
			return nil, d.errorf("invalid number")
		}
	}
	if p < len(data) && (data[p] == 'e' || data[p] == 'E') {
		p++
		if p < len(data) && (data[p] == '+' || data[p] == '-') {
			p++
		}
		if digits() == 0 {
			d.pos = p
			return nil, d.errorf("invalid number")
		}
	}
	d.pos = p
	s := string(data[start:p])
	if t := ast.InternedIntNumberTermFromString(s); t != nil {
		return t.Value, nil
	}
	n, err := ast.NumberChecked(s)
	if err != nil {
		d.pos = start
		return nil, d.errorf("number out of range")
	}
	return n, nil
}
