#!/usr/bin/env bash
# Builds the kube-apiserver and etcd binaries the e2e tests run, from the Go
# module proxy only (nothing else is downloaded), into a cache directory, and
# prints that directory on stdout (everything else goes to stderr).
#
# Warm runs skip the build: the binaries are rebuilt only when missing or when
# this module's go.mod/go.sum or this script changed (a stamp records a hash
# of them). The Kubernetes version is the one pinned in go.mod.
#
# Environment:
#   PORTCULLIS_KUBE_CACHE  cache directory
#                          (default $HOME/.cache/portcullis/kube-<version>)
#   PORTCULLIS_BUILD_NICE  niceness of the build (default 10)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly"

# The version comes from go.mod without resolving the module graph, so a warm
# run costs no `go list` over the whole graph.
kube_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' go.mod)"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' go.mod)"
if [[ ! "$kube_version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	echo "build.sh: cannot read the k8s.io/kubernetes version from go.mod (got '$kube_version')" >&2
	exit 1
fi
major="${BASH_REMATCH[1]}"
minor="${BASH_REMATCH[2]}"

cache="${PORTCULLIS_KUBE_CACHE:-${HOME}/.cache/portcullis/kube-${kube_version}}"
stamp_want="$(cat go.mod go.sum build.sh | sha256sum | cut -d' ' -f1)"
if [[ -x "$cache/kube-apiserver" && -x "$cache/etcd" && -f "$cache/.stamp" &&
	"$(cat "$cache/.stamp")" == "$stamp_want" ]]; then
	echo "$cache"
	exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The release date of the module, not the wall clock, so rebuilds are
# reproducible. gitCommit stays empty: the proxy does not tell the commit.
build_date="$(go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X ${pkg}.gitVersion=${kube_version}"
	ldflags+=" -X ${pkg}.gitMajor=${major}"
	ldflags+=" -X ${pkg}.gitMinor=${minor}"
	ldflags+=" -X ${pkg}.gitTreeState=clean"
	ldflags+=" -X ${pkg}.buildDate=${build_date}"
done
ldflags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=${etcd_version}"

nice="${PORTCULLIS_BUILD_NICE:-10}"
echo "build.sh: building kube-apiserver ${kube_version} and etcd ${etcd_version} into ${cache} (takes minutes on a cold cache)" >&2
start=$SECONDS
# Packages shared by the two binaries compile once (the Go build cache).
CGO_ENABLED=0 nice -n "$nice" go build -trimpath -ldflags "$ldflags" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
CGO_ENABLED=0 nice -n "$nice" go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
mv -f "$tmp/kube-apiserver" "$cache/kube-apiserver"
mv -f "$tmp/etcd" "$cache/etcd"
echo "$stamp_want" >"$cache/.stamp"
echo "build.sh: built in $((SECONDS - start)) s" >&2
echo "$cache"
