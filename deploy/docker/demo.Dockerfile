# syntax=docker/dockerfile:1
# demo: a static binary on distroless (nonroot). Build from the repository
# root (the Tiltfile's k8s mode does):
#
#   docker build -f deploy/docker/demo.Dockerfile -t hopwatch/demo:dev .
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/demo ./cmd/demo

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/demo /demo
USER 65532:65532
ENTRYPOINT ["/demo"]
