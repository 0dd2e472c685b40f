# schoolgate build, test and benchmark entry points. `make run` and `make test` are the two
# commands the README starts with; .ci/run calls `make test`.

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run deps test vet fuzz bench generate check-generate clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/schoolgated ./cmd/schoolgated
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/schoolgate ./cmd/schoolgate

# The demo: embedded configuration, DNS on 127.0.0.1:5353, API on 127.0.0.1:8080, no root.
run: build
	$(BIN)/schoolgated -demo $(ARGS)

# go vet, and every Go file as gofmt writes it (gofmt sits beside the go command).
vet:
	$(GO) vet ./...
	@unformatted=$$("$$(dirname "$$(command -v $(GO))")/gofmt" -l .); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$unformatted"; exit 1; fi

# Debian packages the tests use as real clients. Installed when running as root (CI, the
# appliance's developer VM); otherwise the missing ones are named and their checks skip.
TEST_PACKAGES := dig:bind9-dnsutils ip:iproute2 curl:curl nft:nftables nmap:nmap openssl:openssl chromium:chromium
deps:
	@missing=""; for pair in $(TEST_PACKAGES); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; command -v $$cmd >/dev/null || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "not root: tests needing$$missing will skip (sudo apt-get install$$missing)"; fi; \
	fi

# Every test tier this machine can run: unit, fuzz seed corpora, end-to-end with the real
# daemon and dig, and (as root) the privileged namespace tests.
test: deps vet
	$(GO) test -count=1 ./...

# Short fuzzing of every Fuzz target (FUZZTIME each); seeds run anyway under `make test`.
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Performance targets as ratios against baselines measured in the same run; see
# docs/benchmarks.md for the figures and method.
bench:
	bash .ci/bench

# bpf2go needs clang, llvm-strip and the libbpf headers (Debian: clang llvm libbpf-dev).
generate:
	$(GO) generate ./...

check-generate: generate
	git diff --exit-code --stat

clean:
	rm -rf $(BIN)
