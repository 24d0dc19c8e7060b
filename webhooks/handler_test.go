package webhooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/portcullis/portcullis/policies/engine"
)

// canary is planted in env values, Secret data, annotations and
// userInfo.extra of the testdata reviews; it must never come back out.
const canary = "CANARY-SECRET-1234"

var canaryBase64 = base64.StdEncoding.EncodeToString([]byte(canary))

// fixturePolicies is the handler tests' policy set as a MapFS, so tests can
// add modules to it.
func fixturePolicies(t testing.TB, extra map[string]string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	root := filepath.Join("testdata", "policies")
	err := fs.WalkDir(os.DirFS(root), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return err
		}
		fsys[name] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range extra {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return fsys
}

func newEngine(t testing.TB, fsys fs.FS, configs ...[]byte) *engine.Engine {
	t.Helper()
	reg, err := engine.Load(context.Background(), engine.Source{Policies: fsys, Configs: configs})
	if err != nil {
		t.Fatalf("load policies: %v", err)
	}
	return engine.New(reg, nil)
}

// webhook wires a Webhook the way serve does.
func webhook(eng Evaluator, phase engine.Phase, log *zap.Logger, m *Metrics) *Webhook {
	if log == nil {
		log = zap.NewNop()
	}
	return &Webhook{
		Handler:      &Handler{Engine: eng, Phase: phase, Timeout: 2 * time.Second, Log: log.Named("decision"), Metrics: m},
		MaxBodyBytes: DefaultMaxBodyBytes,
		Log:          log.Named("webhook"),
		Metrics:      m,
		Phase:        string(phase),
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(h http.Handler, body []byte) *httptest.ResponseRecorder {
	return do(h, http.MethodPost, "/validate", "application/json", body)
}

func do(h http.Handler, method, target, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// decodeResponse checks the envelope every answer shares and returns the response.
func decodeResponse(t testing.TB, rec *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, rec.Body)
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" {
		t.Errorf("answered as %q %q", review.APIVersion, review.Kind)
	}
	if review.Request != nil || review.Response == nil {
		t.Fatalf("request %v, response %v", review.Request, review.Response)
	}
	return review.Response
}

func requestUID(t testing.TB, body []byte) string {
	t.Helper()
	var r struct {
		Request *struct {
			UID string `json:"uid"`
		} `json:"request"`
	}
	_ = json.Unmarshal(body, &r)
	if r.Request == nil {
		return ""
	}
	return r.Request.UID
}

func TestWebhookDecisions(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, fixturePolicies(t, nil))
	tests := map[string]struct {
		file        string
		phase       engine.Phase
		allowed     bool
		code        int32
		message     string
		warnings    []string
		annotations map[string]string
		patch       string
	}{
		"allowed": {
			file: "pod-allowed.json", phase: engine.Validating, allowed: true, code: 200,
		},
		"denied": {
			file: "pod-privileged.json", phase: engine.Validating, code: 403,
			message:     `[no_privileged] container "app" must not be privileged`,
			annotations: map[string]string{AuditDeniedBy: "no_privileged"},
		},
		"warned": {
			file: "pod-latest.json", phase: engine.Validating, allowed: true, code: 200,
			warnings:    []string{`latest_tag: container "app" uses the latest tag`},
			annotations: map[string]string{AuditWarnedBy: "latest_tag"},
		},
		"denied and warned": {
			file: "pod-canary.json", phase: engine.Validating, code: 403,
			message:     `[no_privileged] container "app" must not be privileged`,
			warnings:    []string{`latest_tag: container "app" uses the latest tag`},
			annotations: map[string]string{AuditDeniedBy: "no_privileged", AuditWarnedBy: "latest_tag"},
		},
		"denied secret": {
			file: "secret-canary.json", phase: engine.Validating, code: 403,
			message:     `[secret_keys] Secret "db" must not carry a "password" key`,
			annotations: map[string]string{AuditDeniedBy: "secret_keys"},
		},
		"patched": {
			file: "pod-allowed.json", phase: engine.Mutating, allowed: true, code: 200,
			patch: `[{"op":"add","path":"/metadata/labels/portcullis.dev~1managed","value":"true"},{"op":"add","path":"/spec/securityContext","value":{"runAsNonRoot":true}}]`,
		},
		"mutating a resource no policy covers": {
			file: "secret-canary.json", phase: engine.Mutating, allowed: true, code: 200,
		},
		"DELETE with object null (validating)": {
			file: "pod-delete.json", phase: engine.Validating, allowed: true, code: 200,
		},
		"DELETE with object null (mutating)": {
			file: "pod-delete.json", phase: engine.Mutating, allowed: true, code: 200,
		},
		"subresource no policy covers (validating)": {
			file: "pod-status-update.json", phase: engine.Validating, allowed: true, code: 200,
		},
		"subresource no policy covers (mutating)": {
			file: "pod-status-update.json", phase: engine.Mutating, allowed: true, code: 200,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := readTestdata(t, tc.file)
			rec := post(webhook(eng, tc.phase, nil, nil), body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			resp := decodeResponse(t, rec)
			if got, want := string(resp.UID), requestUID(t, body); got != want || got == "" {
				t.Errorf("uid = %q, want %q", got, want)
			}
			if resp.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v", resp.Allowed, tc.allowed)
			}
			if resp.Result == nil {
				t.Fatal("no result")
			}
			if resp.Result.Code != tc.code || resp.Result.Message != tc.message {
				t.Errorf("result = %d %q, want %d %q", resp.Result.Code, resp.Result.Message, tc.code, tc.message)
			}
			if !tc.allowed && resp.Result.Reason != "Forbidden" {
				t.Errorf("reason = %q, want Forbidden", resp.Result.Reason)
			}
			if !reflect.DeepEqual(resp.Warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", resp.Warnings, tc.warnings)
			}
			if !reflect.DeepEqual(resp.AuditAnnotations, tc.annotations) {
				t.Errorf("auditAnnotations = %v, want %v", resp.AuditAnnotations, tc.annotations)
			}
			if tc.patch == "" {
				if resp.Patch != nil || resp.PatchType != nil {
					t.Errorf("unexpected patch %s", resp.Patch)
				}
				return
			}
			if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Errorf("patchType = %v", resp.PatchType)
			}
			if string(resp.Patch) != tc.patch {
				t.Errorf("patch:\n got %s\nwant %s", resp.Patch, tc.patch)
			}
			// On the wire the patch is base64 (a []byte field).
			wire := fmt.Sprintf(`"patch":%q`, base64.StdEncoding.EncodeToString([]byte(tc.patch)))
			if !strings.Contains(rec.Body.String(), wire) {
				t.Errorf("body does not carry the base64 patch %s:\n%s", wire, rec.Body)
			}
		})
	}
}

