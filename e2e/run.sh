#!/usr/bin/env bash
# Runs the end-to-end tests (make e2e): builds kube-apiserver and etcd from
# the Go module proxy when the cache is cold (tools/build.sh; minutes on two
# cores, skipped when warm), then runs `go test -tags e2e ./e2e/...` against
# them. Extra arguments go to `go test` (e.g. -run TestAPIServerVersion -v).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(bash e2e/tools/build.sh)}"
export KUBEBUILDER_ASSETS
echo "e2e: kube-apiserver and etcd from $KUBEBUILDER_ASSETS" >&2

exec go test -tags e2e -count=1 -timeout "${E2E_TIMEOUT:-20m}" "$@" ./e2e/...
