# ordersync: `just demo` shows it working, `just test` proves it.

set shell := ["bash", "-euo", "pipefail", "-c"]

export DATABASE_URL := env_var_or_default("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
export REDIS_URL := env_var_or_default("REDIS_URL", "redis://127.0.0.1:6379")

# List the recipes.
default:
    @just --list

# Start (or install) Redis and Postgres when they are not answering.
services:
    bash deploy/ensure-services.sh

# The end-to-end demo: simulator, two worker processes, ~2,000 orders, a summary.
demo: services
    cargo build --release --workspace --bins
    ./target/release/ordersync-dev demo

# Everything: formatting, lints, unit and integration tests (real Redis and Postgres,
# and the dashboard in headless Chromium).
test: services
    bash deploy/ensure-browser.sh
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --release --workspace --all-targets
    bash deploy/validate.sh

# Offline checks of deploy/: manifests, compose, Dockerfile, configs, alert rules (installs its tools on first run).
deploy-check:
    bash deploy/validate.sh

# Benchmarks; prints a table and writes target/bench/results.json.
bench: services
    cargo build --release --workspace --bins
    npm ci --prefix crates/devtools/peers/bullmq --no-audit --no-fund --loglevel=error
    ./target/release/ordersync-dev bench --trace-orders 1000000

# Fault scenarios soaked (worker kill storm, FLUSHALL, Redis restarts with and
# without AOF, Postgres down 30 s) against private Redis and Postgres servers;
# writes target/chaos/results.json. Takes several minutes.
chaos: services
    cargo build --release --workspace --bins
    ./target/release/ordersync-dev chaos

# Apply migrations to DATABASE_URL.
migrate: services
    cargo run --release --bin ordersync -- migrate

# Run one worker process against ORDERSYNC_CONFIG (default ordersync.toml).
worker: services
    cargo run --release --bin ordersync-worker
