# The two commands a newcomer needs:
#   make demo   run connect locally against the Stara/Leaf stand-ins and moto, and show it working
#   make test   run every test (installs the pinned tools first)
# Everything runs on loopback; nothing here needs AWS credentials or the internet.
# Then, to work on the functions:
#   make dev    moto, the Stara/Leaf stand-in and `cargo lambda watch`; prints a `cargo lambda invoke` per sample event

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test dev tools build unit e2e template sam-build bench clean-venv

tools:
	@scripts/bootstrap.sh

build:
	$(CARGO) build --workspace --bins

# The demo builds only what it runs (the two functions and the demo) and installs only moto.
# Features resolve as for the whole workspace (scripts/check-features.sh), so `make test`
# later reuses this build instead of compiling the dependencies again.
demo:
	@scripts/bootstrap.sh demo
	$(CARGO) build --workspace --bin connect --bin verify --bin demo
	$${CARGO_TARGET_DIR:-target}/debug/demo

test: tools build
	scripts/test.sh

# Installs the tools and runs `make build` itself (so that watch reuses that build), then serves
# until Ctrl-C.
dev:
	scripts/dev.sh

sam-build: tools
	scripts/sam-build.sh

bench: tools
	scripts/bench.sh

clean-venv:
	rm -rf .venv
