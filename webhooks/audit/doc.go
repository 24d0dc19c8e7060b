// Package audit evaluates what already runs in a cluster: it lists (the CLI)
// or watches (the server) every resource kind the loaded validating policies
// declare, builds for each object the AdmissionReview creating it would
// produce, evaluates it through the same engine.Evaluate the webhooks call,
// and reports the violations: as CLI output, or as OpenReports Reports
// (openreports.io/v1alpha1) written by the one replica holding the audit
// Lease. It also supplies namespace labels to the engine (input.namespace).
package audit
