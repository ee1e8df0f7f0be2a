# Lazaret build, run and test entry points. See README.md.
SHELL := /bin/bash
export GOTOOLCHAIN := local
GO      ?= go
BIN     := bin/lazaret
RUNDIR  ?= /tmp/lazaret-run
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test test-unit test-e2e bench proto proto-check lint deps fuzz clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/lazaret

## run: one node on embedded defaults (no config file, no PostgreSQL needed).
run: build
	$(BIN) serve --data $(RUNDIR)/data --socket $(RUNDIR)/lazaret.sock

## deps: install the Debian packages the tests use (idempotent; needs root).
deps:
	@./test/deps.sh

## proto: regenerate the committed gRPC/protobuf code.
proto: deps
	GOBIN=$(CURDIR)/bin $(GO) install tool
	protoc -I proto -I /usr/include \
	  --plugin=protoc-gen-go=bin/protoc-gen-go --plugin=protoc-gen-go-grpc=bin/protoc-gen-go-grpc \
	  --go_out=. --go_opt=module=github.com/lazaret/lazaret \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/lazaret/lazaret \
	  proto/lazaret.proto proto/peer.proto

## proto-check: fail if the committed generated code differs from a fresh generation.
proto-check: proto
	@git diff --exit-code -- proto/ || { echo "generated code in proto/ is stale: run 'make proto' and commit" >&2; exit 1; }

lint:
	gofmt -l $$(git ls-files '*.go') | (! grep .) || { echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...

test: deps proto-check lint build
	$(GO) test -race -count=1 -timeout 10m ./...
	$(MAKE) fuzz

## fuzz: run each fuzz target briefly.
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzParseID -fuzztime=5s .
	$(GO) test -run=NONE -fuzz=FuzzParseHeader -fuzztime=5s .

bench: build
	$(GO) test -run=NONE -bench=. -benchmem ./...

clean:
	rm -rf bin $(RUNDIR)