func TestWebhookBadRequests(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, fixturePolicies(t, nil))
	allowed := readTestdata(t, "pod-allowed.json")
	allowedUID := requestUID(t, allowed)
	deep := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":` + strings.Repeat("[", 100000))
	tests := map[string]struct {
		method, contentType string
		body                []byte
		maxBody             int64
		status              int
		uid                 string
		message             string
	}{
		"malformed JSON": {
			body: []byte(`{"apiVersion": "admission.k8s.io/v1", "kind": `), status: 400,
			message: "decode AdmissionReview: invalid JSON at byte 46",
		},
		"truncated review": {
			body: allowed[:len(allowed)/2], status: 400,
			message: fmt.Sprintf("decode AdmissionReview: invalid JSON at byte %d", len(allowed)/2),
		},
		"random bytes": {
			body: []byte{0x00, 0xff, 0x13, 0x37}, status: 400,
			message: "decode AdmissionReview: invalid JSON at byte 1",
		},
		"wrong JSON type": {
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":12345}}`), status: 400,
			message: `decode AdmissionReview: field "request.uid": unexpected JSON number`,
		},
		"empty body": {
			body: nil, status: 400, message: "request body is empty",
		},
		"blank body": {
			body: []byte(" \n\t "), status: 400, message: "request body is empty",
		},
		"wrong content type": {
			contentType: "text/plain", body: allowed, status: 415,
			message: `content type "text/plain": expected application/json`,
		},
		"no content type": {
			contentType: "-", body: allowed, status: 415,
			message: `content type "": expected application/json`,
		},
		"content type with parameters": {
			contentType: "application/json; charset=utf-8", body: allowed, status: 200, uid: allowedUID,
		},
		"oversize": {
			body: allowed, maxBody: 1024, status: 413,
			message: "request body exceeds 1024 bytes",
		},
		"exactly at the limit": {
			body: allowed, maxBody: int64(len(allowed)), status: 200, uid: allowedUID,
		},
		"wrong apiVersion": {
			body: readTestdata(t, "review-v1beta1.json"), status: 400, uid: "0f6b1a8e-4a44-4b1c-9d59-7a5d1e2c3b08",
			message: `unsupported "admission.k8s.io/v1beta1" "AdmissionReview": only admission.k8s.io/v1 AdmissionReview is served`,
		},
		"wrong kind": {
			body: readTestdata(t, "review-wrong-kind.json"), status: 400, uid: "0f6b1a8e-4a44-4b1c-9d59-7a5d1e2c3b09",
			message: `unsupported "admission.k8s.io/v1" "AdmissionResponse": only admission.k8s.io/v1 AdmissionReview is served`,
		},
		"no apiVersion or kind": {
			body: []byte(`{"request":{"uid":"u-1"}}`), status: 400, uid: "u-1",
			message: `unsupported "" "": only admission.k8s.io/v1 AdmissionReview is served`,
		},
		"missing request": {
			body: readTestdata(t, "review-no-request.json"), status: 400,
			message: "AdmissionReview has no request",
		},
		"request null": {
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`), status: 400,
			message: "AdmissionReview has no request",
		},
		"missing uid": {
			body: readTestdata(t, "review-no-uid.json"), status: 400,
			message: "AdmissionReview request has no uid",
		},
		"object is an array": {
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-2","object":[1]}}`), status: 400, uid: "u-2",
			message: "request.object must be a JSON object or null",
		},
		"oldObject is a string": {
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-3","oldObject":"x"}}`), status: 400, uid: "u-3",
			message: "request.oldObject must be a JSON object or null",
		},
		"unknown operation": {
			body: bytes.Replace(allowed, []byte(`"operation": "CREATE"`), []byte(`"operation": "EXPLODE"`), 1), status: 400, uid: allowedUID,
			message: `unknown operation "EXPLODE": must be CREATE, UPDATE, DELETE or CONNECT`,
		},
		"lower-case operation": {
			body: bytes.Replace(allowed, []byte(`"operation": "CREATE"`), []byte(`"operation": "create"`), 1), status: 400, uid: allowedUID,
			message: `unknown operation "create": must be CREATE, UPDATE, DELETE or CONNECT`,
		},
		"no operation": {
			body: bytes.Replace(allowed, []byte(`"operation": "CREATE",`), nil, 1), status: 400, uid: allowedUID,
			message: `unknown operation "": must be CREATE, UPDATE, DELETE or CONNECT`,
		},
		"long unknown operation is clipped": {
			body: bytes.Replace(allowed, []byte(`"operation": "CREATE"`), []byte(`"operation": "`+strings.Repeat("X", 5000)+`"`), 1), status: 400, uid: allowedUID,
			message: `unknown operation "` + strings.Repeat("X", 32) + `": must be CREATE, UPDATE, DELETE or CONNECT`,
		},
		"GET": {
			method: http.MethodGet, status: 405, message: "only POST is allowed",
		},
		"PUT": {
			method: http.MethodPut, body: allowed, status: 405, message: "only POST is allowed",
		},
		"deep nesting": {
			body: deep, status: 400, message: "decode AdmissionReview: invalid JSON at byte 10090",
		},
		"deep nesting at the top": {
			body: bytes.Repeat([]byte("["), 100000), status: 400, message: "decode AdmissionReview: invalid JSON at byte 10001",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wh := webhook(eng, engine.Validating, nil, nil)
			if tc.maxBody > 0 {
				wh.MaxBodyBytes = tc.maxBody
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			ct := tc.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			start := time.Now()
			rec := do(wh, method, "/validate", ct, tc.body)
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v", took)
			}
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			resp := decodeResponse(t, rec)
			if string(resp.UID) != tc.uid {
				t.Errorf("uid = %q, want %q", resp.UID, tc.uid)
			}
			if tc.status == http.StatusOK {
				return
			}
			if resp.Allowed {
				t.Error("a failed request answered allowed")
			}
			if resp.Result == nil || resp.Result.Code != int32(tc.status) || resp.Result.Message != tc.message {
				t.Errorf("result = %+v\nwant %d %q", resp.Result, tc.status, tc.message)
			}
		})
	}
}

