# Perch: the two entry points of the README, and a few helpers.
# CARGO_TARGET_DIR lives outside the clone so CI runs and fresh clones reuse one build.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/perch-target
export SQLX_OFFLINE := true

.PHONY: run serve ui test lint bench bench-ffi fmt

## Start Perch: with a display, the menu-bar app (which embeds the host); without one, the host
## alone (`perch serve`). Gateway on 127.0.0.1:18789, SQLite in the platform data dir.
run:
	bash scripts/setup.sh run
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  cargo run --release --locked -p perch-desktop --bin perch-desktop -- $(ARGS); \
	else \
	  cargo run --release --locked -p perch-cli --bin perch -- serve $(ARGS); \
	fi

## Start the host without the menu-bar app, even with a display.
serve:
	bash scripts/setup.sh run
	cargo run --release --locked -p perch-cli --bin perch -- serve $(ARGS)

## Build the web UI (ui/dist), which the host serves at /ui/.
ui:
	cd ui && npm ci --no-audit --no-fund && npm run build

## Install test prerequisites, then format check, clippy, and every test.
test:
	bash scripts/setup.sh test
	bash scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

bench:
	cargo bench --locked -p perch-cli --bench invoke

## perch-ffi's callback cost (Kotlin and Python) and invoke round trips answered by a Kotlin
## node against the Rust node, in one run.
bench-ffi:
	bash scripts/ffi-bench.sh

fmt:
	cargo fmt --all
