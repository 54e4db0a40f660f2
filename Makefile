# HyperFleet Maestro adapter. `make run` and `make test` are the two set-up
# commands of the README: each works on a fresh machine.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
TYPES     := namespace nodepool pullsecret idp ingress template
TEST_TIMEOUT ?= 30m
# Integration tests fail (instead of skipping) when their services are missing.
export REQUIRE_INTEGRATION ?= 1

include deploy/local/maestro.mk
include deploy/local/kube/kube.mk

.PHONY: build run test unit lint fmt vet layers fuzz bench services clean

build: ## Build both binaries, static.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/adapter ./cmd/adapter
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/maestro-cli ./cmd/maestro-cli

run: build ## Replay the recorded events of every built-in adapter type on the embedded backend.
	@set -e; for t in $(TYPES); do \
	  extra=""; [ "$$t" = template ] && extra="--template-dir testdata/templates"; \
	  echo "--- adapter type $$t: testdata/recordings/$$t.jsonl" >&2; \
	  $(BIN)/adapter replay --adapter $$t $$extra testdata/recordings/$$t.jsonl; \
	done

services: ## Start PostgreSQL and RabbitMQ when they are not running.
	deploy/local/services.sh ensure

# The builds: the maestro binary (migration, server and the real agent) and
# kube-apiserver + kube-controller-manager, each cached by a hash of its
# sources. kube.sh start runs the controller manager with the API server;
# tests start real agents for their own consumers (maestro/agenttest), and
# maestro.sh stop also stops any agent a crashed test left behind.
test: services ## All tests, against real RabbitMQ, PostgreSQL, a local Maestro server (with real agents per test) and kube-apiserver + kube-controller-manager.
	deploy/local/maestro.sh build
	deploy/local/kube/kube.sh build
	@set -e; trap 'deploy/local/maestro.sh stop; deploy/local/kube/kube.sh stop' EXIT; \
	  deploy/local/maestro.sh start; \
	  deploy/local/kube/kube.sh start; \
	  eval "$$(deploy/local/maestro.sh env)"; \
	  eval "$$(deploy/local/kube/kube.sh env)"; \
	  $(GO) vet ./...; \
	  $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...; \
	  (cd deploy/local/ocm-common-sqlparser && $(GO) test -count=1 ./...); \
	  (cd deploy/helm && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...); \
	  echo "--- disruptive and heavy tests (restart the shared RabbitMQ and Maestro, or saturate the machine), one package at a time"; \
	  DISRUPTIVE_TESTS=1 MAESTROTEST_RESTART=1 RABBITMQ_RESTART_TEST=1 $(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) \
	    -run 'Disruptive|SurvivesMaestroRestart|TestBrokerRestart|TestReplicaKills' ./cmd/adapter ./maestro/maestrotest ./events/rabbitmq

unit: ## Tests that need no services (the integration ones skip).
	REQUIRE_INTEGRATION=0 $(GO) test -count=1 ./...

lint: fmt vet layers ## gofmt, go vet and the import direction.

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Imports point down: internal/layers holds the one table of our layers.
layers:
	$(GO) test -count=1 -run TestImportsPointDown ./internal/layers

# FUZZMINIMIZETIME: the seeds include inputs of hundreds of KiB (the size
# bounds are part of what is fuzzed), and Go minimizes every new interesting
# input for up to 60 s by default; on those it ran the whole time, and the
# fuzzer sat at 0 execs/s for most of a run (19k execs in 60 s; 43k and 6×
# the new inputs with 2 s).
fuzz: ## Fuzz the event decoder and the template renderer, FUZZTIME (default 60s) each, from their seed corpora.
	$(GO) test ./events -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime $${FUZZMINIMIZETIME:-2s}
	$(GO) test ./handlers -run '^$$' -fuzz FuzzTemplateValues -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime $${FUZZMINIMIZETIME:-2s}

# Where make bench keeps the Go benchmarks' output, the profiles and a copy
# of the profiled adapter binary.
BENCH_DIR ?= /tmp/hyperfleet-bench

bench: services ## Hot-path Go benchmarks, then the end-to-end benchmark on the real local stack; writes BENCHMARKS.md and benchmarks.json.
	deploy/local/maestro.sh build
	deploy/local/kube/kube.sh build
	@set -e -o pipefail; mkdir -p $(BENCH_DIR); \
	  started=""; \
	  deploy/local/maestro.sh status >/dev/null 2>&1 || started="$$started maestro"; \
	  deploy/local/kube/kube.sh status >/dev/null 2>&1 || started="$$started kube"; \
	  trap 'for s in $$started; do deploy/local/$$([ $$s = kube ] && echo kube/kube.sh || echo maestro.sh) stop; done' EXIT; \
	  deploy/local/maestro.sh start; \
	  deploy/local/kube/kube.sh start; \
	  eval "$$(deploy/local/maestro.sh env)"; \
	  eval "$$(deploy/local/kube/kube.sh env)"; \
	  micro=0; $(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) ./... 2>&1 | tee $(BENCH_DIR)/go-bench.txt || micro=$$?; \
	  BENCH_E2E=1 BENCH_MICRO=$(BENCH_DIR)/go-bench.txt BENCH_PROFILE_DIR=$(BENCH_DIR) BENCH_OUT=$(CURDIR) \
	    $(GO) test -count=1 -timeout 60m -run TestEndToEndBenchmark -v ./internal/bench; \
	  if [ $$micro -ne 0 ]; then echo "make bench: some Go benchmarks failed (see $(BENCH_DIR)/go-bench.txt)" >&2; exit $$micro; fi

clean:
	rm -rf $(BIN)
