package engine

import "errors"

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrLoad marks a policy set or configuration that cannot be loaded:
	// parse or compile errors, bad METADATA, duplicate IDs, bad config.
	ErrLoad = errors.New("load policies")
	// ErrBadRequest marks an AdmissionRequest the engine cannot evaluate
	// (missing fields, an object that is not JSON).
	ErrBadRequest = errors.New("bad admission request")
)
