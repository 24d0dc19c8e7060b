package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
)

// Phase selects which policies a call evaluates: the mutating webhook runs
// the mutating policies, the validating webhook the validating ones.
type Phase = Kind

// Outcome of one policy's evaluation, as counted by an Observer.
const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
	OutcomeWarned  = "warned"
	OutcomeAudited = "audited"
	OutcomeMutated = "mutated"
	OutcomeError   = "error"
	OutcomeTimeout = "timeout"
	// OutcomeSkipped counts policies not evaluated because the deadline had
	// already passed (an earlier policy used up the time).
	OutcomeSkipped = "skipped"
)

// Observer receives one call per evaluated policy. Implementations must be
// safe for concurrent use (the server exports them as Prometheus metrics).
type Observer interface {
	ObservePolicy(policy string, phase Phase, outcome string, took time.Duration)
}

// Violation is one deny entry of a policy.
type Violation struct {
	// Policy is the ID of the policy that produced it.
	Policy string `json:"policy"`
	// Enforcement is the policy's effective enforcement: whether this
	// violation rejects the request (deny) or not (warn, audit).
	Enforcement Enforcement `json:"enforcement"`
	// Message is the entry's msg.
	Message string `json:"message"`
	// Details are the entry's other fields (e.g. check), if any.
	Details map[string]any `json:"details,omitempty"`
}

// PolicyError records a policy that could not be evaluated.
type PolicyError struct {
	Policy      string      `json:"policy"`
	FailureMode FailureMode `json:"failureMode"`
	TimedOut    bool        `json:"timedOut"`
	// Skipped is true when the policy was never started because the
	// deadline had passed: the policy that used up the time is the one with
	// TimedOut set.
	Skipped bool `json:"skipped"`
	// Code classifies the error: OPA's error code (eval_builtin_error,
	// eval_conflict_error, eval_type_error, eval_cancel_error...) or one of
	// the engine's (CodeInvalidOutput, CodeInvalidEdit, CodeNotEvaluated).
	Code string `json:"code"`
	// Message says what failed without object contents: for OPA errors its
	// message with the operands it quotes cut out (see errorMessage), for
	// the engine's own a fixed text. Safe for responses and logs.
	Message string `json:"message"`
	// File and Row locate the failing expression in the policy's source
	// (for errors without a location: the policy's package declaration).
	File string `json:"file,omitempty"`
	Row  int    `json:"row,omitempty"`
	// Err is the underlying error, for debugging only: it is never sent back
	// to the client nor logged, as evaluation errors may quote input.
	Err error `json:"-"`
}

// Location is "file:row", or "" when unknown.
func (e PolicyError) Location() string {
	if e.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d", e.File, e.Row)
}

// errNotEvaluated marks a policy skipped because the deadline had passed.
var errNotEvaluated = errors.New("not evaluated")

// Decision is the engine's answer for one request in one phase.
type Decision struct {
	// Allowed is false when any violation has enforcement deny.
	Allowed bool
	// Exempt is true when the namespace is exempt and nothing was evaluated.
	Exempt bool
	// Violations lists every deny entry, whatever its enforcement, then the
	// policy's audit entries (enforcement audit), ordered by policy, each
	// group by message.
	Violations []Violation
	// Warnings go back to the client as AdmissionResponse.warnings.
	Warnings []string
	// Errors lists the policies that could not be evaluated.
	Errors []PolicyError
	// Evaluated lists the IDs of the policies that ran.
	Evaluated []string
	// Patch is the JSON patch from the request's object to Object (mutating phase).
	Patch []jsonpatch.Operation
	// Object is the mutated object, or nil when nothing changed. Decisions
	// served from a decision cache do not keep it (the server uses Patch).
	Object []byte
}

// Message is the text the apiserver shows for a denied request.
func (d *Decision) Message() string {
	var msg string
	for _, v := range d.Violations {
		if v.Enforcement != EnforceDeny {
			continue
		}
		if msg != "" {
			msg += "; "
		}
		msg += "[" + v.Policy + "] " + v.Message
	}
	return msg
}

