// Package e2e holds Portcullis' end-to-end tests: a real kube-apiserver and
// etcd (built from the Go module proxy by tools/build.sh at the Kubernetes
// version pinned in tools/go.mod), started by controller-runtime's envtest,
// driven with client-go. TestMain also builds the portcullis binary, which
// the tests start as separate `portcullis serve` processes on loopback
// (file mode with a generated certificate, and self-signed mode through a
// kubeconfig for the test cluster), behind the webhook configurations
// rendered from manifests/ with their clientConfig pointed at them.
//
// The tests carry the build tag e2e, so a plain `go test ./...` skips them.
// Run them with ./e2e/run.sh (make e2e), which builds the binaries when
// missing and runs `go test -tags e2e ./e2e/...`.
package e2e