// panicOnce panics on its first call (quoting the object, as a careless
// handler might) and delegates afterwards.
type panicOnce struct {
	calls atomic.Int32
	next  admission.Handler
}

func (p *panicOnce) Handle(ctx context.Context, req admission.Request) admission.Response {
	if p.calls.Add(1) == 1 {
		panic("boom: " + string(req.Object.Raw))
	}
	return p.next.Handle(ctx, req)
}

func TestWebhookPanic(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, fixturePolicies(t, nil))
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	wh := webhook(eng, engine.Validating, zap.New(core), m)
	wh.Handler = &panicOnce{next: wh.Handler}

	body := readTestdata(t, "pod-canary.json")
	rec := post(wh, body)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := decodeResponse(t, rec)
	if want := requestUID(t, body); string(resp.UID) != want {
		t.Errorf("uid = %q, want %q", resp.UID, want)
	}
	if resp.Allowed || resp.Result == nil || resp.Result.Code != 500 || resp.Result.Message != "internal error" {
		t.Errorf("response = %+v", resp)
	}
	if got := metricValue(t, m.Panics.WithLabelValues("validating")); got != 1 {
		t.Errorf("panics counted %v", got)
	}
	panics := logs.FilterMessage("recovered panic in admission handler").All()
	if len(panics) != 1 || panics[0].ContextMap()["uid"] != want(t, body) || panics[0].ContextMap()["panicType"] != "string" {
		t.Errorf("panic log = %+v", panics)
	}
	assertNoCanary(t, logs.All(), rec.Body.Bytes())

	// The next request is served normally.
	rec = post(wh, readTestdata(t, "pod-allowed.json"))
	if rec.Code != http.StatusOK || !decodeResponse(t, rec).Allowed {
		t.Errorf("after a panic: %d %s", rec.Code, rec.Body)
	}
}

func want(t testing.TB, body []byte) string { return requestUID(t, body) }

// The server-side deadline, from Handler.Timeout or the apiserver's
// ?timeout=, cancels a runaway policy; its failure mode decides.
func TestWebhookDeadline(t *testing.T) {
	t.Parallel()
	const loop = `# METADATA
# title: Loop
# custom:
#   kind: validating
package portcullis.loop

deny contains {"msg": "never"} if {
	n := numbers.range(1, 3000)
	some a in n
	some b in n
	some c in n
	(a * b) * c < 0
}
`
	eng := newEngine(t, fixturePolicies(t, map[string]string{"loop/loop.rego": loop}))
	body := readTestdata(t, "pod-allowed.json")
	for name, setup := range map[string]func(*Webhook) string{
		"handler timeout":     func(wh *Webhook) string { wh.Handler.(*Handler).Timeout = 50 * time.Millisecond; return "/validate" },
		"apiserver ?timeout=": func(wh *Webhook) string { wh.Handler.(*Handler).Timeout = 0; return "/validate?timeout=100ms" },
		"the shorter one wins": func(wh *Webhook) string {
			wh.Handler.(*Handler).Timeout = 50 * time.Millisecond
			return "/validate?timeout=30s"
		},
		"garbage ?timeout= too": func(wh *Webhook) string {
			wh.Handler.(*Handler).Timeout = 50 * time.Millisecond
			return "/validate?timeout=soon"
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wh := webhook(eng, engine.Validating, nil, nil)
			target := setup(wh)
			start := time.Now()
			rec := do(wh, http.MethodPost, target, "application/json", body)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("took %v", took)
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			resp := decodeResponse(t, rec)
			// Policies after the runaway one find the deadline passed and
			// are handled by their own failure modes too.
			const msg = "[loop] policy timed out; denied by its failure mode (deny); [no_privileged] policy was not evaluated: the deadline had passed; denied by its failure mode (deny)"
			if resp.Allowed || resp.Result.Code != 403 || resp.Result.Message != msg {
				t.Errorf("response = %v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
			}
			wantAnn := map[string]string{AuditDeniedBy: "loop,no_privileged", AuditFailed: "loop,no_privileged"}
			if !reflect.DeepEqual(resp.AuditAnnotations, wantAnn) {
				t.Errorf("auditAnnotations = %v, want %v", resp.AuditAnnotations, wantAnn)
			}
		})
	}
}

// The same review always gets the same bytes back.
func TestWebhookDeterministic(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, fixturePolicies(t, nil))
	files := []string{"pod-allowed.json", "pod-privileged.json", "pod-latest.json", "pod-canary.json", "secret-canary.json", "pod-delete.json", "review-v1beta1.json"}
	for _, phase := range []engine.Phase{engine.Validating, engine.Mutating} {
		wh := webhook(eng, phase, nil, nil)
		for _, f := range files {
			body := readTestdata(t, f)
			first := post(wh, body)
			for i := 0; i < 5; i++ {
				again := post(wh, body)
				if again.Code != first.Code || !bytes.Equal(again.Body.Bytes(), first.Body.Bytes()) {
					t.Errorf("%s %s: response %d differs:\n%s\n%s", phase, f, i, first.Body, again.Body)
				}
			}
		}
	}
}

