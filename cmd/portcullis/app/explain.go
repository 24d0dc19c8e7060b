package app

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/report"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/review"
	"github.com/portcullis/portcullis/policies/engine"
)

// The values of validate --explain.
const (
	explainRules = "rules"
	explainFull  = "full"
)

// explain re-evaluates, with OPA's tracer (engine.Explain), each validating
// policy that denied, warned or audited the object, on the request the
// validating webhook was sent, and returns the rule bodies that fired. With
// --explain=full the trace of each such policy, filtered to its file, goes
// to stderr.
func (o *ValidateOptions) explain(ctx context.Context, eng *engine.Engine, res report.Result, out *review.Outcome, streams IO) ([]report.Explanation, error) {
	if out.Validate == nil || out.ValidateRequest == nil {
		return nil, nil
	}
	ids := map[string]bool{}
	for _, v := range out.Validate.Violations {
		ids[v.Policy] = true
	}
	for _, w := range out.Validate.Warnings {
		for _, id := range out.Validate.Evaluated {
			if strings.HasPrefix(w, id+": ") {
				ids[id] = true
			}
		}
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	var exps []report.Explanation
	for _, id := range sorted {
		firings, trace, err := eng.Explain(ctx, out.ValidateRequest, id)
		if err != nil {
			return nil, fmt.Errorf("explain %s for %s: %w", id, res.Object(), err)
		}
		for _, f := range firings {
			exps = append(exps, report.Explanation{Policy: id, Rule: f.Rule, File: f.File, Line: f.Row, Message: f.Message})
		}
		if o.Explain == explainFull {
			file := eng.Registry().Policy(id).File
			var kept []*topdown.Event
			for _, ev := range trace.Events {
				if ev.Location != nil && ev.Location.File == file {
					kept = append(kept, ev)
				}
			}
			var text strings.Builder
			topdown.PrettyTraceWithLocation(&text, kept)
			fmt.Fprintf(streams.Err, "trace of %s for %s (%s):\n%s", id, res.Object(), file, trace.Redact(text.String()))
		}
	}
	return exps, nil
}
