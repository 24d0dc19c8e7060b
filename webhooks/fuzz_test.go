package webhooks

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/policies/engine"
)

// addSeeds adds every testdata review and a few hostile shapes.
func addSeeds(f *testing.F) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	var seeds [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	seeds = append(seeds,
		nil,
		[]byte("null"),
		[]byte("{}"),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":null,"oldObject":{}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"metadata":null,"spec":{"containers":null}}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":"str"}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"resource":{"resource":"pods"},"operation":"CREATE","object":{"spec":{"containers":[{"name":1},{"securityContext":{"privileged":"yes"}}]}}}}`),
		bytes.Repeat([]byte("["), 20000),
	)
	return seeds
}

// FuzzDecodeReview: no input panics the decoder, and an accepted review
// always has a request with a UID and object fields that are objects or null.
func FuzzDecodeReview(f *testing.F) {
	for _, s := range addSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		review, err := DecodeReview(body)
		if err != nil {
			return
		}
		if review == nil || review.Request == nil || review.Request.UID == "" {
			t.Fatalf("accepted a review without request or uid: %+v", review)
		}
		for _, raw := range [][]byte{review.Request.Object.Raw, review.Request.OldObject.Raw} {
			raw = bytes.TrimSpace(raw)
			if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) && raw[0] != '{' {
				t.Fatalf("accepted a non-object object: %s", raw)
			}
		}
	})
}

// FuzzServeHTTP drives the whole decode → evaluate → encode path: it never
// panics (not even a recovered one), always answers an AdmissionReview with
// one of the documented statuses, and echoes the request UID.
func FuzzServeHTTP(f *testing.F) {
	for _, s := range addSeeds(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	eng := newEngine(f, fixturePolicies(f, nil))
	// Panics are counted, not logged: an observer would keep every entry
	// of a long fuzzing run.
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	hooks := map[bool]*Webhook{
		false: webhook(eng, engine.Validating, nil, m),
		true:  webhook(eng, engine.Mutating, nil, m),
	}
	for _, wh := range hooks {
		wh.MaxBodyBytes = 64 << 10
	}
	f.Fuzz(func(t *testing.T, body []byte, mutating bool) {
		rec := post(hooks[mutating], body)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusInternalServerError:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		for _, phase := range []string{"validating", "mutating"} {
			if n := metricValue(t, m.Panics.WithLabelValues(phase)); n > 0 {
				t.Fatalf("handler panicked on %q", body)
			}
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("answer is not an AdmissionReview: %v: %s", err, rec.Body)
		}
		if rec.Code == http.StatusOK {
			review, err := DecodeReview(body)
			if err != nil {
				t.Fatalf("200 for a review the decoder refuses: %v", err)
			}
			if out.Response.UID != review.Request.UID {
				t.Fatalf("uid %q, want %q", out.Response.UID, review.Request.UID)
			}
		}
	})
}
