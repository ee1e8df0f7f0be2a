# Lazaret build, run and test entry points. See README.md.
SHELL := /bin/bash
export GOTOOLCHAIN := local
GO      ?= go
BIN     := bin/lazaret
RUNDIR  ?= /tmp/lazaret-run
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test test-unit test-e2e bench proto proto-check lint deps fuzz clean deb

## build: a static binary (no cgo), as `make deb` packages it and the tests
## in test/ run it, so the three share their compiled packages.
build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/lazaret

## deb: the Debian package (binary, lazaret user, /etc/lazaret/lazaret.toml,
## /var/lib/lazaret, systemd units) in $(DEB_OUT), built with dpkg-deb from
## deploy/debian. The binary is static (no cgo), so it runs on any Debian.
DEB_OUT ?= bin
deb:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS) -s -w' -o bin/deb/lazaret ./cmd/lazaret
	deploy/deb.sh bin/deb/lazaret $(VERSION) $(DEB_OUT)

## run: a 3-node cluster on 127.0.0.1-3, one process per node, in $(RUNDIR)
## (no config file, no PostgreSQL, no root needed). Ctrl-C stops it; run again to restart it.
## FIRST_IP=127.0.1.1 moves it to 127.0.1.1-3 (ports 1027, 7946 and 9127 stay).
FIRST_IP ?= 127.0.0.1
run: build
	$(BIN) dev --nodes 3 --dir $(RUNDIR) --first-ip $(FIRST_IP)

## deps: install the Debian packages the tests use (idempotent; needs root).
deps:
	@./test/deps.sh

## proto: regenerate the committed gRPC/protobuf code.
PROTOC = protoc -I proto -I /usr/include \
	  --plugin=protoc-gen-go=bin/protoc-gen-go --plugin=protoc-gen-go-grpc=bin/protoc-gen-go-grpc \
	  --go_opt=module=github.com/lazaret/lazaret --go-grpc_opt=module=github.com/lazaret/lazaret
PROTOS = proto/lazaret.proto proto/peer.proto

proto: deps
	GOBIN=$(CURDIR)/bin $(GO) install tool
	$(PROTOC) --go_out=. --go-grpc_out=. $(PROTOS)

## proto-check: fail if the committed generated code differs from a fresh generation.
proto-check: deps
	GOBIN=$(CURDIR)/bin $(GO) install tool
	@tmp=$$(mktemp -d) && $(PROTOC) --go_out=$$tmp --go-grpc_out=$$tmp $(PROTOS) && \
	  diff -r $$tmp/proto/lazaretpb proto/lazaretpb >/dev/null; rc=$$?; rm -rf $$tmp; \
	  [ $$rc -eq 0 ] || { echo "generated code in proto/lazaretpb is stale: run 'make proto' and commit" >&2; exit 1; }

## lint: gofmt, go.mod tidy, go vet and staticcheck (pinned as a tool in go.mod, installed into bin/).
lint:
	gofmt -l $$(git ls-files '*.go') | (! grep .) || { echo "gofmt needed" >&2; exit 1; }
	$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum not tidy: run 'go mod tidy' and commit" >&2; exit 1; }
	$(GO) vet ./...
	GOBIN=$(CURDIR)/bin $(GO) install tool
	bin/staticcheck ./...

test: deps proto-check lint build
	$(GO) test -race -count=1 -timeout 17m ./...
	$(MAKE) fuzz

