# syntax=docker/dockerfile:1
# Multi-arch with buildx (`make image`): the build stage runs on the builder's
# own platform and cross-compiles for TARGETOS/TARGETARCH (static, no cgo), so
# no emulation is needed.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
# Stamped into the binary (`portcullis version`, portcullis_build_info); the
# Makefile passes them from cmd/portcullis/VERSION and git.
ARG VERSION=devel COMMIT=unknown BUILD_DATE=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
    -ldflags="-s -w -X github.com/portcullis/portcullis/cmd/portcullis/internal/version.version=${VERSION} -X github.com/portcullis/portcullis/cmd/portcullis/internal/version.commit=${COMMIT} -X github.com/portcullis/portcullis/cmd/portcullis/internal/version.date=${BUILD_DATE}" \
    -o /out/portcullis ./cmd/portcullis

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=devel
LABEL org.opencontainers.image.source="https://github.com/portcullis/portcullis" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/portcullis /portcullis
USER 65532:65532
ENTRYPOINT ["/portcullis"]
CMD ["serve", "--bind-address=0.0.0.0"]
