# syntax=docker/dockerfile:1
# statsd-sink: a static binary on distroless (nonroot). Build from the repository
# root (the Tiltfile's k8s mode does):
#
#   docker build -f deploy/docker/statsd-sink.Dockerfile -t hopwatch/statsd-sink:dev .
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/statsd-sink ./cmd/statsd-sink

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/statsd-sink /statsd-sink
USER 65532:65532
ENTRYPOINT ["/statsd-sink"]
