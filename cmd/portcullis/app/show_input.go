package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/report"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/review"
	"github.com/portcullis/portcullis/policies/engine"
)

// objectInput is one object of `validate --show-input`: where it was read
// and the input documents the webhooks' policies received for it.
type objectInput struct {
	Source    string `json:"source"`
	Index     int    `json:"index"`
	Item      *int   `json:"item,omitempty"`
	Line      int    `json:"line"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Mutating is the input of the (first) mutating policy: the object as
	// written. Absent with --no-mutate.
	Mutating json.RawMessage `json:"mutating,omitempty"`
	// Validating is the input of the validating policies: the object as
	// the mutating policies left it.
	Validating json.RawMessage `json:"validating"`
}

// shownInputs is the document `validate --show-input` writes.
type shownInputs struct {
	// Config is data.portcullis.config.
	Config   map[string]any   `json:"config"`
	Objects  []objectInput    `json:"objects"`
	Problems []report.Problem `json:"problems"`
}

// showInput builds the inputs of the requests Decide sent for res, with the
// engine's own input building (engine.Input).
func showInput(ctx context.Context, eng *engine.Engine, res report.Result, out *review.Outcome) (objectInput, error) {
	oi := objectInput{Source: res.Source, Index: res.Index, Item: res.Item, Line: res.Line, Kind: res.Kind, Namespace: res.Namespace, Name: res.Name}
	var err error
	if out.MutateRequest != nil {
		if oi.Mutating, err = eng.Input(ctx, out.MutateRequest); err != nil {
			return oi, fmt.Errorf("input of %s %s: %w", res.Kind, res.Name, err)
		}
	}
	if oi.Validating, err = eng.Input(ctx, out.ValidateRequest); err != nil {
		return oi, fmt.Errorf("input of %s %s: %w", res.Kind, res.Name, err)
	}
	return oi, nil
}

// writeInputs writes the --show-input document, indented JSON.
func writeInputs(w io.Writer, config map[string]any, objs []objectInput, problems []report.Problem) error {
	doc := shownInputs{Config: config, Objects: objs, Problems: problems}
	if doc.Config == nil {
		doc.Config = map[string]any{}
	}
	if doc.Objects == nil {
		doc.Objects = []objectInput{}
	}
	if doc.Problems == nil {
		doc.Problems = []report.Problem{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write inputs: %w", err)
	}
	return nil
}
