package engine

import (
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/topdown"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrLoad marks a policy set or configuration that cannot be loaded:
	// parse or compile errors, bad METADATA, duplicate IDs, bad config.
	ErrLoad = errors.New("load policies")
	// ErrBadRequest marks an AdmissionRequest the engine cannot evaluate
	// (missing fields, an object that is not JSON).
	ErrBadRequest = errors.New("bad admission request")
)

// Codes of PolicyError for failures the engine detects itself (OPA's own
// errors keep OPA's code).
const (
	// CodeInvalidOutput: a deny or warn entry is not an object with a string msg.
	CodeInvalidOutput = "invalid_output"
	// CodeInvalidEdit: a mutate entry is malformed or cannot be applied.
	CodeInvalidEdit = "invalid_edit"
	// CodeNotEvaluated: the deadline passed before the policy started.
	CodeNotEvaluated = "not_evaluated"
	// CodeTimeout: the deadline passed while the policy was running.
	CodeTimeout = "timeout"
	// CodeEvaluation: any other evaluation failure.
	CodeEvaluation = "evaluation_error"
)

// newPolicyError classifies err for the decision, the response and the
// logs. Only OPA's code, location and a cleaned message are kept; texts the
// engine wrote itself around input (edit paths, entry values) are replaced
// by a fixed description of the class.
func newPolicyError(p *Policy, err error, timedOut, skipped bool) PolicyError {
	pe := PolicyError{Policy: p.ID, FailureMode: p.FailureMode, TimedOut: timedOut, Skipped: skipped, Err: err, File: p.File, Row: p.Row}
	var te *topdown.Error
	switch {
	case skipped:
		pe.Code, pe.Message = CodeNotEvaluated, "the deadline had passed before the policy started"
	case timedOut:
		pe.Code, pe.Message = CodeTimeout, "the deadline passed during evaluation"
	case errors.Is(err, errEdit):
		pe.Code, pe.Message = CodeInvalidEdit, "a mutate entry is malformed or cannot be applied"
	case errors.Is(err, errInvalidOutput):
		pe.Code, pe.Message = CodeInvalidOutput, "a deny or warn entry is not an object with a string msg"
	case errors.As(err, &te):
		pe.Code, pe.Message = te.Code, errorMessage(te.Message)
		if te.Location != nil && te.Location.File != "" {
			pe.File, pe.Row = te.Location.File, te.Location.Row
		}
	default:
		pe.Code, pe.Message = CodeEvaluation, "the policy could not be evaluated"
	}
	return pe
}

// errInvalidOutput marks entry rules whose values the engine cannot decode.
var errInvalidOutput = errors.New("invalid policy output")

// quoted matches the operands OPA's and Go's error messages quote: "…" (Go's
// %q, with escapes), `…` and '…'. Built-in errors quote their operands (e.g.
// to_number: strconv.ParseFloat: parsing "<the input>": invalid syntax), and
// the operands are often input.
var quoted = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`|'(?:[^'\\\\]|\\\\.)*'")

// longToken matches runs of 24 or more characters without a space: long
// operands printed unquoted (numbers, base64, hashes).
var longToken = regexp.MustCompile(`[^\s:;,()]{24,}`)

// maxErrorMessage bounds an error message in bytes.
const maxErrorMessage = 200

// errorMessage removes what an OPA error message may quote of the input:
// quoted operands become "…", long unquoted tokens are cut, and the whole is
// clipped; only the first line is kept. The built-in's name and the kind of failure remain, e.g.
// `to_number: strconv.ParseFloat: parsing "…": invalid syntax`.
func errorMessage(msg string) string {
	// Further lines give details (a conflict's values and their locations).
	msg, _, _ = strings.Cut(msg, "\n")
	msg = strings.TrimSuffix(strings.TrimSpace(msg), ":")
	msg = quoted.ReplaceAllStringFunc(msg, func(q string) string { return q[:1] + "…" + q[len(q)-1:] })
	msg = longToken.ReplaceAllStringFunc(msg, func(tok string) string {
		if strings.HasPrefix(tok, "data.") {
			return tok // a rule's path (conflict errors): the policy's, not input
		}
		return "…"
	})
	return clip(Redact(strings.TrimSpace(msg)), maxErrorMessage)
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
