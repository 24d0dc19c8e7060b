package engine

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Bounds on what a message may carry (see Redact).
const (
	// maxDigits: longer runs of digits are clipped. int64 has 19 digits, so
	// no value the Kubernetes API accepts is touched; 1e10000 printed as an
	// integer would otherwise be ten thousand digits.
	maxDigits = 20
	// maxQuoted: longer quoted values are clipped to clipQuoted bytes.
	maxQuoted  = 512
	clipQuoted = 128
	// maxMessage bounds a whole message.
	maxMessage = 4096
)

// userinfo matches credentials before an '@': user:password@ at the start of
// a token or after a URL scheme (https://user:pass@host,
// "user:pass@registry/app:1"). A tag followed by a digest (nginx:1.25@sha256:…)
// has the same shape; redactUserinfo leaves those.
var userinfo = regexp.MustCompile(`(^|[\s"'(\[{=,;]|://)([^\s/@:"'(){}\[\]=,;]+):([^\s/@"']*)@`)

// ociDigest is what follows '@' in a digested image reference.
var ociDigest = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}`)

// Redact is applied to every text that leaves the engine for a client or a
// log (violation messages and details, warnings): credentials that look like
// user:password@ become REDACTED@, runs of more than maxDigits digits and
// quoted values longer than maxQuoted bytes are clipped, and the whole is
// clipped to maxMessage bytes. Messages of the size and shape the Kubernetes
// API accepts pass unchanged (the Pod Security oracle tests hold them
// byte-identical to upstream).
func Redact(s string) string {
	if strings.IndexByte(s, '@') >= 0 {
		s = redactUserinfo(s)
	}
	s = clipDigits(s)
	if len(s) > maxQuoted {
		s = clipQuotedValues(s)
	}
	return clip(s, maxMessage)
}

func redactUserinfo(s string) string {
	locs := userinfo.FindAllStringSubmatchIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range locs {
		// m[1] is just past '@'; m[4] the start of the user name.
		if ociDigest.MatchString(s[m[1]:]) {
			continue
		}
		b.WriteString(s[last:m[4]])
		b.WriteString("REDACTED@")
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// clipDigits keeps the first maxDigits digits of a longer run and says how
// many there were.
func clipDigits(s string) string {
	run, longest := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	if longest <= maxDigits {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			b.WriteByte(s[i])
			i++
			continue
		}
		if j-i > maxDigits {
			b.WriteString(s[i : i+maxDigits])
			b.WriteString("…(")
			b.WriteString(strconv.Itoa(j - i))
			b.WriteString(" digits)")
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}

// quotedValue matches a Go %q string.
var quotedValue = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func clipQuotedValues(s string) string {
	return quotedValue.ReplaceAllStringFunc(s, func(q string) string {
		if len(q) <= maxQuoted {
			return q
		}
		return clip(q[:len(q)-1], clipQuoted) + `(` + strconv.Itoa(len(q)-2) + ` bytes)"`
	})
}

// redactValue applies Redact to every string in a decoded JSON value
// (violation details), returning a new value when something changed.
func redactValue(v any) any {
	return mapStrings(v, Redact)
}

// mapStrings applies f to every string in a decoded JSON value, returning a
// new value (maps and slices copied).
func mapStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = mapStrings(e, f)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mapStrings(e, f)
		}
		return out
	}
	return v
}

