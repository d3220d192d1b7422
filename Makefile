# hopwatch — the entry points. `make help` lists them.
SHELL := /bin/bash
BIN   := $(CURDIR)/bin
GO    ?= go
export PATH := $(BIN):$(PATH):/usr/sbin:/sbin

# Binaries that `make build` produces.
CMDS := hopwatch-proxy statsd-sink demo

.PHONY: help build test unit lint e2e bench bench-go bench-proxy bench-sink tools tools-up tools-test tools-lint test-deps fuzz up up-plain dashboards clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the binaries into ./bin
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

test: test-deps tools-test build lint unit ## everything CI runs: lint, race-enabled unit, integration and end-to-end tests

unit: ## go test -race over every package (integration and e2e tests, and the real-Jaeger test, included)
	$(GO) test -race -count=1 -timeout 30m -tags jaeger ./...

lint: tools-lint ## golangci-lint with the committed .golangci.yml, plus gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/golangci-lint run --allow-parallel-runners ./...

bench: bench-go bench-proxy bench-sink ## all benchmarks; figures go to BENCHMARKS.md

bench-go: ## Go micro-benchmarks of the hot paths, with allocations
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./proxy/... ./sink/...

bench-proxy: build ## wrk against hopwatch-proxy, nginx, HAProxy and Caddy in one run; MODES=h2,grpc,idle,bodies,stats adds HTTP/2, gRPC, idle-connection, 1 MiB-body and stats-sink comparisons with nginx
	bench/proxy/run.sh

bench-sink: build tools-test ## statsd-sink vs statsd_exporter on identical streams, then statsd-sink with and without exemplar lines
	$(GO) run ./bench/sink/benchsink

tools: ## build every pinned dev tool into ./bin (skips tools already at their pinned version)
	tools/build.sh $(notdir $(patsubst %/,%,$(wildcard tools/*/)))

test-deps: ## Debian packages the tests run: nginx, HAProxy, Caddy and wrk (the proxy benchmark's peers; their configs are validated by the real programs), redis-server (the rate-limit service's store in e2e/ratelimit), jq (the Tiltfile's pipeline-check reads Jaeger's traces with it) and Debian's Prometheus 2.42 (the dev environment's Prometheus with a web UI, which `tilt ci` runs)
	@bench/proxy/install-peers.sh
	@bench/proxy/install-peers.sh redis-server jq
	@deploy/local/prometheus-classic.sh $(BIN)/prometheus-classic

tools-lint:
	@tools/build.sh golangci-lint

tools-test: ## tools the tests run against: statsd_exporter (sink differential test), Jaeger (tracing e2e), Prometheus (dashboards live proof), Tilt and kustomize (dev environment), envoyproxy/ratelimit (rate-limiting e2e), promtool and Alertmanager (alert rules and their live proof), h2spec (HTTP/2 conformance e2e)
	@tools/build.sh statsd_exporter jaeger prometheus tilt kustomize ratelimit promtool alertmanager h2spec

fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg || exit 1; \
	  done; done

security-peers: ## run the smuggling probes against nginx and HAProxy too and rewrite the probe table in docs/security.md
	@bench/proxy/install-peers.sh nginx haproxy
	SMUGGLING_PEERS=1 $(GO) test -count=1 -run TestPeers ./e2e/smuggling/

dashboards: ## generate dashboards/generated/*.json, dashboards/preview/*.png and deploy/grafana/provisioning/
	$(GO) run ./cmd/dashgen

up: build tools-up ## the dev environment: tilt up over local mode (pipeline, demo, Prometheus with the alert rules, Alertmanager, Jaeger; Grafana if on PATH). TILT_ARGS='--port-base=N' moves ports
	tilt up --web-mode=prod -- $(TILT_ARGS)

up-plain: build ## the local pipeline as plain processes, without Tilt (deploy/local/up.sh)
	bash deploy/local/up.sh

tools-up: # the pinned Tilt unless another tilt is installed, the tools the Tiltfile runs, and Debian's Prometheus 2.42 for its classic web UI (the module build has none)
	@if ! command -v tilt >/dev/null 2>&1 || [ "$$(command -v tilt)" = "$(BIN)/tilt" ]; then tools/build.sh tilt; fi
	@tools/build.sh prometheus jaeger alertmanager
	@deploy/local/prometheus-classic.sh $(BIN)/prometheus-classic

clean: ## remove build outputs (keeps pinned tools)
	rm -f $(addprefix $(BIN)/,$(CMDS))