// evaluatorFunc adapts a function to engine.Evaluator.
type evaluatorFunc func(context.Context, engine.Phase, *admissionv1.AdmissionRequest, engine.Options) (*engine.Decision, error)

func (f evaluatorFunc) Evaluate(ctx context.Context, p engine.Phase, r *admissionv1.AdmissionRequest, o engine.Options) (*engine.Decision, error) {
	return f(ctx, p, r, o)
}

func TestHandlerEngineErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err     error
		status  int32
		message string
	}{
		"bad request": {
			err:    fmt.Errorf("%w: object is not a JSON object", engine.ErrBadRequest),
			status: 400, message: "bad admission request: object is not a JSON object",
		},
		"internal error (text not sent back)": {
			err:    fmt.Errorf("encode mutated object: %s", canary),
			status: 500, message: "internal error evaluating policies",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			eng := evaluatorFunc(func(context.Context, engine.Phase, *admissionv1.AdmissionRequest, engine.Options) (*engine.Decision, error) {
				return nil, tc.err
			})
			rec := post(webhook(eng, engine.Validating, zap.New(core), nil), readTestdata(t, "pod-allowed.json"))
			// The handler's own errors are admission answers (HTTP 200 with a
			// status), which the apiserver treats by the failurePolicy.
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			resp := decodeResponse(t, rec)
			if resp.Allowed || resp.Result.Code != tc.status || resp.Result.Message != tc.message {
				t.Errorf("response = %v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
			}
			if n := len(logs.FilterMessage("admission error").All()); n != 1 {
				t.Errorf("%d admission error lines", n)
			}
		})
	}
}

// Metrics count requests, bad requests and per-policy outcomes.
func TestWebhookMetrics(t *testing.T) {
	t.Parallel()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := engine.Load(context.Background(), engine.Source{Policies: fixturePolicies(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	wh := webhook(engine.New(reg, m), engine.Validating, nil, m)
	post(wh, readTestdata(t, "pod-allowed.json"))
	post(wh, readTestdata(t, "pod-privileged.json"))
	post(wh, readTestdata(t, "pod-latest.json"))
	post(wh, []byte("{"))
	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.Requests.WithLabelValues("validating", "true", "200"), 2},
		{m.Requests.WithLabelValues("validating", "false", "403"), 1},
		{m.BadRequests.WithLabelValues("validating", "400"), 1},
		{m.PolicyEvaluations.WithLabelValues("no_privileged", "validating", engine.OutcomeDenied), 1},
		{m.PolicyEvaluations.WithLabelValues("no_privileged", "validating", engine.OutcomeAllowed), 2},
		{m.PolicyEvaluations.WithLabelValues("latest_tag", "validating", engine.OutcomeWarned), 1},
	} {
		if got := metricValue(t, c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.c.(prometheus.Metric).Desc(), got, c.want)
		}
	}
}

// canaryLeaks is a mutating policy whose edit fails with an error text that
// quotes the canary (a selector built from an annotation): the text must stay
// out of logs and answers.
const canaryLeaks = `# METADATA
# title: Leaky edit
# custom:
#   kind: mutating
package portcullis.leaky

mutate contains {"op": "set", "path": ["spec", "containers", {"name": token}, "image"], "value": "x"} if {
	token := input.request.object.metadata.annotations["example.com/token"]
}
`

// assertNoCanary fails when the canary (plain or base64) appears in any log
// entry (message, logger name, stack, any field) or in body.
func assertNoCanary(t *testing.T, entries []observer.LoggedEntry, bodies ...[]byte) {
	t.Helper()
	for _, e := range entries {
		text := fmt.Sprintf("%s %s %s %s %v", e.Level, e.LoggerName, e.Message, e.Stack, e.ContextMap())
		for _, c := range []string{canary, canaryBase64} {
			if strings.Contains(text, c) {
				t.Errorf("log entry leaks %q: %s", c, text)
			}
		}
	}
	for _, b := range bodies {
		for _, c := range []string{canary, canaryBase64} {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("response leaks %q: %s", c, b)
			}
		}
		var review admissionv1.AdmissionReview
		if json.Unmarshal(b, &review) == nil && review.Response != nil && bytes.Contains(review.Response.Patch, []byte(canary)) {
			t.Errorf("patch leaks the canary: %s", review.Response.Patch)
		}
	}
}

// One decision-log line per admitted or refused request, with identities and
// policy IDs only; no object content at any level, on any path.
func TestDecisionLog(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, fixturePolicies(t, map[string]string{"leaky/leaky.rego": canaryLeaks}))
	canaryPod := readTestdata(t, "pod-canary.json")
	canarySecret := readTestdata(t, "secret-canary.json")
	tests := map[string]struct {
		phase      engine.Phase
		body       []byte
		status     int
		allowed    bool
		violations []any
		policies   []any
		lines      map[string]int // message → count
	}{
		"denied pod": {
			phase: engine.Validating, body: canaryPod, status: 200,
			violations: []any{"latest_tag:warn", "no_privileged:deny"},
			policies:   []any{"latest_tag", "no_privileged"},
			lines:      map[string]int{"admission decision": 1},
		},
		"denied secret": {
			phase: engine.Validating, body: canarySecret, status: 200,
			violations: []any{"secret_keys:deny"},
			policies:   []any{"secret_keys"},
			lines:      map[string]int{"admission decision": 1},
		},
		"mutated pod with a failing policy": {
			phase: engine.Mutating, body: canaryPod, status: 200, allowed: true,
			violations: []any{},
			policies:   []any{"default_labels", "leaky"},
			lines:      map[string]int{"admission decision": 1, "policy evaluation failed": 1},
		},
		"secret on the mutating path": {
			phase: engine.Mutating, body: canarySecret, status: 200, allowed: true,
			violations: []any{},
			policies:   []any{"leaky"},
			lines:      map[string]int{"admission decision": 1, "policy evaluation failed": 1},
		},
		"bad request": {
			phase: engine.Validating, status: 400,
			body:  bytes.Replace(canaryPod, []byte(`"object": {`), []byte(`"object": ["`+canary+`", {`), 1),
			lines: map[string]int{"rejected admission request": 1},
		},
		"malformed JSON after the canary": {
			phase: engine.Validating, status: 400,
			body:  canaryPod[:bytes.Index(canaryPod, []byte(canary))+len(canary)+5],
			lines: map[string]int{"rejected admission request": 1},
		},
		"wrong version": {
			phase: engine.Validating, status: 400,
			body:  bytes.Replace(canaryPod, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1),
			lines: map[string]int{"rejected admission request": 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			rec := post(webhook(eng, tc.phase, zap.New(core), nil), tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			got := map[string]int{}
			for _, e := range logs.All() {
				got[e.Message]++
			}
			if !reflect.DeepEqual(got, tc.lines) {
				t.Errorf("log lines %v, want %v", got, tc.lines)
			}
			assertNoCanary(t, logs.All(), rec.Body.Bytes())
			if tc.status != http.StatusOK {
				return
			}
			decisions := logs.FilterMessage("admission decision").All()
			if len(decisions) != 1 {
				t.Fatalf("%d decision lines", len(decisions))
			}
			f := decisions[0].ContextMap()
			if f["uid"] != requestUID(t, tc.body) || f["allowed"] != tc.allowed || f["phase"] != string(tc.phase) || f["user"] != "alice" || f["namespace"] != "default" {
				t.Errorf("decision line %v", f)
			}
			if !reflect.DeepEqual(f["violations"], tc.violations) {
				t.Errorf("violations = %#v, want %#v", f["violations"], tc.violations)
			}
			if !reflect.DeepEqual(f["policies"], tc.policies) {
				t.Errorf("policies = %#v, want %#v", f["policies"], tc.policies)
			}
			for _, key := range []string{"operation", "kind", "resource", "name", "duration", "patchOps", "warnings", "exempt", "dryRun"} {
				if _, ok := f[key]; !ok {
					t.Errorf("decision line lacks %q: %v", key, f)
				}
			}
		})
	}
}

// metricValue reads one counter or gauge (prometheus/testutil would pull a
// module go.mod does not have).
func metricValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 2)
	c.Collect(ch)
	close(ch)
	var out float64
	n := 0
	for m := range ch {
		n++
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Counter != nil:
			out = d.Counter.GetValue()
		case d.Gauge != nil:
			out = d.Gauge.GetValue()
		}
	}
	if n != 1 {
		t.Fatalf("collected %d metrics", n)
	}
	return out
}
