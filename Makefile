# schoolgate build, test and benchmark entry points. `make run` and `make test` are the two
# commands the README starts with; .ci/run calls `make test`.

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-unit vet fuzz bench generate check-generate clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/schoolgated ./cmd/schoolgated
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/schoolgate ./cmd/schoolgate

# The demo: embedded configuration, DNS on 127.0.0.1:5353, API on 127.0.0.1:8080, no root.
run: build
	$(BIN)/schoolgated -demo $(ARGS)

vet:
	$(GO) vet ./...

# Every test tier this machine can run: unit, fuzz seed corpora, end-to-end with the real
# daemon and dig, and (as root) the privileged namespace tests.
test: vet
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

generate:
	$(GO) generate ./...

check-generate: generate
	git diff --exit-code --stat

clean:
	rm -rf $(BIN)
