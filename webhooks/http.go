package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// DefaultMaxBodyBytes caps request bodies: pods can be large, but etcd
// refuses objects over ~1.5 MiB, and an AdmissionReview carries at most two.
const DefaultMaxBodyBytes = 3 << 20

// admissionReviewVersion is the only AdmissionReview version served.
var admissionReviewGVK = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")

// Webhook serves one admission path over HTTP. Unlike controller-runtime's
// admission.Webhook it answers malformed requests with real HTTP status codes
// (400, 413, 415), so the apiserver applies the webhook's failurePolicy, and
// it recovers panics into a 500 carrying the request UID.
type Webhook struct {
	// Handler decides.
	Handler admission.Handler
	// MaxBodyBytes caps the body (0: DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Log receives request errors (never bodies).
	Log *zap.Logger
	// Metrics, if set, counts panics and malformed requests.
	Metrics *Metrics
	// Phase labels metrics.
	Phase string
	// Limiter, if set, caps concurrent evaluations (shared by all paths);
	// a request that gets no slot in time is answered 429. Admission, when
	// set, replaces it.
	Limiter *Limiter
	// Admission, if set, sorts requests into lanes by body size, each with
	// a byte budget taken before the body is read and its own evaluation
	// slots (shared by all paths); a request that gets neither in time is
	// answered 429.
	Admission *Admission
}

// ServeHTTP implements http.Handler.
func (wh *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		wh.fail(w, "", http.StatusMethodNotAllowed, errors.New("only POST is allowed"))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		wh.fail(w, "", http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: expected application/json", r.Header.Get("Content-Type")))
		return
	}
	limit := wh.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	tooLarge := func() {
		wh.fail(w, "", http.StatusRequestEntityTooLarge, fmt.Errorf("request body exceeds %d bytes", limit))
	}
	if r.ContentLength > limit {
		tooLarge() // refused before a byte of it is read
		return
	}
	// One wait for bytes and slot together: at most the queue wait, and a
	// quarter of the apiserver's own timeout. (A chunked body's later steps
	// may wait until the deadline too.)
	wait := DefaultQueueWait
	if wh.Admission != nil {
		wait = wh.Admission.wait
	} else if wh.Limiter != nil {
		wait = wh.Limiter.wait
	}
	if budget, _ := time.ParseDuration(r.URL.Query().Get("timeout")); budget > 0 && budget/4 < wait {
		wait = budget / 4
	}
	start := time.Now()
	deadline := start.Add(wait)
	slotWait := wait // less what the bytes took; reading and decoding are not waiting
	slots := wh.Limiter
	lane := ""
	bodyReader := io.Reader(r.Body)
	if wh.Admission != nil {
		l := wh.Admission.Lane(r.ContentLength)
		lane, slots = l.Name(), l.Slots()
		ticket, err := l.Reserve(r.Context(), r.ContentLength, deadline)
		if err != nil {
			wh.overloaded(w, "", lane, "bytes", err)
			return
		}
		defer ticket.Release()
		slotWait -= time.Since(start).Round(time.Millisecond)
		if r.ContentLength < 0 {
			bodyReader = ticket.Reader(r.Body)
		}
	}
	body, err := readBody(http.MaxBytesReader(w, io.NopCloser(bodyReader), limit), r.ContentLength)
	if err != nil {
		var maxErr *http.MaxBytesError
		switch {
		case errors.As(err, &maxErr):
			tooLarge()
		case errors.Is(err, ErrBodyBudget):
			wh.overloaded(w, "", lane, "bytes", err)
		default:
			wh.fail(w, "", http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		}
		return
	}
	review, err := DecodeReview(body)
	if err != nil {
		uid := types.UID("")
		if review != nil && review.Request != nil {
			uid = review.Request.UID
		}
		wh.fail(w, uid, http.StatusBadRequest, err)
		return
	}
	req := admission.Request{AdmissionRequest: *review.Request}
	if slots != nil {
		release, err := slots.Acquire(r.Context(), max(slotWait, time.Nanosecond))
		if err != nil {
			wh.overloaded(w, req.UID, lane, "slots", err)
			return
		}
		defer release()
	}
	resp, panicked := wh.handle(r, req)
	if panicked {
		wh.fail(w, req.UID, http.StatusInternalServerError, errors.New("internal error"))
		return
	}
	if err := resp.Complete(req); err != nil {
		wh.fail(w, req.UID, http.StatusInternalServerError, fmt.Errorf("encode patch: %w", err))
		return
	}
	writeReview(w, http.StatusOK, &resp.AdmissionResponse)
}

// readBody reads the whole body; with a known length into one buffer of
// that size (io.ReadAll would grow by doubling, up to twice the garbage).
func readBody(r io.Reader, contentLength int64) ([]byte, error) {
	if contentLength < 0 {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, contentLength+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// overloaded answers 429 with Retry-After and counts the refusal by lane and
// by what was missing (bytes or slots).
func (wh *Webhook) overloaded(w http.ResponseWriter, uid types.UID, lane, reason string, err error) {
	if wh.Metrics != nil && lane != "" {
		wh.Metrics.Overload.WithLabelValues(lane, reason).Inc()
	}
	w.Header().Set("Retry-After", "1")
	wh.fail(w, uid, http.StatusTooManyRequests, err)
}

// handle calls the handler, turning a panic into a flag (logged with the
// stack, counted) so the next request is served normally.
func (wh *Webhook) handle(r *http.Request, req admission.Request) (resp admission.Response, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			if wh.Metrics != nil {
				wh.Metrics.Panics.WithLabelValues(wh.Phase).Inc()
			}
			if wh.Log != nil {
				// The panic value is not logged: it may quote the object.
				wh.Log.Error("recovered panic in admission handler", zap.String("uid", string(req.UID)),
					zap.String("panicType", fmt.Sprintf("%T", p)), zap.ByteString("stack", debug.Stack()))
			}
		}
	}()
	ctx := r.Context()
	// The apiserver sends its webhook timeout as ?timeout=10s; stop a little
	// before it so the answer (even a failure) arrives in time.
	if d, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d*9/10)
		defer cancel()
	}
	return wh.Handler.Handle(ctx, req), false
}

