# Developer and CI entry points. CI runs `make test` through .ci/run.

export PATH := /usr/local/go/bin:$(PATH)

GO       ?= go
FUZZTIME ?= 30s
FUZZPKGS ?= ./...

.PHONY: all test cross compat demo bench soak fuzz fmt vet build

all: build

## test: vet, then run every test (PostgreSQL clusters included); the
## packages of RACEPKGS, where sessions share state across goroutines,
## run under the race detector. The real clients run twice: in session
## mode, then through a transaction pool of three backends.
RACEPKGS ?= ./proxy/... ./rewrite
test: vet cross
	$(GO) test -count=1 -timeout 40m $$($(GO) list ./... | grep -v -x -F "$$($(GO) list $(RACEPKGS))")
	COMPAT_POOL=transaction $(GO) test -count=1 -timeout 20m ./internal/compat/
	$(GO) test -race -count=1 -timeout 40m $(RACEPKGS)

## cross: build for macOS and Windows without cgo: the packages that do
## not need pg_query's C parser as they are, the others with its cgo code
## stubbed, so that no Linux-only code hides outside files tagged for
## Linux (testdata/cross/check.sh). A few seconds once cached.
CROSSOS ?= darwin windows
cross:
	GO=$(GO) sh testdata/cross/check.sh $(CROSSOS)

## compat: install the real clients, then run the client compatibility suite.
compat:
	bash internal/compat/install.sh
	$(GO) test -count=1 -timeout 20m ./internal/compat/

## demo: run the demo against a throwaway PostgreSQL. Built, then run
## directly: `go run` would end with status 1 on the Ctrl-C that stops it.
demo:
	$(GO) build -o bin/pgveil-demo ./cmd/pgveil-demo
	./bin/pgveil-demo

## bench: run the benchmark program.
bench:
	$(GO) run ./cmd/pgveil-bench

## soak: outside `make test`, SOAKCLIENTS clients (default 500, each
## holding an upstream session) through the proxy for SOAKTIME (default
## 10m), then check that its goroutines, descriptors and heap came back.
## With SOAKPOOL=n they share a transaction pool of n backends instead:
## make soak SOAKCLIENTS=5000 SOAKPOOL=50.
SOAKTIME    ?= 10m
SOAKCLIENTS ?= 500
SOAKPOOL    ?=
soak:
	PGVEIL_SOAK=$(SOAKTIME) PGVEIL_SOAK_CLIENTS=$(SOAKCLIENTS) PGVEIL_SOAK_POOL=$(SOAKPOOL) $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./proxy/

## fuzz: run every fuzz target of FUZZPKGS (default all) for FUZZTIME (default 30s) each.
fuzz:
	@set -e; \
	for pkg in $$($(GO) list $(FUZZPKGS)); do \
		list="$$($(GO) test -list '^Fuzz' "$$pkg")"; \
		for target in $$(printf '%s\n' "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
		done; \
	done

## fmt: format the Go sources.
fmt:
	$(GO) fmt ./...

## vet: report suspicious constructs.
vet:
	$(GO) vet ./...

## build: compile every package and command.
build:
	$(GO) build ./...
