package engine

import (
	"regexp"
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

// minRedactedInMessage is the shortest Secret or userInfo.extra value
// redactSecrets takes out of a message: shorter ones ("true", "8080") are
// too likely to be a legitimate part of a message.
const minRedactedInMessage = 8

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
	values := secretValues(input)
	if len(values) == 0 {
		return
	}
	r := newRedactor(values, minRedactedInMessage)
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
