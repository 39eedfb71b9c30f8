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
# Man pages and release archives carry the last commit's date, not today's,
# so that two release builds of one commit are identical.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
BIN_DIR ?= bin
DIST ?= dist
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
CONTAINER_TOOL ?= $(shell command -v podman || command -v docker)
IMAGE ?= sluice:$(VERSION)

.PHONY: build demo demo-failover demo-fleet test test-short vet fuzz bench man release container clean

build: ## build bin/sluice (no cgo)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/sluice ./cmd/sluice

demo: build ## run sluice in front of a throwaway PostgreSQL
	$(BIN_DIR)/sluice demo

demo-failover: build ## primary + synchronous standby behind sluice; kill -9 the primary under a write counter
	$(BIN_DIR)/sluice demo --failover

demo-fleet: build ## etcd + primary + standby + 3 sluices + HAProxy; kill -9 the primary, then a sluice
	$(BIN_DIR)/sluice demo --fleet

vet:
	$(GO) vet ./...

test: vet ## unit + integration tests against a real PostgreSQL, with -race
	$(GO) test -race -count=1 -timeout 25m ./...

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

man: build ## man pages from the commands into dist/man (man -l dist/man/sluice.1)
	rm -rf $(DIST)/man
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(BIN_DIR)/sluice man --dir $(DIST)/man

# One archive per platform, sluice-VERSION-OS-ARCH.tar.gz (VERSION as
# `sluice version` prints it), holding the binary, LICENSE, README.md,
# CHANGELOG.md, the example config and the man pages; SHA256SUMS over them.
# Check a download with: sha256sum -c --ignore-missing SHA256SUMS.
# Takes about 4 minutes on 2 loaded cores with a cold build cache; checked
# by SLUICE_TEST_RELEASE=1 go test -run TestMakeRelease ./cmd/sluice/
release: man ## cross-build RELEASE_PLATFORMS into dist/ with SHA256SUMS
	@set -euo pipefail; rm -f $(DIST)/sluice-*.tar.gz $(DIST)/SHA256SUMS; \
	version=$$($(BIN_DIR)/sluice version | cut -d' ' -f2); \
	for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; name=sluice-$$version-$$os-$$arch; dir=$(DIST)/$$name; \
	  echo "== $$name"; rm -rf $$dir; mkdir -p $$dir; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $$dir/sluice ./cmd/sluice; \
	  cp LICENSE README.md CHANGELOG.md deploy/sluice.yaml $$dir/; cp -R $(DIST)/man $$dir/man; \
	  tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner -C $(DIST) -cf - $$name | gzip -n > $$dir.tar.gz; \
	  rm -rf $$dir; \
	done; \
	cd $(DIST) && sha256sum sluice-*.tar.gz > SHA256SUMS && cat SHA256SUMS

container: ## build the container image IMAGE with podman (or docker)
	$(CONTAINER_TOOL) build $(if $(findstring podman,$(CONTAINER_TOOL)),--format docker) -f deploy/container/Containerfile \
	  --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

clean:
	rm -rf bin dist
