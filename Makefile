# Portcullis. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN ?= bin/portcullis
# The release version lives in cmd/portcullis/VERSION alone; the manifests' image tag, the
# chart's appVersion and the README are checked against it (manifests/version_test.go).
VERSION ?= $(shell cat cmd/portcullis/VERSION)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the wall clock: the same commit builds the same binary.
BUILD_DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
VERSION_PKG := github.com/portcullis/portcullis/cmd/portcullis/internal/version
LDFLAGS := -s -w -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(COMMIT) -X $(VERSION_PKG).date=$(BUILD_DATE)
IMAGE_REPO ?= ghcr.io/portcullis/portcullis
IMAGE ?= $(IMAGE_REPO):$(VERSION)
PLATFORMS ?= linux/amd64,linux/arm64
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
DIST ?= dist
GOFLAGS_TEST ?=
BENCHTIME ?= 2s
BENCHCOUNT ?= 5

.PHONY: help build run test test-go test-rego test-opa bundle e2e bench bench-load bench-adversarial soak pgo lint fmt manifests docker-build image release fuzz clean

help: ## Show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

build: ## Build bin/portcullis (CGO off, static, version stamped from cmd/portcullis/VERSION and git)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/portcullis

release: ## Versioned static binaries for RELEASE_PLATFORMS in dist/, with dist/SHA256SUMS
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%%/*}; arch=$${p##*/}; out=$(DIST)/portcullis-$(VERSION)-$$os-$$arch; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $$out ./cmd/portcullis; \
	done
	cd $(DIST) && sha256sum portcullis-* > SHA256SUMS && cat SHA256SUMS

run: ## Run the server on the embedded default (built-in policies, self-signed cert, 127.0.0.1:9443)
	$(GO) run ./cmd/portcullis serve

test: lint test-go test-rego test-opa e2e ## Run the whole test suite (vet, Go tests, Rego tests, stock OPA checks, end-to-end)

test-go: ## Go unit, golden, parity and fuzz-seed tests
	$(GO) test $(GOFLAGS_TEST) ./...

test-rego: ## Rego unit tests of the built-in policies, with our own binary
	$(GO) run ./cmd/portcullis test policies

test-opa: ## Stock OPA (built from go.mod's version) on the policy tree as it is: opa test, opa check --strict, opa fmt
	$(GO) build -o bin/opa github.com/open-policy-agent/opa
	bin/opa test policies/
	bin/opa check --strict policies/
	bin/opa fmt --diff --fail policies/