// DeniedBy returns the sorted IDs of the policies whose violations have the
// given enforcement.
func (d *Decision) DeniedBy(e Enforcement) []string {
	seen := map[string]bool{}
	var ids []string
	for _, v := range d.Violations {
		if v.Enforcement == e && !seen[v.Policy] {
			seen[v.Policy] = true
			ids = append(ids, v.Policy)
		}
	}
	sort.Strings(ids)
	return ids
}

// Options restrict an evaluation.
type Options struct {
	// Policies, when not empty, restricts evaluation to these policy IDs.
	Policies []string
	// NoCache bypasses the decision cache (neither read nor written): the
	// background audit's one-off requests would evict admission decisions.
	NoCache bool
}

// Engine evaluates requests against the current Registry. The registry is
// swapped atomically on reload; an evaluation uses the one it started with.
type Engine struct {
	state        atomic.Pointer[engineState]
	observer     Observer
	cacheEntries int
	cacheBytes   int64
	namespaces   NamespaceLabeler
	// Parallel evaluation (see groups): the object size from which a
	// validating request may be split (0: never), GOMAXPROCS at New, the
	// evaluations in flight and the extra goroutines they use.
	parallelMinBytes int
	procs            int32
	busy, extra      atomic.Int32
}

// NamespaceLabeler returns the labels of a namespace (the server: a
// namespace informer; the CLI: --namespace-labels or the cluster). An error
// (the namespace cannot be looked up) fails the evaluation: a decision is
// never made on labels that could not be read.
type NamespaceLabeler interface {
	NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error)
}

// WithNamespaceLabels makes the labels of the request's namespace visible to
// policies as input.namespace ({"name": ..., "labels": {...}}) on every
// namespaced request. They are part of the decision-cache key.
func WithNamespaceLabels(l NamespaceLabeler) EngineOption {
	return func(e *Engine) { e.namespaces = l }
}

// engineState is a registry and its decision cache: a reload replaces both,
// so no decision of an old policy set is ever served by the new one.
type engineState struct {
	reg   *Registry
	cache *decisionCache // nil: no caching
}

// EngineOption configures an Engine.
type EngineOption func(*Engine)

// WithDecisionCache caches up to entries decisions (and about maxBytes of
// them) per policy set; entries <= 0 disables the cache. See cacheKey for
// what a cached decision is keyed by. Only a server should cache: decisions
// served from the cache are shared and must not be modified.
func WithDecisionCache(entries int, maxBytes int64) EngineOption {
	return func(e *Engine) { e.cacheEntries, e.cacheBytes = entries, maxBytes }
}

// WithParallelism lets a validating request whose object is at least
// minBytes long be evaluated in several combined queries at once, on the
// cores no other evaluation is using (at most 4, and never more than
// GOMAXPROCS in all); minBytes <= 0 never splits. Decisions are the same
// either way. It shortens the latency of large requests on a server with
// idle cores; a saturated server evaluates every request in one query.
func WithParallelism(minBytes int) EngineOption {
	return func(e *Engine) { e.parallelMinBytes = minBytes }
}

// New returns an Engine serving reg. observer may be nil.
func New(reg *Registry, observer Observer, opts ...EngineOption) *Engine {
	e := &Engine{observer: observer, procs: int32(runtime.GOMAXPROCS(0))}
	for _, o := range opts {
		o(e)
	}
	e.Swap(reg)
	return e
}

// Registry returns the registry in use.
func (e *Engine) Registry() *Registry { return e.state.Load().reg }

// Swap replaces the registry (and starts a new, empty decision cache);
// evaluations already running finish on the old one.
func (e *Engine) Swap(reg *Registry) {
	st := &engineState{reg: reg}
	if reg.cacheable {
		st.cache = newDecisionCache(e.cacheEntries, e.cacheBytes)
	}
	e.state.Store(st)
}

// ErrorObserver is implemented by observers that count the policies that
// could not be evaluated, by PolicyError.Code.
type ErrorObserver interface {
	ObservePolicyError(policy string, phase Phase, code string)
}

