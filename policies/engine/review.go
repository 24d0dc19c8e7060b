package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The input document's fixed members. Rego sees the AdmissionReview the
// apiserver sent: apiVersion, kind and request.
var (
	termAPIVersion   = ast.StringTerm("apiVersion")
	termKind         = ast.StringTerm("kind")
	termRequest      = ast.StringTerm("request")
	termNamespace    = ast.StringTerm("namespace")
	termReviewAPI    = ast.StringTerm("admission.k8s.io/v1")
	termReviewKind   = ast.StringTerm("AdmissionReview")
	termUID          = ast.StringTerm("uid")
	termObject       = ast.StringTerm("object")
	termOldObject    = ast.StringTerm("oldObject")
	termOptions      = ast.StringTerm("options")
	rawMembers       = []*ast.Term{termObject, termOldObject, termOptions}
	rawNames         = []string{"object", "oldObject", "options"}
	nullRawExtension = runtime.RawExtension{}
)

// toInput converts the request into the Rego input value, once per request;
// every policy of the request shares it. It is built from the typed request,
// so the server (which received JSON) and the CLI (which built the request
// from a manifest) hand Rego the same document. The small fields go through
// encoding/json (so the document follows the API's JSON tags, whatever fields
// a future API version adds); the raw object, oldObject and options are
// decoded straight into ast values, never re-encoded.
func toInput(req *admissionv1.AdmissionRequest) (ast.Value, error) {
	small, err := smallRequestJSON(req)
	if err != nil {
		return nil, err
	}
	return toInputFrom(req, small, nil)
}

// smallRequestJSON encodes the request without its UID and raw members: the
// part of the request the cache key and the input share.
func smallRequestJSON(req *admissionv1.AdmissionRequest) ([]byte, error) {
	small := *req
	small.UID = ""
	small.Object, small.OldObject, small.Options = nullRawExtension, nullRawExtension, nullRawExtension
	b, err := json.Marshal(&small)
	if err != nil {
		return nil, fmt.Errorf("%w: encode request: %w", ErrBadRequest, err)
	}
	return b, nil
}

// toInputFrom is toInput with the request's smallRequestJSON already encoded;
// nsJSON, when not nil, becomes input.namespace (see WithNamespaceLabels).
func toInputFrom(req *admissionv1.AdmissionRequest, small, nsJSON []byte) (ast.Value, error) {
	v, err := parseJSONValue(small)
	if err != nil {
		return nil, fmt.Errorf("%w: convert request: %w", ErrBadRequest, err)
	}
	reqObj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%w: request is not an object", ErrBadRequest)
	}
	reqObj.Insert(termUID, ast.StringTerm(string(req.UID)))
	for i, ext := range []*runtime.RawExtension{&req.Object, &req.OldObject, &req.Options} {
		raw := ext.Raw
		if raw == nil && ext.Object != nil {
			if raw, err = json.Marshal(ext.Object); err != nil {
				return nil, fmt.Errorf("%w: encode request.%s: %w", ErrBadRequest, rawNames[i], err)
			}
		}
		if raw == nil {
			continue // marshalled as null above
		}
		val, err := parseJSONValue(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: convert request.%s: %w", ErrBadRequest, rawNames[i], err)
		}
		reqObj.Insert(rawMembers[i], ast.NewTerm(val))
	}
	input := reviewInput(reqObj)
	if nsJSON != nil {
		ns, err := parseJSONValue(nsJSON)
		if err != nil {
			return nil, fmt.Errorf("%w: convert namespace: %w", ErrBadRequest, err)
		}
		input.(ast.Object).Insert(termNamespace, ast.NewTerm(ns))
	}
	return input, nil
}

// withObject returns a copy of input (from toInput) whose request.object is
// obj: what later mutating policies see after an earlier one edited it.
func withObject(input ast.Value, obj ast.Value) ast.Value {
	reqObj := input.(ast.Object).Get(termRequest).Value.(ast.Object)
	pairs := make([][2]*ast.Term, 0, reqObj.Len())
	reqObj.Foreach(func(k, v *ast.Term) {
		if k.Equal(termObject) {
			v = ast.NewTerm(obj)
		}
		pairs = append(pairs, [2]*ast.Term{k, v})
	})
	out := reviewInput(ast.NewObject(pairs...))
	if ns := input.(ast.Object).Get(termNamespace); ns != nil {
		out.(ast.Object).Insert(termNamespace, ns)
	}
	return out
}

func reviewInput(reqObj ast.Object) ast.Value {
	return ast.NewObject(
		[2]*ast.Term{termAPIVersion, termReviewAPI},
		[2]*ast.Term{termKind, termReviewKind},
		[2]*ast.Term{termRequest, ast.NewTerm(reqObj)},
	)
}

// decodeObject decodes a raw object keeping numbers exact, so an unchanged
// object re-encodes to the same values.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		// A syntax error's message quotes the offending input; this error
		// reaches the decision log and the response, so only say where.
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("%w: object is not a JSON object (invalid JSON at byte %d)", ErrBadRequest, syn.Offset)
		}
		return nil, fmt.Errorf("%w: object is not a JSON object: %w", ErrBadRequest, err)
	}
	return obj, nil
}

// Input returns the input document the phase's first policy receives for
// req, as JSON: the AdmissionReview Evaluate builds (input.namespace
// included when a NamespaceLabeler is set), from the same code. It is for
// showing authors what their policies see (validate --show-input); later
// mutating policies of a request see the object as the earlier ones left it.
func (e *Engine) Input(ctx context.Context, req *admissionv1.AdmissionRequest) (json.RawMessage, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: no request", ErrBadRequest)
	}
	small, err := smallRequestJSON(req)
	if err != nil {
		return nil, err
	}
	nsJSON, err := e.namespaceJSON(ctx, req.Namespace)
	if err != nil {
		return nil, err
	}
	v, err := toInputFrom(req, small, nsJSON)
	if err != nil {
		return nil, err
	}
	native, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("convert input: %w", err)
	}
	b, err := json.Marshal(native)
	if err != nil {
		return nil, fmt.Errorf("encode input: %w", err)
	}
	return b, nil
}