// redactSecrets replaces, in every text of dec that a client, a log or an
// audit Report receives (violation messages and string details, warnings,
// error messages), the request's Secret data and userInfo.extra values
// (secretValues, plain and base64) by [REDACTED]: a policy cannot hand a
// Secret's content to whoever reads its messages. Nothing is computed
// unless dec has such texts and the request such values.
func redactSecrets(dec *Decision, input ast.Value) {
	if len(dec.Violations) == 0 && len(dec.Warnings) == 0 && len(dec.Errors) == 0 {
		return
	}
	// Every text once, joined: the candidates are searched for once.
	var all strings.Builder
	add := func(s string) string {
		all.WriteString(s)
		all.WriteByte(0)
		return s
	}
	for _, v := range dec.Violations {
		add(v.Message)
		for _, x := range v.Details {
			mapStrings(x, add)
		}
	}
	for _, w := range dec.Warnings {
		add(w)
	}
	for _, e := range dec.Errors {
		add(e.Message)
	}
	r := secretRedactor(input).replacerFor(all.String())
	if r == nil {
		return
	}
	for i := range dec.Violations {
		v := &dec.Violations[i]
		v.Message = r.Replace(v.Message)
		for k, x := range v.Details {
			v.Details[k] = mapStrings(x, r.Replace)
		}
	}
	for i, w := range dec.Warnings {
		dec.Warnings[i] = r.Replace(w)
	}
	for i := range dec.Errors {
		dec.Errors[i].Message = r.Replace(dec.Errors[i].Message)
	}
}

// secretRedactor is the redactor of message texts for input (secretValues
// of at least minRedacted bytes). Decisions (redactSecrets) and Explain's
// firings share it.
func secretRedactor(input ast.Value) *redactor {
	return newRedactor(secretValues(input))
}

// redactedMark replaces a sensitive value in print output.
const redactedMark = "[REDACTED]"

// minRedacted is the length below which a value is not redacted: a
// two-character env value would otherwise blank every occurrence of those
// characters in the output. Secrets as short as "root" and "123456" are
// common in real manifests, so messages use the same minimum.
const minRedacted = 4

// redactor replaces given values, and their base64 encodings, by
// redactedMark in texts. A hostile request can carry a hundred thousand
// values (a 3 MiB Secret) while the texts are a few short messages, so it
// never builds one replacer over all of them, nor encodes or decodes a
// value longer than the text: each text first keeps the candidates it
// contains, and only those are replaced.
type redactor struct {
	// plain are values redacted with their base64 encodings; encoded are
	// base64 values (a Secret's data) redacted with what they decode to.
	plain, encoded []string
}

// newRedactor is the redactor of plain and encoded values whose plain form
// is at least minRedacted bytes long.
func newRedactor(plain, encoded []string) *redactor {
	return &redactor{plain: plain, encoded: encoded}
}

// Replace returns s with the values redacted.
func (r *redactor) Replace(s string) string {
	if rep := r.replacerFor(s); rep != nil {
		return rep.Replace(s)
	}
	return s
}

// searchBudget bounds the bytes replacerFor compares when it searches text
// for each candidate (about 10 ms); past it, one replacer over every
// candidate scans text once instead.
const searchBudget = 64 << 20

