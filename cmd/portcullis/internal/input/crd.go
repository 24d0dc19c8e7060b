package input

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	openapierrors "k8s.io/kube-openapi/pkg/validation/errors"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

// CRDSchemas checks custom resources against the openAPIV3Schema of their
// CustomResourceDefinition when that CRD is part of the input: the
// structural schema's types and value validations (kube-openapi's
// validator, as the apiserver uses) and unknown fields (the apiserver's
// pruning, which strict field validation reports). CEL rules
// (x-kubernetes-validations) are not evaluated.
type CRDSchemas struct {
	byGVK map[schema.GroupVersionKind]*crdSchema
}

type crdSchema struct {
	structural *structuralschema.Structural
	validator  *validate.SchemaValidator
}

// LearnCRDs reads the apiextensions.k8s.io/v1 CRDs among objs. CRDs whose
// schema is not structural are ignored (their resources stay unchecked).
func LearnCRDs(objs []Object) *CRDSchemas {
	c := &CRDSchemas{byGVK: map[schema.GroupVersionKind]*crdSchema{}}
	for _, o := range objs {
		if o.GVK != apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition") {
			continue
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if json.Unmarshal(o.JSON, &crd) != nil {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil) != nil {
				continue
			}
			s, err := structuralschema.NewStructural(&internal)
			if err != nil {
				continue
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
			c.byGVK[gvk] = &crdSchema{structural: s, validator: validate.NewSchemaValidator(s.ToKubeOpenAPI(), nil, "", strfmt.Default)}
		}
	}
	return c
}

// check validates a custom resource; ok is false when its CRD is unknown.
func (c *CRDSchemas) check(o Object) (errs []string, ok bool) {
	if c == nil {
		return nil, false
	}
	s := c.byGVK[o.GVK]
	if s == nil {
		return nil, false
	}
	var obj map[string]any
	// The apiserver's JSON decoding: integers stay integers.
	if err := utiljson.Unmarshal(o.JSON, &obj); err != nil {
		return []string{"not a JSON object"}, true
	}
	for _, e := range s.validator.Validate(obj).Errors {
		errs = append(errs, openAPIError(e))
	}
	sort.Strings(errs) // the validator walks maps: its order varies
	unknown := pruning.PruneWithOptions(obj, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	sort.Strings(unknown)
	for _, p := range unknown {
		errs = append(errs, fmt.Sprintf("unknown field %q", p))
	}
	return errs, true
}

// openAPIError is the validator's message without the value it may quote
// ("spec.size in body must be of type integer: \"big\"").
func openAPIError(err error) string {
	msg := err.Error()
	if v, ok := err.(*openapierrors.Validation); ok && v.Code() == openapierrors.InvalidTypeCode {
		if i := strings.Index(msg, ": "); i > 0 {
			msg = msg[:i]
		}
		if i := strings.Index(msg, ", because"); i > 0 {
			msg = msg[:i]
		}
	}
	return strings.Replace(msg, " in body ", " ", 1)
}
