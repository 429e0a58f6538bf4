# dyno: the two commands a user needs are `make quickstart` and `make test`.
DYNO_CACHE ?= $(HOME)/.cache/dyno
export DYNO_CACHE

.PHONY: test quickstart engine lint schema bench

## Run every test (unit, integration, the real-engine end-to-end tests).
test: engine
	cargo test --locked

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
