package input

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// strictSerializer decodes into client-go's typed objects and reports
// unknown and duplicate fields, as the apiserver's strict field validation
// (kubectl's default --validate=strict) does.
var strictSerializer = jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	jsonserializer.SerializerOptions{Strict: true})

// SchemaResult is the outcome of a schema check.
type SchemaResult struct {
	// Checked is false for kinds client-go does not know (custom
	// resources): they pass unvalidated.
	Checked bool
	// Errors are the problems found, each a short sentence.
	Errors []string
}

// CheckSchema decodes o strictly into its built-in type: unknown fields,
// fields of the wrong type and duplicate keys are errors. Custom resources
// are checked against their CRD when crds (may be nil) has it, else they
// pass unchecked. Values are never quoted, only field names.
func (o Object) CheckSchema(crds *CRDSchemas) SchemaResult {
	res := SchemaResult{}
	if !scheme.Scheme.Recognizes(o.GVK) {
		errs, ok := crds.check(o)
		if ok {
			res.Checked = true
			res.Errors = append(o.duplicateKeys(), errs...)
		}
		return res
	}
	res.Checked = true
	res.Errors = o.duplicateKeys()
	_, _, err := strictSerializer.Decode(o.JSON, nil, nil)
	if err == nil {
		return res
	}
	if strict, ok := runtime.AsStrictDecodingError(err); ok {
		for _, e := range strict.Errors() {
			res.Errors = append(res.Errors, e.Error())
		}
		return res
	}
	res.Errors = append(res.Errors, cleanDecodeError(err))
	return res
}

// duplicateKeys reports the duplicate keys found reading the document.
func (o Object) duplicateKeys() []string {
	var out []string
	if o.Strict != nil {
		// sigs.k8s.io/yaml: "error converting YAML to JSON: yaml: unmarshal
		// errors:\n  line 7: key \"name\" already set in map"
		msg := o.Strict.Error()
		if i := strings.Index(msg, "unmarshal errors:\n"); i >= 0 {
			msg = msg[i+len("unmarshal errors:\n"):]
		}
		for _, l := range strings.Split(msg, "\n") {
			l = strings.TrimSpace(l)
			if l == "" {
				continue
			}
			l = absoluteLines(l, o.TextLine)
			out = append(out, "duplicate key: "+l)
		}
	}
	return out
}

// cleanDecodeError shortens encoding/json's type errors: "json: cannot
// unmarshal string into Go struct field PodSpec.spec.containers of type
// []v1.Container" becomes "spec.containers: expected []v1.Container, got
// string".
var typeError = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field [\w]+\.([\w.\[\]]+) of type (\S+)`)

func cleanDecodeError(err error) string {
	msg := err.Error()
	if m := typeError.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s: expected %s, got %s", m[2], m[3], m[1])
	}
	return strings.TrimPrefix(msg, "json: ")
}