## fuzz: run each fuzz target briefly: about 4 s each on this machine when
## quiet. Budgets are execution counts, not durations: with a duration, Go
## 1.26's fuzz coordinator can fail a target with "context deadline
## exceeded" at the deadline on a loaded machine (golang/go#75804, fixed
## in Go 1.27), which failed a fresh-clone `make test` here.
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzParseID -fuzztime=80000x .
	$(GO) test -run=NONE -fuzz=FuzzParseHeader -fuzztime=40000x .
	$(GO) test -run=NONE -fuzz=FuzzVerdictHeaders -fuzztime=60000x ./smtpfilter
	$(GO) test -run=NONE -fuzz=FuzzSMTPSession -fuzztime=20000x ./smtpfilter
	$(GO) test -run=NONE -fuzz=FuzzReconcileMessage -fuzztime=80000x ./replicator/reconcile
	$(GO) test -run=NONE -fuzz=FuzzProxyHeader -fuzztime=30000x ./smtpfilter
	$(GO) test -run=NONE -fuzz=FuzzPeerRequests -fuzztime=6000x ./replicator
	$(GO) test -run=NONE -fuzz=FuzzParseConfig -fuzztime=15000x ./cmd/lazaret
	$(GO) test -run=NONE -fuzz=FuzzRequest -fuzztime=5000x ./s3api
	$(GO) test -run=NONE -fuzz=FuzzCanonical -fuzztime=10000x ./s3api
	$(GO) test -run=NONE -fuzz=FuzzChunked -fuzztime=10000x ./s3api

## soak: the full fault soak (README "Fault soak"): 5 nodes in network
## namespaces, SOAK_DURATION of faults with SOAK_KILLS kill -9; needs root.
## `make test` runs a short one (TestFaultSoak with its defaults).
.PHONY: soak
SOAK_DURATION ?= 15m
SOAK_KILLS    ?= 120
soak: build
	LAZARET_SOAK_DURATION=$(SOAK_DURATION) LAZARET_SOAK_KILLS=$(SOAK_KILLS) \
	LAZARET_SOAK_HOLD=$${LAZARET_SOAK_HOLD:-15s} LAZARET_SOAK_SETTLE=$${LAZARET_SOAK_SETTLE:-10m} \
	LAZARET_SOAK_RATE=$${LAZARET_SOAK_RATE:-5} LAZARET_SOAK_DISK=$${LAZARET_SOAK_DISK:-2147483648} \
	  $(GO) test -count=1 -run '^TestFaultSoak$$' -v -timeout 90m ./test/

## bench-index: PostgreSQL index feed rate and search latency on 1,000,000
## generated messages (README "PostgreSQL index"); starts its own PostgreSQL.
.PHONY: bench-index
bench-index: build
	LAZARET_BENCH_PG_MESSAGES=$${LAZARET_BENCH_PG_MESSAGES:-1000000} $(GO) test -count=1 -run=NONE -bench=BenchmarkPGIndex -benchtime=1x -timeout 60m ./test/

## bench-fuse: the FUSE view against lazaret get/put and the gRPC API, same
## run: 1,000 mail-mix messages read and copied in, readdir of a 10,000-message
## day (README "FUSE view"). Needs root or fusermount3.
.PHONY: bench-fuse
bench-fuse: build
	LAZARET_FUSE_BENCH=$${LAZARET_FUSE_BENCH:-1000,10000} $(GO) test -count=1 -run=TestFUSEBenchTable -v -timeout 30m ./test/

## bench-sim: the scale simulation's full table (docs/scale.md): real
## reconcile sessions over up to 10^6 items a side, N in {5,16,64}, M in
## {10^6,10^7,10^8}.
.PHONY: bench-sim
bench-sim: build
	$(BIN) sim --full

bench: build
	$(GO) test -run=NONE -bench=. -benchmem ./...
	$(MAKE) bench-sim
	$(MAKE) bench-fuse
	LAZARET_RECONCILE_TABLE=1 $(GO) test -count=1 -run='TestReconcileCostTable|TestMemSetIncremental' -v ./replicator/reconcile
	LAZARET_REPAIR_TABLE=1 $(GO) test -count=1 -run=TestRepairThroughputTable -v ./replicator

## bench-s3: rclone copy of 1,000 mail-mix messages against a lazaret get loop,
## and ListObjectsV2 paging over 100,000 keys (README "S3 API").
.PHONY: bench-s3
bench-s3: build
	LAZARET_S3_BENCH=1 $(GO) test -count=1 -run 'TestS3Bench' -v -timeout 60m ./test/

clean:
	rm -rf bin $(RUNDIR)
