# The two commands a newcomer needs:
#   make demo   run connect locally against the Stara/Leaf stand-ins and moto, and show it working
#   make test   run every test (installs the pinned tools first)
# Everything runs on loopback; nothing here needs AWS credentials or the internet.

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test tools build unit e2e template sam-build bench clean-venv

tools:
	@scripts/bootstrap.sh

build:
	$(CARGO) build --workspace --bins

# The demo binary comes from `make build` (the whole workspace): `cargo run -p` would resolve
# features for one package only and rebuild dependencies.
demo: tools build
	$${CARGO_TARGET_DIR:-target}/debug/demo

test: tools build
	scripts/test.sh

sam-build: tools
	scripts/sam-build.sh

bench: tools
	scripts/bench.sh

clean-venv:
	rm -rf .venv