# The built-in policies as an OPA bundle, built by stock `opa build` from what
# the binary embeds (policies/*/*.rego without tests) with policies/config.yaml
# as data.portcullis.config (the layer's configuration, see README "OPA
# bundles"). SIGNING_KEY=key.pem (RS256, or SIGNING_ALG) signs it as `opa sign`
# does; serve verifies it with --bundle-verification-key.
BUNDLE ?= bin/bundle.tar.gz
BUNDLE_REVISION ?= $(VERSION)
SIGNING_KEY ?=
SIGNING_ALG ?= RS256
bundle: ## The built-in policies as an OPA bundle (BUNDLE, default bin/bundle.tar.gz) with stock opa build; SIGNING_KEY=key.pem signs it
	$(GO) build -o bin/opa github.com/open-policy-agent/opa
	rm -rf bin/bundle-src && mkdir -p bin/bundle-src/portcullis/config
	@set -e; for f in policies/*/*.rego; do \
		case $$f in *_test.rego) continue;; esac; \
		mkdir -p bin/bundle-src/$$(dirname $${f#policies/}); cp $$f bin/bundle-src/$${f#policies/}; \
	done
	cp policies/config.yaml bin/bundle-src/portcullis/config/data.yaml
	@# From inside the directory: opa build names the modules by the path it is given.
	cd bin/bundle-src && ../opa build -b . -o $(abspath $(BUNDLE)) --revision $(BUNDLE_REVISION) \
		$(if $(SIGNING_KEY),--signing-key $(abspath $(SIGNING_KEY)) --signing-alg $(SIGNING_ALG))
	@echo "bundle: $(BUNDLE) (revision $(BUNDLE_REVISION)$(if $(SIGNING_KEY),, unsigned))"

e2e: ## End-to-end tests on a real kube-apiserver and etcd (builds them once, cached)
	@if [ -x e2e/run.sh ]; then e2e/run.sh; else echo "e2e: no suite yet"; fi

bench: ## Benchmarks of the decode→evaluate→encode path (figures for the README)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./webhooks/ ./policies/...

# Profile-guided optimisation: `go build ./cmd/portcullis` (make build, the
# image, releases, bench-load) uses cmd/portcullis/default.pgo automatically
# (Go's -pgo=auto). It is a CPU profile of the admission path: the webhook
# handler (decode, evaluate, encode) and the engine on the bench bodies,
# validating and mutating. Regenerate it after large engine or policy changes.
PGO_BENCHTIME ?= 2s
pgo: ## Regenerate cmd/portcullis/default.pgo, the CPU profile Go's profile-guided optimisation builds the binary with
	@mkdir -p bin
	$(GO) test -run '^$$' -bench 'BenchmarkServe' -benchtime $(PGO_BENCHTIME) -cpuprofile bin/pgo-serve.prof -o bin/webhooks.test ./webhooks/
	$(GO) test -run '^$$' -bench 'BenchmarkEvaluate/(typical-pod|large-pod|deployment)/(validating|mutating)$$' -benchtime $(PGO_BENCHTIME) -cpuprofile bin/pgo-engine.prof -o bin/engine.test ./policies/engine/
	$(GO) tool pprof -proto bin/pgo-serve.prof bin/pgo-engine.prof > cmd/portcullis/default.pgo

BENCH_LOAD_FLAGS ?=
bench-load: ## Side-by-side load test on loopback: floor, portcullis, stock OPA on one core, then 2 and 4 cores where the machine has them; targets met or missed (~8 min on 2 cores; bench-load.md)
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/portcullis ./cmd/portcullis
	$(GO) build -o bin/opa github.com/open-policy-agent/opa
	$(GO) build -o bin/bench-load ./cmd/bench-load
	@if command -v taskset >/dev/null; then pin="taskset -c 1"; else pin=""; echo "bench-load: no taskset, nothing pinned"; fi; \
		$$pin bin/bench-load -portcullis bin/portcullis -opa bin/opa -out bench-load.md $(BENCH_LOAD_FLAGS)

ADVERSARIAL_FLAGS ?=
bench-adversarial: ## Hostile tenant on loopback (~1 min): small pods during a flood of 1 MB credential ConfigMaps, peak RSS under 160 concurrent 3 MB bodies; fails if a target is missed
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/portcullis ./cmd/portcullis
	$(GO) build -o bin/bench-load ./cmd/bench-load
	@if command -v taskset >/dev/null; then pin="taskset -c 1"; else pin=""; fi; \
		$$pin bin/bench-load adversarial -portcullis bin/portcullis -out bench-adversarial.md $(ADVERSARIAL_FLAGS)

SOAK_DURATION ?= 10m
SOAK_FLAGS ?=
soak: ## One server, SOAK_DURATION (10m) at 500 requests/s of mixed bodies on loopback; RSS, goroutines, errors, p50/p99 every 10 s; fails unless no admission failed and RSS and goroutines stay flat
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/portcullis ./cmd/portcullis
	$(GO) build -o bin/bench-load ./cmd/bench-load
	bin/bench-load soak -portcullis bin/portcullis -duration $(SOAK_DURATION) $(SOAK_FLAGS)

fuzz: ## Run each fuzz target for FUZZTIME (default 30s)
	@for t in FuzzDecodeReview:./webhooks FuzzServeHTTP:./webhooks FuzzParse:./cmd/portcullis/internal/input FuzzFieldPath:./cmd/portcullis/internal/report \
		FuzzParseJSONValue:./policies/engine FuzzRedact:./policies/engine FuzzMutationIdempotent:./policies/mutations \
		FuzzParseNamespaceLabels:./audit FuzzParseSpec:./webhooks/bundles; do \
		name=$${t%%:*}; pkg=$${t##*:}; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $${FUZZTIME:-30s} $$pkg || exit 1; \
	done

lint: ## go vet and gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt: ## gofmt the Go code
	gofmt -w $$(git ls-files '*.go')

manifests: ## Render the kustomize manifests into manifests/rendered/
	@if [ -f manifests/render.go ] || [ -d manifests/cmd ]; then $(GO) run ./manifests/cmd/render; else echo "manifests: not yet"; fi

docker-build: ## Build the container image for this machine's platform (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) -t $(IMAGE) .

# Multi-arch: buildx cross-compiles in the build stage (Go, no emulation) for
# each of PLATFORMS. Needs `docker buildx create --use` once; --push, since a
# multi-platform image cannot be loaded into the local engine.
image: ## Build and push the multi-arch image IMAGE (PLATFORMS) with docker buildx
	docker buildx build --platform $(PLATFORMS) \
		--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) \
		-t $(IMAGE) --push .

clean: ## Remove build output
	rm -rf bin $(DIST)
