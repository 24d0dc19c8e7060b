package webhooks

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis/portcullis/policies/engine"
)

// strictNumbers fails with a built-in error whose OPA message quotes the
// annotation holding the canary.
const strictNumbers = `# METADATA
# title: Numbers
# custom:
#   kind: validating
package portcullis.numbers

deny contains {"msg": "token too large"} if {
	to_number(input.request.object.metadata.annotations["example.com/token"]) > 10
}
`

// A built-in error denies by the policy's failure mode, and the response,
// the decision log and the metrics name the policy and the error without
// the value that caused it.
func TestBuiltinErrorDeniesNamedAndCounted(t *testing.T) {
	t.Parallel()
	reg, err := engine.Load(context.Background(), engine.Source{Policies: fixturePolicies(t, map[string]string{"numbers/numbers.rego": strictNumbers})})
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(reg, metrics)
	core, logs := observer.New(zapcore.DebugLevel)
	rec := post(webhook(eng, engine.Validating, zap.New(core), metrics), readTestdata(t, "pod-canary.json"))
	resp := decodeResponse(t, rec)
	if resp.Allowed {
		t.Fatal("allowed")
	}
	const want = `[numbers] policy could not be evaluated: eval_builtin_error at numbers/numbers.rego:8: to_number: strconv.ParseFloat: parsing "…": invalid syntax; denied by its failure mode (deny)`
	if got := resp.Result.Message; !strings.Contains(got, want) {
		t.Errorf("message %q lacks %q", got, want)
	}
	if got := resp.AuditAnnotations[AuditFailed]; got != "numbers" {
		t.Errorf("audit annotation %s = %q", AuditFailed, got)
	}
	failed := logs.FilterMessage("policy evaluation failed").All()
	if len(failed) != 1 {
		t.Fatalf("%d failure lines", len(failed))
	}
	f := failed[0].ContextMap()
	for k, v := range map[string]any{"policy": "numbers", "code": "eval_builtin_error", "location": "numbers/numbers.rego:8", "error": `to_number: strconv.ParseFloat: parsing "…": invalid syntax`, "failureMode": "deny"} {
		if !reflect.DeepEqual(f[k], v) {
			t.Errorf("log field %s = %#v, want %#v", k, f[k], v)
		}
	}
	if got := metricValue(t, metrics.PolicyErrors.WithLabelValues("numbers", "eval_builtin_error")); got != 1 {
		t.Errorf("portcullis_policy_evaluation_errors_total = %v, want 1", got)
	}
	assertNoCanary(t, logs.All(), rec.Body.Bytes())
}
