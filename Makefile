# dyno: the two commands a user needs are `make quickstart` and `make test`.
DYNO_CACHE ?= $(HOME)/.cache/dyno
export DYNO_CACHE

.PHONY: test quickstart engine browser lint schema bench

## Run every test (unit, integration, the real-engine end-to-end tests,
## the pages in headless Chromium).
test: engine browser
	cargo test --locked

## Headless Chromium and chromedriver for the page tests, installed with
## apt-get when missing (as root on Debian or Ubuntu); without them the
## page tests say why and skip (and fail under CI).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) || \
	    echo "make: could not install chromium and chromium-driver; the page tests will skip" >&2; \
	  else echo "make: no chromium and chromedriver (apt-get install chromium chromium-driver); the page tests will skip" >&2; fi; \
	fi

## Install the local engine (llama-server + two GGUF models) into $(DYNO_CACHE) once.
engine:
	@bash scripts/setup-engine.sh >/dev/null

## Run the quickstart suite end to end against real models.
quickstart: engine
	cargo run --release --locked -- run suites/quickstart.yaml

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

## Regenerate the committed JSON schemas from the Rust types.
schema:
	cargo run --quiet -- schema --out schemas/suite.schema.json
	cargo run --quiet -- schema --prompts --out schemas/prompts.schema.json
	cargo run --quiet -- schema --results --out schemas/results.schema.json

bench:
	cargo bench --locked --bench loader
	cargo bench --locked --bench sampler
	cargo bench --locked --bench compare_stats
	cargo bench --locked --bench big_results
	cargo bench --locked --bench client
