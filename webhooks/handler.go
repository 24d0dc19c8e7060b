package webhooks

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/portcullis/portcullis/policies/engine"
)

// Evaluator is the part of the engine a handler needs.
type Evaluator interface {
	Evaluate(ctx context.Context, phase engine.Phase, req *admissionv1.AdmissionRequest, opts engine.Options) (*engine.Decision, error)
}

// Audit annotation keys (the apiserver prefixes them with the webhook name).
const (
	AuditDeniedBy  = "denied-by"
	AuditWarnedBy  = "warned-by"
	AuditAuditedBy = "audited-by"
	AuditFailed    = "failed-policies"
)

// Handler is a controller-runtime admission.Handler for one phase: it calls
// the engine with a deadline and maps the decision. Nothing else.
type Handler struct {
	// Engine decides.
	Engine Evaluator
	// Phase is validating (/validate) or mutating (/mutate).
	Phase engine.Phase
	// Timeout bounds evaluation; it must stay below the webhook's timeoutSeconds.
	Timeout time.Duration
	// Log receives one decision-log line per request (nil: no log).
	Log *zap.Logger
	// Metrics, if set, counts requests.
	Metrics *Metrics
}

var _ admission.Handler = (*Handler)(nil)

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	dec, err := h.Engine.Evaluate(ctx, h.Phase, &req.AdmissionRequest, engine.Options{})
	resp := h.respond(dec, err)
	h.logDecision(&req.AdmissionRequest, dec, err, resp, time.Since(start))
	if h.Metrics != nil {
		h.Metrics.observeRequest(h.Phase, resp, time.Since(start))
	}
	return resp
}

// respond maps an engine decision (or error) to an admission response.
func (h *Handler) respond(dec *engine.Decision, err error) admission.Response {
	if err != nil {
		if errors.Is(err, engine.ErrBadRequest) {
			return admission.Errored(http.StatusBadRequest, err)
		}
		return admission.Errored(http.StatusInternalServerError, errors.New("internal error evaluating policies"))
	}
	var resp admission.Response
	switch {
	case !dec.Allowed:
		resp = admission.Denied(dec.Message())
		resp.Result.Reason = metav1.StatusReasonForbidden
	case len(dec.Patch) > 0:
		pt := admissionv1.PatchTypeJSONPatch
		resp = admission.Response{
			Patches:           dec.Patch,
			AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, PatchType: &pt},
		}
	default:
		resp = admission.Allowed("")
	}
	resp.Warnings = dec.Warnings
	resp.AuditAnnotations = auditAnnotations(dec)
	return resp
}

func auditAnnotations(dec *engine.Decision) map[string]string {
	ann := map[string]string{}
	add := func(key string, ids []string) {
		if len(ids) > 0 {
			ann[key] = strings.Join(ids, ",")
		}
	}
	add(AuditDeniedBy, dec.DeniedBy(engine.EnforceDeny))
	add(AuditWarnedBy, dec.DeniedBy(engine.EnforceWarn))
	add(AuditAuditedBy, dec.DeniedBy(engine.EnforceAudit))
	var failed []string
	for _, e := range dec.Errors {
		failed = append(failed, e.Policy)
	}
	add(AuditFailed, failed)
	if len(ann) == 0 {
		return nil
	}
	return ann
}

// logDecision writes the decision-log line: identities, outcome and policy
// IDs only. Never the object, messages that may quote it, or userInfo.extra.
func (h *Handler) logDecision(req *admissionv1.AdmissionRequest, dec *engine.Decision, err error, resp admission.Response, took time.Duration) {
	if h.Log == nil {
		return
	}
	fields := []zap.Field{
		zap.String("uid", string(req.UID)),
		zap.String("phase", string(h.Phase)),
		zap.String("operation", string(req.Operation)),
		zap.String("kind", gvkString(req.Kind)),
		zap.String("resource", req.Resource.Resource),
		zap.String("subResource", req.SubResource),
		zap.String("namespace", req.Namespace),
		zap.String("name", req.Name),
		zap.String("user", req.UserInfo.Username),
		zap.Bool("dryRun", req.DryRun != nil && *req.DryRun),
		zap.Bool("allowed", resp.Allowed),
		zap.Duration("duration", took),
	}
	if err != nil {
		// Engine errors are ours (bad request shape, encode failures); they do
		// not carry object contents.
		h.Log.Error("admission error", append(fields, zap.Error(err))...)
		return
	}
	var violations []string
	for _, v := range dec.Violations {
		violations = append(violations, v.Policy+":"+string(v.Enforcement))
	}
	for _, pe := range dec.Errors {
		// pe.Err can quote input: log the cleaned fields only.
		h.Log.Warn("policy evaluation failed", zap.String("uid", string(req.UID)), zap.String("policy", pe.Policy),
			zap.String("code", pe.Code), zap.String("error", pe.Message), zap.String("location", pe.Location()),
			zap.Bool("timedOut", pe.TimedOut), zap.String("failureMode", string(pe.FailureMode)))
	}
	fields = append(fields,
		zap.Strings("violations", dedupe(violations)),
		zap.Strings("policies", dec.Evaluated),
		zap.Int("patchOps", len(dec.Patch)),
		zap.Int("warnings", len(dec.Warnings)),
		zap.Bool("exempt", dec.Exempt),
	)
	h.Log.Info("admission decision", fields...)
}

func gvkString(k metav1.GroupVersionKind) string {
	if k.Group == "" {
		return k.Version + "/" + k.Kind
	}
	return k.Group + "/" + k.Version + "/" + k.Kind
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
