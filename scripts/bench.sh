#!/usr/bin/env bash
# Build the release binaries and run the benchmark (see BENCHMARKS.md):
# provisioning throughput, Test all sweep, API latency on a large database,
# memory footprint, and pgbench as the reference. Extra args go to `bench`
# (e.g. --orders 2000, --only throughput,sweep; `bench --help` lists them).
# Results: target/bench/results.json (+ results.md, logs/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-postgres.sh
# A loopback database gains nothing from TLS but its CPU cost.
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
export SQLX_OFFLINE=true

if ! command -v pgbench >/dev/null 2>&1; then
    echo "bench.sh: installing pgbench (postgresql-contrib)"
    SUDO=()
    [[ $(id -u) -ne 0 ]] && SUDO=(sudo)
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends postgresql-contrib >/dev/null ||
        echo "bench.sh: could not install pgbench; the pgbench reference will be reported as an error" >&2
fi

cargo build --release --locked -p commerce -p opterius-sim -p bench
exec "${CARGO_TARGET_DIR:-target}/release/bench" "$@"
