# sluice — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
# The version is the latest tag as git describes it: v0.2.0 on the tag of
# this release, v0.2.0-3-gabc1234(-dirty) after it. Before any tag exists
# describe prints only a hash; sluice then calls itself v0.2.0-dev
# (internal/version.Release) with that hash as the commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -X github.com/sluice-proxy/sluice/internal/version.Version=$(VERSION) -X github.com/sluice-proxy/sluice/internal/version.Commit=$(COMMIT)
BIN_DIR ?= bin

.PHONY: build demo demo-failover test test-short vet fuzz bench clean

build: ## build bin/sluice (no cgo)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/sluice ./cmd/sluice

demo: build ## run sluice in front of a throwaway PostgreSQL
	$(BIN_DIR)/sluice demo

demo-failover: build ## primary + synchronous standby behind sluice; kill -9 the primary under a write counter
	$(BIN_DIR)/sluice demo --failover

vet:
	$(GO) vet ./...

test: vet ## unit + integration tests against a real PostgreSQL, with -race
	$(GO) test -race -count=1 -timeout 15m ./...

test-short: ## quick: no race detector
	$(GO) test -count=1 ./...

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

bench: build ## sluice vs PgBouncer vs direct PostgreSQL; writes docs/benchmarks.md (BENCH_TIME, BENCH_ROUNDS, ...)
	bench/run.sh

clean:
	rm -rf bin
