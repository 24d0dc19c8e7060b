package review

import (
	"context"
	"time"

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
