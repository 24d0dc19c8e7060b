// Package engine is Portcullis' decision engine: it loads Rego policies and
// their configuration into an immutable Registry, and evaluates AdmissionReview
// requests against it. It has no HTTP dependencies: the webhook server and
// `portcullis validate` both call Engine.Evaluate, so they reach the same
// decision by the same code.
//
// A policy violation is a result (Decision.Violations), never an error; an
// error means the request was malformed or the engine itself failed.
package engine
