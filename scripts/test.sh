#!/usr/bin/env bash
# Run every test: makes sure PostgreSQL (127.0.0.1:5432, trust) and Chromium are
# available, then runs the whole workspace's tests. Extra args go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-postgres.sh
bash scripts/ensure-chromium.sh
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export SQLX_OFFLINE=true
# The fault suite drives the real `commerce` and `opterius-sim` binaries.
cargo build --workspace --bins --locked
exec cargo test --workspace --locked "$@"