// CacheObserver is implemented by observers that count decision-cache hits
// and misses.
type CacheObserver interface {
	ObserveCache(phase Phase, hit bool)
}

// Evaluate runs the phase's policies on req. Violations are results; an error
// is returned only for a request that cannot be evaluated at all. ctx bounds
// the evaluation: when its deadline passes, running policies are cancelled
// and handled by their failure mode. The Decision must not be modified: with
// a decision cache it may be shared with other requests.
func (e *Engine) Evaluate(ctx context.Context, phase Phase, req *admissionv1.AdmissionRequest, opts Options) (*Decision, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: no request", ErrBadRequest)
	}
	st := e.state.Load()
	reg := st.reg
	dec := &Decision{Allowed: true}
	if reg.namespaceExempt(req.Namespace) {
		dec.Exempt = true
		return dec, nil
	}
	selected := reg.selectPolicies(phase, req.Resource.Resource, req.SubResource, opts)
	if len(selected) == 0 {
		return dec, nil
	}
	small, err := smallRequestJSON(req)
	if err != nil {
		return nil, err
	}
	nsJSON, err := e.namespaceJSON(ctx, req.Namespace)
	if err != nil {
		return nil, err
	}
	var key cacheKey
	useCache := false
	if st.cache != nil && !opts.NoCache {
		key, useCache = requestKey(phase, req, small, nsJSON, opts)
	}
	if useCache {
		cached, hit := st.cache.get(key)
		if co, ok := e.observer.(CacheObserver); ok {
			co.ObserveCache(phase, hit)
		}
		if hit {
			return cached, nil
		}
	}
	input, err := toInputFrom(req, small, nsJSON)
	if err != nil {
		return nil, err
	}
	e.busy.Add(1)
	err = e.evaluate(ctx, reg, phase, req, selected, input, dec)
	e.busy.Add(-1)
	if err != nil {
		return nil, err
	}
	redactSecrets(dec, input)
	if useCache && cacheable(dec, string(req.UID)) {
		st.cache.put(key, dec)
	}
	return dec, nil
}

// namespaceJSON is input.namespace encoded, or nil when there is none (no
// labeler, or a cluster-scoped request).
func (e *Engine) namespaceJSON(ctx context.Context, namespace string) ([]byte, error) {
	if e.namespaces == nil || namespace == "" {
		return nil, nil
	}
	labels, err := e.namespaces.NamespaceLabels(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("labels of namespace %q: %w", namespace, err)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	// encoding/json sorts map keys: equal labels encode (and hash) equally.
	b, err := json.Marshal(struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}{namespace, labels})
	if err != nil {
		return nil, fmt.Errorf("encode namespace %q: %w", namespace, err)
	}
	return b, nil
}

