# ixb: `make help` lists the targets. Every target creates .venv if missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The native core (native/: Rust, PyO3) is its own package, built by maturin
# through pip into .venv; cargo's target directory lives in the engine cache
# (below), so a fresh clone recompiles only what changed. IXB_NATIVE=0 at run
# time makes a process use the Python reference instead.
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/pyproject.toml \
	native/ixb_native.pyi $(wildcard native/src/*.rs)

$(STAMP): pyproject.toml $(NATIVE_SOURCES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@command -v cargo >/dev/null || { echo "Rust's cargo is needed to build native/: https://rustup.rs" >&2; exit 1; }
	$(CARGO_ENV) $(BIN)/python -m pip install --quiet --disable-pip-version-check ./native
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv, build the native core, install ixb with its development tools

# The engines live outside the clone (a fresh clone on this machine reuses them),
# one folder per engine and version: ${IXB_ENGINE_CACHE:-$HOME/.cache/ixb}/<engine>-<version>/;
# each target fetches or builds only what is missing.
IXB_ENGINE_CACHE ?= $(HOME)/.cache/ixb
export IXB_ENGINE_CACHE

# cargo's target directory is shared by every clone on the machine (in the
# engine cache); cargo test links the core's unit tests against the venv's Python.
CARGO_ENV = CARGO_TARGET_DIR=$(IXB_ENGINE_CACHE)/cargo-target PYO3_PYTHON=$(CURDIR)/$(BIN)/python
OPA_VERSION := 1.22.4
OPA_BIN := $(IXB_ENGINE_CACHE)/opa-$(OPA_VERSION)/opa

engines: kafka-engine opa-engine ## Every engine the tests start (fetched or built once, then cached)

kafka-engine: $(STAMP) ## Fetch Apache Kafka's jars with Maven into the engine cache, once
	@$(BIN)/ixb kafka fetch >/dev/null

opa-engine: $(OPA_BIN) ## Build the OPA server (Go module, pinned) into the engine cache, once

# Built by `go install` from the Go module proxy with the machine's Go (no
# toolchain download, no cgo); GOBIN is a scratch directory and the binary is
# renamed into place, so an interrupted build never leaves a binary that
# looks done.
$(OPA_BIN):
	@command -v go >/dev/null || { echo "Go is needed to build OPA: https://go.dev/doc/install" >&2; exit 1; }
	@mkdir -p $(@D)
	@scratch=$$(mktemp -d $(@D)/.build.XXXXXX) && trap 'rm -rf "$$scratch"' EXIT && \
		echo "building OPA $(OPA_VERSION) with $$(go env GOVERSION) into $(@D)" && \
		GOBIN=$$scratch GOTOOLCHAIN=local CGO_ENABLED=0 \
			go install -trimpath github.com/open-policy-agent/opa@v$(OPA_VERSION) && \
		$$scratch/opa version >/dev/null && mv -f $$scratch/opa $@

demo: $(STAMP) kafka-engine ## Run the multi-nation scenario end to end on the embedded Apache Kafka, then exit
	$(BIN)/ixb demo

console: $(STAMP) kafka-engine ## Run the scenario, then serve the browser console on it until Ctrl-C
	$(BIN)/ixb demo --console

lint: $(STAMP) ## ruff, mypy --strict, the import contract (imports run downward), rustfmt and clippy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	cd native && cargo fmt --check
	cd native && $(CARGO_ENV) cargo clippy --release --all-targets --quiet -- -D warnings

check: $(STAMP) lint ## The fast tier: lint, then the unit tests (about a minute)
	$(BIN)/pytest tests/unit -q

test: $(STAMP) engines lint ## Lint, then the whole test suite (starts its own Apache Kafka), then a short fuzz
	cd native && $(CARGO_ENV) cargo test --release --quiet
	$(BIN)/pytest
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20

FUZZ_SECONDS ?= 300
fuzz: $(STAMP) ## Fuzz the decoder and envelope parser with atheris for FUZZ_SECONDS (default 300)
	$(BIN)/python fuzz/decode_verify.py -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 \
		| grep -E '^(Done|stat::number_of_executed_units|==[0-9]+== ERROR)|crash' ; \
		test $${PIPESTATUS[0]} -eq 0

bench: $(STAMP) kafka-engine ## Throughput, latency, passthrough and ceiling in one run; writes bench-results.json
	$(BIN)/python -m bench.run

bench-audit: $(STAMP) ## Verify and replay 100,000 decision-log entries (about 2 minutes)
	$(BIN)/python -m bench.audit_verify
	$(BIN)/python -m bench.audit_replay

resilience: $(STAMP) kafka-engine ## Enforcers SIGKILLed and restarted under load, checked against the agreements (about 90 s)
	$(BIN)/python -m bench.resilience

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

.PHONY: help install kafka-engine opa-engine engines demo console lint check test fuzz bench bench-audit \
	resilience format clean