// replacerFor is a replacer of the candidates text may contain, longer ones
// first (a value containing another is replaced whole), or nil when text
// contains none. For the usual case, a few short messages, it searches
// text for each candidate and keeps those found, encoding or decoding only
// values short enough to be there; when that would cost more than
// searchBudget (many values and long texts), it takes every candidate.
func (r *redactor) replacerFor(text string) *strings.Replacer {
	all := (len(r.plain)+len(r.encoded))*2*len(text) > searchBudget
	var found []string
	try := func(v string) {
		if len(v) >= minRedacted && len(v) <= len(text) && (all || strings.Contains(text, v)) {
			found = append(found, v)
		}
	}
	// tryValue tries a value as written and as quoted inside a printed
	// structure (sprintf %v, print of an object: "a\nb" for a newline),
	// once or twice (a message quoted again in a trace: "a\\nb").
	tryValue := func(v string) {
		try(v)
		forms := []string{v}
		for range 2 {
			var next []string
			for _, f := range forms {
				if len(f) < minRedacted || len(f) > len(text) { // a quoted form is no shorter
					continue
				}
				if q := strconv.Quote(f); len(q)-2 != len(f) {
					next = append(next, q[1:len(q)-1])
				}
				if j, err := json.Marshal(f); err == nil && len(j)-2 != len(f) {
					next = append(next, string(j[1:len(j)-1]))
				}
			}
			for _, f := range next {
				try(f)
			}
			forms = next
		}
	}
	enc := base64.StdEncoding
	for _, v := range r.plain {
		tryValue(v)
		if len(v) >= minRedacted && enc.EncodedLen(len(v)) <= len(text) {
			try(enc.EncodeToString([]byte(v)))
		}
	}
	for _, e := range r.encoded {
		if enc.DecodedLen(len(e)) < minRedacted {
			continue // e and what it decodes to are both shorter than the minimum
		}
		try(e)
		if enc.DecodedLen(len(e))-2 <= len(text) { // padding: up to 2 bytes fewer
			if raw, err := enc.DecodeString(e); err == nil {
				tryValue(string(raw))
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	pairs := make([]string, 0, 2*len(found))
	for _, v := range found {
		pairs = append(pairs, v, redactedMark)
	}
	return strings.NewReplacer(pairs...)
}

// sensitiveRedactor is the redactor of print output and traces for input:
// secretValues, and anywhere in input.request.object and oldObject every
// env entry's value and every annotation's value, of at least minRedacted
// bytes.
func sensitiveRedactor(input ast.Value) *redactor {
	plain, encoded := secretValues(input)
	req := getObject(input, "request")
	for _, key := range []string{"object", "oldObject"} {
		if obj := getObject(req, key); obj != nil {
			plain = walkSensitive(plain, obj)
		}
	}
	return newRedactor(plain, encoded)
}

// secretValues lists what no message may carry either: in
// input.request.object and oldObject, a Secret's data (encoded: the
// redactor decodes them) and stringData; and the values of
// input.request.userInfo.extra (credential IDs, token claims).
func secretValues(input ast.Value) (plain, encoded []string) {
	req := getObject(input, "request")
	if req == nil {
		return nil, nil
	}
	for _, key := range []string{"object", "oldObject"} {
		obj := getObject(req, key)
		if obj == nil {
			continue
		}
		if kind, ok := getValue(obj, "kind").(ast.String); !ok || kind != "Secret" {
			continue
		}
		encoded = appendStrings(encoded, getObject(obj, "data"))
		plain = appendStrings(plain, getObject(obj, "stringData"))
	}
	if extra := getObject(getObject(req, "userInfo"), "extra"); extra != nil {
		extra.Foreach(func(_, v *ast.Term) {
			if arr, ok := v.Value.(*ast.Array); ok {
				arr.Foreach(func(t *ast.Term) {
					if s, ok := t.Value.(ast.String); ok {
						plain = append(plain, string(s))
					}
				})
			}
		})
	}
	return plain, encoded
}

// walkSensitive appends the env values and annotation values anywhere
// under v.
func walkSensitive(out []string, v ast.Value) []string {
	switch x := v.(type) {
	case ast.Object:
		x.Foreach(func(k, val *ast.Term) {
			switch k.Value {
			case ast.String("env"):
				if arr, ok := val.Value.(*ast.Array); ok {
					arr.Foreach(func(e *ast.Term) {
						if s, ok := getValue(e.Value, "value").(ast.String); ok {
							out = append(out, string(s))
						}
					})
				}
			case ast.String("annotations"):
				if obj, ok := val.Value.(ast.Object); ok {
					out = appendStrings(out, obj)
				}
			}
			out = walkSensitive(out, val.Value)
		})
	case *ast.Array:
		x.Foreach(func(e *ast.Term) { out = walkSensitive(out, e.Value) })
	}
	return out
}

// appendStrings appends obj's string values.
func appendStrings(out []string, obj ast.Object) []string {
	if obj == nil {
		return out
	}
	obj.Foreach(func(_, v *ast.Term) {
		if s, ok := v.Value.(ast.String); ok {
			out = append(out, string(s))
		}
	})
	return out
}

// getValue is v[key] when v is an object that has it, else nil.
func getValue(v ast.Value, key string) ast.Value {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil
	}
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return nil
	}
	return t.Value
}

// getObject is v[key] when it is an object, else nil.
func getObject(v ast.Value, key string) ast.Object {
	obj, _ := getValue(v, key).(ast.Object)
	return obj
}
