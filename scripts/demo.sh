#!/usr/bin/env bash
# One command to a working demo: PostgreSQL (installed and started if missing,
# or DATABASE_URL if set), an in-process Opterius Panel simulator, demo servers,
# products and a client, and an admin login printed to the console.
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true

if [ -z "${DATABASE_URL:-}" ]; then
    bash scripts/ensure-postgres.sh
    admin=postgres://postgres@127.0.0.1:5432/postgres
    if ! psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = 'commerce_demo'" | grep -q 1; then
        psql "$admin" -qc "CREATE DATABASE commerce_demo"
    fi
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/commerce_demo
fi

echo "building commerce (the first build takes a few minutes)..."
cargo build --quiet --locked -p commerce --bin commerce
bin="${CARGO_TARGET_DIR:-target}/debug/commerce"

if [ ! -f .env ]; then
    {
        echo "# Written by scripts/demo.sh; see .env.example for every setting."
        echo "APP_KEY=$("$bin" key generate)"
        [ -n "${DATABASE_URL:-}" ] && echo "DATABASE_URL=$DATABASE_URL"
    } > .env
    chmod 600 .env
    echo "wrote .env with a fresh APP_KEY"
fi

# The simulated Panel listens on loopback, which Panel calls refuse by default.
export PANEL_ALLOWED_NETWORKS="${PANEL_ALLOWED_NETWORKS:-127.0.0.0/8}"
exec "$bin" demo --listen "${LISTEN_ADDR:-127.0.0.1:8080}"
