// Package webhooks is Portcullis' HTTP adapter: it decodes AdmissionReviews,
// hands the request to the decision engine and maps the decision onto an
// AdmissionResponse (controller-runtime's admission types). It holds no
// policy logic. It also runs the TLS server, the health and metrics
// endpoints, and writes the decision log.
package webhooks
