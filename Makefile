# dlb — developer targets. Needs Go and a Docker Engine; Compose v2 (`docker compose`)
# or v1 (`docker-compose`), whichever is installed.
SHELL := /bin/bash
GO ?= go
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)
SCALE ?= 3
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build images demo down test test-unit fuzz bench clean docker-ready test-deps

all: build

build: bin/dlb bin/demo bin/grpc-demo

bin/dlb: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dlb ./cmd/dlb

bin/demo: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/demo ./examples/demo

bin/grpc-demo: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/grpc-demo ./examples/grpc

# Makes sure a Docker Engine answers: starts dockerd when it is installed but
# not running, and installs Compose from Debian when neither v2 nor v1 is there.
docker-ready:
	@if ! docker info >/dev/null 2>&1; then \
	  command -v dockerd >/dev/null || { echo "no Docker Engine: install docker.io (Debian) or Docker Engine, then retry" >&2; exit 1; }; \
	  echo "starting dockerd (log: /tmp/dockerd.log)"; \
	  (nohup dockerd >/tmp/dockerd.log 2>&1 &); \
	  for i in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	  docker info >/dev/null 2>&1 || { echo "dockerd did not come up in 60s; see /tmp/dockerd.log" >&2; exit 1; }; \
	fi
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq docker-compose; }

# Tools some real-engine tests drive, installed from Debian when missing:
# curl and h2load for HTTP/2; Chromium for the dashboard test (headless,
# driven over the DevTools protocol), unless DLB_SKIP_BROWSER=1 or
# DLB_SKIP_DOCKER=1. Works without a terminal (CI=true, no stdin).
test-deps:
	@missing=""; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	if [ "$${DLB_SKIP_BROWSER:-}" != 1 ] && [ "$${DLB_SKIP_DOCKER:-}" != 1 ]; then \
	  browser=""; \
	  for b in chromium chromium-browser google-chrome google-chrome-stable; do command -v $$b >/dev/null && browser=$$b && break; done; \
	  [ -n "$$browser" ] || missing="$$missing chromium fonts-liberation"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (log: /tmp/dlb-test-deps.log)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } </dev/null >/tmp/dlb-test-deps.log 2>&1 || \
	    echo "could not install$$missing (see /tmp/dlb-test-deps.log); the tests that need them will say how to install them" >&2; \
	fi

# Images are FROM scratch: they only COPY the static binaries built above.
images: build
	docker build -q -t dlb:dev .
	docker build -q -t dlb-demo:dev -f examples/demo/Dockerfile .
	docker build -q -t dlb-grpc:dev -f examples/grpc/Dockerfile .

# The main job: the example stack, dlb in front of the app scaled to $(SCALE).
demo: docker-ready images
	$(COMPOSE) up -d --no-build --scale app=$(SCALE)
	@echo "dlb is on http://localhost:$${DLB_PORT:-8000}/ (admin: http://127.0.0.1:$${DLB_ADMIN_PORT:-8080}/api/pools)"
	@echo "try:  for i in 1 2 3 4 5 6; do curl -s localhost:$${DLB_PORT:-8000}/; done"
	@echo "then: $(COMPOSE) up -d --no-build --scale app=5"

down:
	$(COMPOSE) down --remove-orphans

# Everything CI runs: vet, then unit and real-engine tests under the race detector.
# go test vets each package it tests with every check go vet makes (-vet=all),
# on the race build it compiles anyway, so go vet itself runs only on the
# packages without tests (go test only builds those), and nothing is compiled
# twice. -parallel 4: the real-engine tests that wait on the engine run four at
# a time, the longest first (cmd/dlb/e2e_test.go says which run alone).
test: docker-ready test-deps
	$(GO) vet $$($(GO) list -f '{{if not (or .TestGoFiles .XTestGoFiles)}}{{.ImportPath}}{{end}}' ./...)
	$(GO) test -race -vet=all -count=1 -timeout 30m -parallel 4 ./...
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

test-unit:
	DLB_SKIP_DOCKER=1 $(GO) test -race -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseLabels -fuzztime 30s ./discovery
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime 30s ./internal/h1
	$(GO) test -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime 30s ./internal/h1
	$(GO) test -run '^$$' -fuzz '^FuzzChunkScanner$$' -fuzztime 30s ./internal/h1
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime 30s ./internal/h1
	$(GO) test -run '^$$' -fuzz FuzzNormalizePath -fuzztime 30s ./proxy
	$(GO) test -run '^$$' -fuzz FuzzRequestRouting -fuzztime 30s ./proxy

# dlb, nginx and HAProxy in front of the same demo containers, plus the direct
# ceiling; writes docs/benchmarks.md and .png. Knobs: BENCH_REPLICAS, BENCH_ROUNDS,
# BENCH_DURATION, BENCH_CONNS, BENCH_CONVERGENCE, BENCH_CONV_REPLICAS; BENCH_QUICK=1 for a
# smoke run (see bench/bench.sh).
bench: docker-ready
	bash bench/bench.sh

clean:
	rm -rf bin

FORCE:
