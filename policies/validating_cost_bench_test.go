package policies_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// validatingPolicies are the built-in validating policies that apply to Pods.
var validatingPolicies = []string{"pod_security", "secret_handling", "image_sources", "apparmor", "required_labels"}

// BenchmarkValidatingRego measures the Rego cost alone (a prepared query on
// an input converted once) of the validating policies on three Pods: the
// bench-load typical pod, the same pod with no containers (what the
// policies cost before they look at a container) and the bench-load large
// pod (30 containers). "all" binds every policy's deny and warn in one
// query, as the engine's policy set does; the others one policy each.
// cpu-ns/op is the process CPU time per evaluation.
func BenchmarkValidatingRego(b *testing.B) {
	ctx := context.Background()
	typical := benchReview(b, "typical-pod")
	empty := benchReview(b, "typical-pod")
	empty["request"].(map[string]any)["object"].(map[string]any)["spec"].(map[string]any)["containers"] = []any{}
	large := benchReview(b, "large-pod")
	bodies := []struct {
		name   string
		review map[string]any
	}{{"typical", typical}, {"no-containers", empty}, {"30-containers", large}}
	queries := append([]string{"floor", "all"}, validatingPolicies...)
	for _, q := range queries {
		var ids []string
		switch q {
		case "floor":
		case "all":
			ids = validatingPolicies
		default:
			ids = []string{q}
		}
		query := prepareValidating(b, ids)
		for _, body := range bodies {
			input := toValue(b, body.review)
			b.Run(q+"/"+body.name, func(b *testing.B) {
				b.ReportAllocs()
				start := processCPU(b)
				for b.Loop() {
					rs, err := query.Eval(ctx, rego.EvalParsedInput(input))
					if err != nil || len(rs) != 1 {
						b.Fatal(err, len(rs))
					}
				}
				b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// benchReview reads a bench-load request body from webhooks/testdata/bench.
func benchReview(b *testing.B, name string) map[string]any {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "webhooks", "testdata", "bench", name+".json"))
	if err != nil {
		b.Fatal(err)
	}
	var review map[string]any
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&review); err != nil {
		b.Fatal(err)
	}
	return review
}

// prepareValidating prepares one query binding deny and warn of the given
// policies, as the engine does.
func prepareValidating(b *testing.B, ids []string) rego.PreparedEvalQuery {
	// "floor": a query that reads one input field, for the fixed cost of
	// an evaluation.
	parts := []string{"uid := input.request.uid"}
	for _, id := range ids {
		parts = append(parts, "deny_"+id+" := data.portcullis."+id+".deny")
		if id == "pod_security" {
			parts = append(parts, "warn_"+id+" := data.portcullis."+id+".warn")
		}
	}
	return prepareBuiltinQuery(b, strings.Join(parts, "; "))
}