// evaluate runs the selected policies on input into dec, in ID order. They
// are evaluated together in one query when they can be (see policySet), or
// in a few such queries at once on idle cores (see groups); after the
// policy where a query stopped (failed or timed out), or after a mutating
// policy changed the object, the rest are evaluated one by one, each
// mutating policy seeing the object as the previous one left it.
func (e *Engine) evaluate(ctx context.Context, reg *Registry, phase Phase, req *admissionv1.AdmissionRequest, selected []*Policy, input ast.Value, dec *Decision) error {
	// early[i] is policy i's outcome from a combined query, when it has one.
	early := e.evalSets(ctx, reg, phase, req, selected, input)
	var obj, original map[string]any // the working copy mutating policies edit; the object as received
	changed := false
	for i, p := range selected {
		dec.Evaluated = append(dec.Evaluated, p.ID)
		start := time.Now()
		var res *policyResult
		var err error
		var took time.Duration
		switch {
		case !changed && early != nil && early[i].done:
			res, took, err = early[i].res, early[i].took, early[i].err
		case ctx.Err() != nil:
			// An earlier policy used up the time: say so rather than blame
			// this one with a timeout it never had.
			err = fmt.Errorf("%w: %w", errNotEvaluated, ctx.Err())
		default:
			res, err = p.eval(ctx, input)
		}
		took += time.Since(start)
		outcome := OutcomeAllowed
		if err == nil && p.Kind == Mutating && len(res.edits) > 0 && req.Object.Raw != nil {
			if obj == nil {
				if obj, err = decodeObject(req.Object.Raw); err != nil {
					return err
				}
				original = obj // edits go to copies: this one stays as received
			}
			// Edit a copy: applyEdits keeps only the edits independent of a failed one.
			work := deepCopy(obj).(map[string]any)
			var c bool
			c, err = applyEdits(work, res.edits)
			// A failed edit still keeps the policy's independent edits
			// (applyEdits); the error goes to the failure mode below.
			if c {
				obj = work
				changed = true
				outcome = OutcomeMutated
				// Later policies see the object as this one left it.
				if i < len(selected)-1 {
					v, verr := ast.InterfaceToValue(obj)
					if verr != nil {
						return fmt.Errorf("convert mutated object: %w", verr)
					}
					input = withObject(input, v)
				}
			}
		}
		if err != nil {
			timedOut := ctx.Err() != nil && !errors.Is(err, errNotEvaluated)
			outcome = OutcomeError
			switch {
			case errors.Is(err, errNotEvaluated):
				outcome = OutcomeSkipped
			case timedOut:
				outcome = OutcomeTimeout
			}
			pe := dec.fail(p, err, timedOut)
			if eo, ok := e.observer.(ErrorObserver); ok {
				eo.ObservePolicyError(p.ID, phase, pe.Code)
			}
		} else {
			if o := dec.record(p, res); o != "" {
				outcome = o
			}
		}
		if e.observer != nil {
			e.observer.ObservePolicy(p.ID, phase, outcome, took)
		}
	}
	if changed {
		mutated, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encode mutated object: %w", err)
		}
		if dec.Patch, err = diffPatch(req.Object.Raw, mutated, original); err != nil {
			return err
		}
		if len(dec.Patch) > 0 {
			dec.Object = mutated
		} else {
			dec.Patch = nil
		}
	}
	return nil
}

// selectPolicies returns the phase's policies that apply to resource and
// subResource, in ID order.
func (r *Registry) selectPolicies(phase Phase, resource, subResource string, opts Options) []*Policy {
	var only map[string]bool
	if len(opts.Policies) > 0 {
		only = map[string]bool{}
		for _, id := range opts.Policies {
			only[id] = true
		}
	}
	var out []*Policy
	for _, p := range r.policies {
		if p.Kind != phase || (only != nil && !only[p.ID]) {
			continue
		}
		if !p.AppliesTo(resource, subResource) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// policyResult is a policy's decoded output.
type policyResult struct {
	deny, warn, audit []entry
	edits             []edit
}

type entry struct {
	msg     string
	details map[string]any
}

func (p *Policy) eval(ctx context.Context, input ast.Value) (*policyResult, error) {
	rs, err := p.query.Eval(ctx, p.evalOptions(input)...)
	if err != nil {
		return nil, fmt.Errorf("evaluate policy %q: %w", p.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate policy %q: %w", p.ID, err)
	}
	if len(rs) == 0 {
		return &policyResult{}, nil // entry rules undefined: nothing to say
	}
	return p.decode(func(rule string) (any, bool) {
		v, ok := rs[0].Bindings[rule]
		return v, ok
	})
}

// decode reads the policy's entry rules from a result through binding.
func (p *Policy) decode(binding func(rule string) (any, bool)) (*policyResult, error) {
	res := &policyResult{}
	var err error
	deny, _ := binding(ruleDeny)
	if res.deny, err = decodeEntries(deny); err != nil {
		return nil, fmt.Errorf("%w: policy %q %s: %w", errInvalidOutput, p.ID, ruleDeny, err)
	}
	warn, _ := binding(ruleWarn)
	if res.warn, err = decodeEntries(warn); err != nil {
		return nil, fmt.Errorf("%w: policy %q %s: %w", errInvalidOutput, p.ID, ruleWarn, err)
	}
	audit, _ := binding(ruleAudit)
	if res.audit, err = decodeEntries(audit); err != nil {
		return nil, fmt.Errorf("policy %q %s: %w", p.ID, ruleAudit, err)
	}
	if raw, ok := binding(ruleMutate); ok {
		if res.edits, err = decodeEdits(raw); err != nil {
			return nil, fmt.Errorf("policy %q: %w", p.ID, err)
		}
	}
	return res, nil
}

func decodeEntries(raw any) ([]entry, error) {
	if raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("must be a set of objects, got %T", raw)
	}
	out := make([]entry, 0, len(list))
	for i, item := range list {
		switch v := item.(type) {
		case string: // tolerated: deny contains "message"
			out = append(out, entry{msg: Redact(v)})
		case map[string]any:
			msg, ok := v["msg"].(string)
			if !ok {
				return nil, fmt.Errorf("entry %d has no string msg", i)
			}
			var details map[string]any
			for k, x := range v {
				if k == "msg" {
					continue
				}
				if details == nil {
					details = map[string]any{}
				}
				details[k] = redactValue(x)
			}
			out = append(out, entry{msg: Redact(msg), details: details})
		default:
			return nil, fmt.Errorf("entry %d is a %T, not an object with msg", i, item)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].msg < out[j].msg })
	return out, nil
}

// record adds a policy's result to the decision and returns the outcome to
// count ("" keeps the caller's).
func (d *Decision) record(p *Policy, res *policyResult) string {
	outcome := ""
	for _, en := range res.deny {
		d.Violations = append(d.Violations, Violation{Policy: p.ID, Enforcement: p.Enforcement, Message: en.msg, Details: en.details})
		// Everything a client or log sees of the entry is already redacted:
		// decodeEntries applies Redact to msg and details.
		switch p.Enforcement {
		case EnforceDeny:
			d.Allowed = false
			outcome = OutcomeDenied
		case EnforceWarn:
			d.Warnings = append(d.Warnings, p.ID+": "+en.msg)
			if outcome == "" {
				outcome = OutcomeWarned
			}
		case EnforceAudit:
			if outcome == "" {
				outcome = OutcomeAudited
			}
		}
	}
	for _, en := range res.warn {
		d.Warnings = append(d.Warnings, p.ID+": "+en.msg)
		if outcome == "" {
			outcome = OutcomeWarned
		}
	}
	// audit entries are violations recorded for the audit trail (the
	// audited-by annotation, reports) whatever the policy's enforcement:
	// they never reject and never warn.
	for _, en := range res.audit {
		d.Violations = append(d.Violations, Violation{Policy: p.ID, Enforcement: EnforceAudit, Message: en.msg, Details: en.details})
		if outcome == "" {
			outcome = OutcomeAudited
		}
	}
	return outcome
}

// fail applies the policy's failure mode to an evaluation it could not
// finish, and returns the error it recorded.
func (d *Decision) fail(p *Policy, err error, timedOut bool) PolicyError {
	skipped := errors.Is(err, errNotEvaluated)
	pe := newPolicyError(p, err, timedOut, skipped)
	d.Errors = append(d.Errors, pe)
	what := "could not be evaluated"
	switch {
	case skipped:
		what = "was not evaluated: the deadline had passed"
	case timedOut:
		what = "timed out"
	case errors.Is(err, errEdit):
		what = "asked for an edit that cannot be applied"
	default:
		what += ": " + pe.Code
		if loc := pe.Location(); loc != "" {
			what += " at " + loc
		}
		if pe.Message != "" {
			what += ": " + pe.Message
		}
	}
	if p.FailureMode == FailAllow {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s: policy %s; admitted by its failure mode (allow)", p.ID, what))
		return pe
	}
	d.Allowed = false
	d.Violations = append(d.Violations, Violation{
		Policy:      p.ID,
		Enforcement: EnforceDeny,
		Message:     fmt.Sprintf("policy %s; denied by its failure mode (deny)", what),
	})
	return pe
}
