#!/usr/bin/env bash
# Mutation testing with cargo-mutants: breaks the code one small change at a
# time and says which breaks no test noticed. A developer tool, not a CI step.
#
#   scripts/mutants.sh                  what this branch changed since main (--in-diff)
#   scripts/mutants.sh --base origin/x  ... since another base
#   scripts/mutants.sh --area wire      Panel/Agent signing and error classification
#   scripts/mutants.sh --area create    the provisioner's create (provisioner/create.rs)
#   scripts/mutants.sh --area orders    the order flow (app/orders.rs)
#   scripts/mutants.sh --area wire -- -F 'classify_status'   extra cargo-mutants args
#
# Settings (environment): MUTANTS_TIMEOUT (seconds per mutant's tests, default
# 180), MUTANTS_JOBS (default 1: the machine is shared), MUTANTS_BASELINE=skip
# (skip the unmutated run when you know the tests pass), MUTANTS_TARGET_DIR.
# Results go to mutants.out/ (see README, "Mutation testing").
set -euo pipefail
cd "$(dirname "$0")/.."

base=main
area=diff
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --base) base=$2; shift 2 ;;
        --area) area=$2; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if ! command -v cargo-mutants >/dev/null 2>&1; then
    echo "installing cargo-mutants (once)"
    cargo install --locked cargo-mutants
fi

export SQLX_OFFLINE=true
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# The commerce tests need PostgreSQL; the wire tests need nothing but loopback.
if [ "$area" != wire ]; then
    bash scripts/ensure-postgres.sh
fi

# A target directory of its own, so a run never holds the build lock of the
# developer's own target; seeded from it so dependencies are not rebuilt.
own_target=${CARGO_TARGET_DIR:-$PWD/target}
if [ -n "${MUTANTS_TARGET_DIR:-}" ]; then
    target=$MUTANTS_TARGET_DIR
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target=$CARGO_TARGET_DIR-mutants
else
    # Inside the git-ignored target/, so cargo-mutants never copies it along
    # with the source tree.
    target=$PWD/target/mutants
fi
if [ ! -d "$target/debug" ] && [ -d "$own_target/debug" ]; then
    echo "seeding $target from $own_target/debug"
    mkdir -p "$target"
    cp -a "$own_target/debug" "$target/"
fi
export CARGO_TARGET_DIR=$target

common=(--timeout "${MUTANTS_TIMEOUT:-180}" --build-timeout 900 -j "${MUTANTS_JOBS:-1}")
if [ "${MUTANTS_BASELINE:-run}" = skip ]; then
    common+=(--baseline skip)
fi
# Unit tests and the one integration binary per crate; not examples, not doc
# tests, and for commerce not the browser and one-minute-outage modules unless
# MUTANTS_ALL_TESTS=1 (each mutant would take minutes).
commerce_tests=(-- --lib --test it --)
if [ "${MUTANTS_ALL_TESTS:-0}" != 1 ]; then
    commerce_tests+=(--skip ui:: --skip ops::)
fi

run() {
    echo "+ cargo mutants $*"
    cargo mutants "$@"
}

case "$area" in
    wire)
        # Signing, verification and the classification of answers and errors.
        run "${common[@]}" -p opterius \
            -f crates/opterius/src/panel.rs -f crates/opterius/src/agent.rs -f crates/opterius/src/http.rs \
            -F ' (in )?(sign|signed_headers|verify|check_window|string_to_sign|mac|classify_status|classify_transport|classify_success|redact|redacted_text)( |$)' \
            "${extra[@]}" -- --lib --test wire
        ;;
    create)
        run "${common[@]}" -p commerce -f crates/commerce/src/provisioner/create.rs \
            "${extra[@]}" -- --test it -- provisioning:: promises::
        ;;
    orders)
        run "${common[@]}" -p commerce -f crates/commerce/src/app/orders.rs \
            "${extra[@]}" -- --test it -- promises:: provisioning:: api::
        ;;
    diff)
        diff_file=$(mktemp)
        trap 'rm -f "$diff_file"' EXIT
        git diff "$(git merge-base "$base" HEAD)" -- 'crates/*.rs' >"$diff_file"
        if [ ! -s "$diff_file" ]; then
            echo "no Rust changes since $base: nothing to mutate"
            exit 0
        fi
        # One run per changed crate, each with that crate's tests.
        for crate in $(grep '^+++ b/crates/' "$diff_file" | cut -d/ -f3 | sort -u); do
            case "$crate" in
                commerce) tests=("${commerce_tests[@]}") ;;
                bench) tests=(-- --lib --bins) ;; # its tests are the fault suite
                *) tests=() ;;
            esac
            run "${common[@]}" -p "$crate" --in-diff "$diff_file" "${extra[@]}" "${tests[@]}"
        done
        ;;
    *)
        echo "unknown area $area: wire, create, orders (or none for the branch's diff)" >&2
        exit 2
        ;;
esac
