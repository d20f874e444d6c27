#!/usr/bin/env bash
# Checks that the committed query metadata (.sqlx/) matches the code and the
# schema: migrates a scratch database, then `cargo sqlx prepare --check`
# compiles every crate against it. With --write, regenerates .sqlx/ instead
# (run it after changing a query! or a migration, and commit the result).
# Installs the sqlx CLI (the version Cargo.lock pins) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=--check
[[ ${1:-} == --write ]] && mode=

bash scripts/ensure-postgres.sh
version=$(awk '/^name = "sqlx"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! cargo sqlx --version 2>/dev/null | grep -q " $version$"; then
    echo "check-sqlx: installing sqlx-cli $version (postgres only)"
    cargo install --locked "sqlx-cli@$version" --no-default-features --features postgres
fi

admin=${SQLX_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=commerce_sqlx_check
url=${admin%/*}/$db
psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
# The app's migrations, then apalis's (some queries read apalis.jobs), as
# `commerce migrate` applies them, through the CLI: nothing needs to compile
# before the schema exists.
apalis=$(cargo metadata --locked --format-version 1 |
    python3 -c 'import json, sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "apalis-postgres").rsplit("/", 1)[0])')
sqlx migrate run --database-url "$url" --source migrations --ignore-missing
sqlx migrate run --database-url "$url" --source "$apalis/migrations" --ignore-missing
# Whether apalis-postgres is recompiled too (its queries land in .sqlx/ then)
# depends on what the build cache holds, so .sqlx/ keeps them: the check only
# warns about a file it did not regenerate, and fails on one that is missing.
keep=$(mktemp -d)
[[ -z $mode ]] && grep -l 'apalis\.' .sqlx/*.json 2>/dev/null | xargs -r cp -t "$keep"
DATABASE_URL=$url cargo sqlx prepare --workspace $mode -- --all-targets --locked
[[ -z $mode ]] && cp -n "$keep"/*.json .sqlx/ 2>/dev/null || true
rm -rf "$keep"
psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
