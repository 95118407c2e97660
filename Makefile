# Perch: the two entry points of the README, and a few helpers.
# CARGO_TARGET_DIR lives outside the clone so CI runs and fresh clones reuse one build.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/perch-target
export SQLX_OFFLINE := true

.PHONY: run test lint bench fmt

## Build and start the host (gateway on 127.0.0.1:18789, SQLite in the platform data dir).
run:
	bash scripts/setup.sh run
	cargo run --release --locked -p perch-cli --bin perch -- serve $(ARGS)

## Install test prerequisites, then format check, clippy, and every test.
test:
	bash scripts/setup.sh test
	bash scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

bench:
	cargo bench --locked -p perch-cli --bench invoke

fmt:
	cargo fmt --all