// fail answers with a non-200 status and, when the UID is known, an
// AdmissionReview naming it so the failure can be traced.
func (wh *Webhook) fail(w http.ResponseWriter, uid types.UID, code int, err error) {
	if wh.Metrics != nil {
		wh.Metrics.BadRequests.WithLabelValues(wh.Phase, fmt.Sprint(code)).Inc()
	}
	if wh.Log != nil {
		wh.Log.Info("rejected admission request", zap.String("uid", string(uid)), zap.Int("code", code), zap.String("reason", err.Error()))
	}
	writeReview(w, code, &admissionv1.AdmissionResponse{
		UID:     uid,
		Allowed: false,
		Result:  &metav1.Status{Code: int32(code), Message: err.Error()},
	})
}

func writeReview(w http.ResponseWriter, code int, resp *admissionv1.AdmissionResponse) {
	out := admissionv1.AdmissionReview{Response: resp}
	out.SetGroupVersionKind(admissionReviewGVK)
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// knownOperations are the operations of admission.k8s.io/v1
// (https://kubernetes.io/docs/reference/config-api/apiserver-admission.v1/#admission-k8s-io-v1-Operation).
var knownOperations = map[admissionv1.Operation]bool{
	admissionv1.Create: true, admissionv1.Update: true, admissionv1.Delete: true, admissionv1.Connect: true,
}

// DecodeReview decodes an AdmissionReview v1 request body and checks what
// the engine relies on: the version, a request, a UID, a known operation, and the object fields
// being JSON objects or null. Errors never quote the body.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("request body is empty")
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("decode AdmissionReview: %w", sanitizeJSONError(err))
	}
	if gvk := review.GroupVersionKind(); gvk != admissionReviewGVK {
		return &review, fmt.Errorf("unsupported %q %q: only admission.k8s.io/v1 AdmissionReview is served", review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return &review, errors.New("AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return &review, errors.New("AdmissionReview request has no uid")
	}
	for name, raw := range map[string][]byte{"object": review.Request.Object.Raw, "oldObject": review.Request.OldObject.Raw} {
		trimmed := bytes.TrimSpace(raw)
		if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
			continue
		}
		if trimmed[0] != '{' {
			return &review, fmt.Errorf("request.%s must be a JSON object or null", name)
		}
	}
	if !knownOperations[review.Request.Operation] {
		// Policies branch on the operation (is_create_or_update): one they
		// do not know would skip their checks and be allowed. Quoted
		// clipped: it is free text from the client.
		return &review, fmt.Errorf("unknown operation %.32q: must be CREATE, UPDATE, DELETE or CONNECT", review.Request.Operation)
	}
	return &review, nil
}

// sanitizeJSONError keeps the position and type of a JSON error but not the
// offending value, which may be secret.
func sanitizeJSONError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Errorf("field %q: unexpected JSON %s", ute.Field, ute.Value)
	}
	return errors.New("invalid JSON")
}
