# aarm — build, run and test. `make run` and `make test` are all a fresh
# machine needs (see README.md).
GO       ?= go
BIN      := bin/aarm
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
AARM_HOME ?= $(HOME)/.aarm
export AARM_HOME

.PHONY: build run test test-unit test-e2e fuzz bench lint deps clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/aarm

# Initialise the data directory if it is new (aarm init never overwrites),
# then run the proxy and dashboard on the embedded defaults.
run: build
	./$(BIN) init --dir "$(AARM_HOME)"
	./$(BIN) run --dir "$(AARM_HOME)"

deps:
	./scripts/install-test-deps.sh

test: deps
	$(GO) vet ./...
	$(MAKE) fuzz
	$(GO) test -race -count=1 -timeout 12m ./...

# Short runs of every fuzz target (the corpora in testdata/fuzz are replayed
# by `go test` too).
FUZZTIME ?= 3s
fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 20m ./... | tee bench.out

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin bench.out
