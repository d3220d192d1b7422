# syntax=docker/dockerfile:1
# hopwatch-proxy: a static binary on distroless (nonroot). Build from the repository
# root (the Tiltfile's k8s mode does):
#
#   docker build -f deploy/docker/hopwatch-proxy.Dockerfile -t hopwatch/hopwatch-proxy:dev .
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/hopwatch-proxy ./cmd/hopwatch-proxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hopwatch-proxy /hopwatch-proxy
USER 65532:65532
ENTRYPOINT ["/hopwatch-proxy"]
