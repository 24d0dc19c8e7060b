package engine

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
)

// reviewEnvelope is the AdmissionReview policies see as input. It is built
// from the typed request so that the server (which received JSON) and the
// CLI (which built the request from a manifest) hand Rego the same document.
type reviewEnvelope struct {
	APIVersion string                        `json:"apiVersion"`
	Kind       string                        `json:"kind"`
	Request    *admissionv1.AdmissionRequest `json:"request"`
}

// toInput converts the request into the Rego input value, once per request;
// every policy of the request shares it.
func toInput(req *admissionv1.AdmissionRequest) (ast.Value, error) {
	b, err := json.Marshal(reviewEnvelope{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Request: req})
	if err != nil {
		return nil, fmt.Errorf("%w: encode request: %w", ErrBadRequest, err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: convert request: %w", ErrBadRequest, err)
	}
	return v, nil
}

// decodeObject decodes a raw object keeping numbers exact, so an unchanged
// object re-encodes to the same values.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%w: object is not a JSON object: %w", ErrBadRequest, err)
	}
	return obj, nil
}
