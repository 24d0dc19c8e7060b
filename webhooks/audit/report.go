package audit

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis/portcullis/policies/engine"
)

// Report naming: one Report per namespace (and one ClusterReport for
// cluster-scoped objects), named ReportName, labelled as Portcullis's.
const (
	ReportName     = "portcullis-audit"
	ReportSource   = "portcullis"
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "portcullis"
)

// OpenReports result values and severities (openreports.io/v1alpha1).
const (
	ResultFail  orv1alpha1.Result = "fail"
	ResultWarn  orv1alpha1.Result = "warn"
	ResultError orv1alpha1.Result = "error"
)

var severities = map[string]orv1alpha1.ResultSeverity{
	"critical": "critical", "high": "high", "medium": "medium", "low": "low", "info": "info",
}

// Results turns findings into report results: one per violation (policy,
// rule = the entry's check, severity, message, the object), and one per
// policy that could not be evaluated (result error). Severity is the entry's
// own severity field when it is an OpenReports severity, else by
// enforcement: deny high, warn medium, audit low. Result is fail for
// violations that deny, warn for those that warn or audit. Sorted by object,
// policy, rule and message, so equal findings give equal results.
func Results(findings []*Finding, at time.Time) []orv1alpha1.ReportResult {
	ts := metav1.Timestamp{Seconds: at.Unix()}
	var out []orv1alpha1.ReportResult
	for _, f := range findings {
		ref := []corev1.ObjectReference{{
			APIVersion: f.Target.GVR.GroupVersion().String(),
			Kind:       f.Target.Kind,
			Namespace:  f.Namespace,
			Name:       f.Name,
			UID:        f.UID,
		}}
		for _, v := range f.Decision.Violations {
			r := orv1alpha1.ReportResult{
				Source:      ReportSource,
				Policy:      v.Policy,
				Severity:    severity(v),
				Timestamp:   ts,
				Result:      ResultWarn,
				Subjects:    ref,
				Description: v.Message,
				Properties:  map[string]string{"enforcement": string(v.Enforcement)},
			}
			if v.Enforcement == engine.EnforceDeny {
				r.Result = ResultFail
			}
			if check, ok := v.Details["check"].(string); ok {
				r.Rule = check
			}
			out = append(out, r)
		}
		for _, e := range f.Decision.Errors {
			what := "could not be evaluated"
			switch {
			case e.Skipped:
				what = "was not evaluated: the deadline had passed"
			case e.TimedOut:
				what = "timed out"
			}
			out = append(out, orv1alpha1.ReportResult{
				Source:      ReportSource,
				Policy:      e.Policy,
				Timestamp:   ts,
				Result:      ResultError,
				Subjects:    ref,
				Description: "policy " + what,
				Properties:  map[string]string{"failureMode": string(e.FailureMode)},
			})
		}
	}
	slices.SortStableFunc(out, compareResults)
	return out
}

func severity(v engine.Violation) orv1alpha1.ResultSeverity {
	if s, ok := v.Details["severity"].(string); ok {
		if sev, ok := severities[s]; ok {
			return sev
		}
	}
	switch v.Enforcement {
	case engine.EnforceDeny:
		return "high"
	case engine.EnforceWarn:
		return "medium"
	default:
		return "low"
	}
}

func compareResults(a, b orv1alpha1.ReportResult) int {
	ra, rb := a.Subjects[0], b.Subjects[0]
	return cmp.Or(
		cmp.Compare(ra.Kind, rb.Kind), cmp.Compare(ra.Namespace, rb.Namespace), cmp.Compare(ra.Name, rb.Name),
		cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Description, b.Description),
		cmp.Compare(a.Result, b.Result),
	)
}

// Summary counts results by outcome.
func Summary(results []orv1alpha1.ReportResult) orv1alpha1.ReportSummary {
	var s orv1alpha1.ReportSummary
	for _, r := range results {
		switch r.Result {
		case ResultFail:
			s.Fail++
		case ResultWarn:
			s.Warn++
		case ResultError:
			s.Error++
		}
	}
	return s
}

// sameResults compares results ignoring their timestamps: a pass that finds
// what the last one found does not rewrite the report.
func sameResults(a, b []orv1alpha1.ReportResult) bool {
	return slices.EqualFunc(a, b, func(x, y orv1alpha1.ReportResult) bool {
		x.Timestamp, y.Timestamp = metav1.Timestamp{}, metav1.Timestamp{}
		return fmt.Sprintf("%+v", x) == fmt.Sprintf("%+v", y)
	})
}

// keepTimestamps copies, into fresh, the timestamps of results already in
// old (same result apart from the timestamp): a result's timestamp says when
// it was first found.
func keepTimestamps(fresh, old []orv1alpha1.ReportResult) {
	seen := map[string]metav1.Timestamp{}
	for _, r := range old {
		ts := r.Timestamp
		r.Timestamp = metav1.Timestamp{}
		seen[fmt.Sprintf("%+v", r)] = ts
	}
	for i := range fresh {
		r := fresh[i]
		r.Timestamp = metav1.Timestamp{}
		if ts, ok := seen[fmt.Sprintf("%+v", r)]; ok {
			fresh[i].Timestamp = ts
		}
	}
}
