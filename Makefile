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

.PHONY: build run test unit lint fmt vet fuzz bench services clean

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

test: services ## All tests, against real RabbitMQ, PostgreSQL, a local Maestro server and kube-apiserver.
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
	  echo "--- disruptive tests (restart the shared RabbitMQ and Maestro), one package at a time"; \
	  DISRUPTIVE_TESTS=1 MAESTROTEST_RESTART=1 RABBITMQ_RESTART_TEST=1 $(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) \
	    -run 'Disruptive|SurvivesMaestroRestart|TestBrokerRestart' ./cmd/adapter ./maestro/maestrotest ./events/rabbitmq

unit: ## Tests that need no services (the integration ones skip).
	REQUIRE_INTEGRATION=0 $(GO) test -count=1 ./...

lint: fmt vet ## gofmt and go vet.

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

fuzz: ## Fuzz the event decoder for FUZZTIME (default 60s) from testdata's seed corpus.
	$(GO) test ./events -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s}

bench: ## Go benchmarks of the hot paths.
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN)
