package review

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/policies/engine"
)

// Options select what Decide runs.
type Options struct {
	// NoMutate skips the mutating policies.
	NoMutate bool
	// Policies restricts evaluation to these policy IDs (all when empty).
	Policies []string
	// Timeout bounds each webhook call, as serve's --eval-timeout bounds
	// each request; 0 means no deadline.
	Timeout time.Duration
	// CheckIdempotent re-runs the mutating policies on their own result
	// and reports, in Outcome.NotIdempotent, each policy whose second pass
	// still changes the object.
	CheckIdempotent bool
}

// Outcome is what the webhooks decided for one request.
type Outcome struct {
	// Mutate is the mutating webhook's decision (nil with NoMutate), and
	// Validate the validating webhook's, on the mutated object.
	Mutate, Validate *engine.Decision
	// MutateRequest and ValidateRequest are the requests the webhooks
	// were sent: ValidateRequest carries the object as mutated
	// (MutateRequest is nil with NoMutate).
	MutateRequest, ValidateRequest *admissionv1.AdmissionRequest
	// NotIdempotent (with CheckIdempotent) has one warning per mutating
	// policy whose second pass, on the mutated object, is not empty.
	NotIdempotent []string
}

// Decide runs req the way the apiserver would: the mutating webhook, then
// the validating webhook on the object as mutated. Both calls are the
// engine's, exactly as the server makes them, each with its own deadline.
// When ctx ends (the user interrupted), it returns ctx's error and no
// outcome: a decision cut short by an interrupt is not a decision.
func Decide(ctx context.Context, eng *engine.Engine, req *admissionv1.AdmissionRequest, opts Options) (*Outcome, error) {
	eopts := engine.Options{Policies: opts.Policies}
	out := &Outcome{}
	if !opts.NoMutate {
		mut, err := evaluate(ctx, eng, engine.Mutating, req, eopts, opts.Timeout)
		if err != nil {
			return nil, err
		}
		out.Mutate, out.MutateRequest = mut, req
		if mut.Object != nil {
			r := *req
			r.Object.Raw = mut.Object
			req = &r
			if opts.CheckIdempotent {
				if out.NotIdempotent, err = secondPass(ctx, eng, req, opts); err != nil {
					return nil, err
				}
			}
		}
	}
	val, err := evaluate(ctx, eng, engine.Validating, req, eopts, opts.Timeout)
	if err != nil {
		return nil, err
	}
	out.Validate, out.ValidateRequest = val, req
	return out, nil
}

func evaluate(ctx context.Context, eng *engine.Engine, phase engine.Phase, req *admissionv1.AdmissionRequest, opts engine.Options, timeout time.Duration) (*engine.Decision, error) {
	cctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	d, err := eng.Evaluate(cctx, phase, req, opts)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return d, err
}

// secondPass runs the mutating policies again on the mutated request (req)
// through the same engine call; when that pass changes the object, each
// policy is run alone on it to name the policies that do and their patch
// paths. Each warning starts with the policy's ID, as the engine's own
// warnings do.
func secondPass(ctx context.Context, eng *engine.Engine, req *admissionv1.AdmissionRequest, opts Options) ([]string, error) {
	again, err := evaluate(ctx, eng, engine.Mutating, req, engine.Options{Policies: opts.Policies}, opts.Timeout)
	if err != nil {
		return nil, err
	}
	if len(again.Patch) == 0 {
		return nil, nil
	}
	ids := slices.Clone(again.Evaluated)
	sort.Strings(ids)
	var out []string
	for _, id := range ids {
		one, err := evaluate(ctx, eng, engine.Mutating, req, engine.Options{Policies: []string{id}}, opts.Timeout)
		if err != nil {
			return nil, err
		}
		if len(one.Patch) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s: mutation is not idempotent: a second pass of %s changes %s", id, id, patchPaths(one.Patch)))
	}
	if len(out) == 0 {
		// Only the policies together change the object again.
		out = append(out, fmt.Sprintf("mutation is not idempotent: a second pass of %s changes %s", strings.Join(ids, ", "), patchPaths(again.Patch)))
	}
	return out, nil
}

// patchPaths lists a patch's operations as "op path", in order.
func patchPaths(patch []jsonpatch.Operation) string {
	parts := make([]string, 0, len(patch))
	for _, op := range patch {
		parts = append(parts, op.Operation+" "+op.Path)
	}
	return strings.Join(parts, ", ")
}
