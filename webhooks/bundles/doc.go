// Package bundles pulls OPA bundles (HTTPS and OCI registries) with OPA's own
// download and bundle packages and activates each one as a layer of the
// policy set (engine.Layer), stacked over the built-in policies and the
// --policies directories.
//
// An activation goes through the same guards as a file reload: the new set
// is loaded in full (compile errors, sandbox-refused built-ins), checked by
// engine.CheckReload (no policies left, a required policy dropped) and only
// then swapped in; anything refused leaves the last good set serving. With
// verification keys configured, OPA's bundle reader refuses unsigned bundles
// and bad signatures before Portcullis sees them.
//
// OPA's references:
// https://www.openpolicyagent.org/docs/management-bundles (bundle format,
// polling, ETag), https://www.openpolicyagent.org/docs/management-bundles#signing
// (signatures), https://pkg.go.dev/github.com/open-policy-agent/opa/v1/download.
package bundles
