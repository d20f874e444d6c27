#!/usr/bin/env bash
# Make headless Chromium + chromedriver available at /usr/bin (Debian packages
# `chromium` and `chromium-driver`, plus fonts-liberation so pages render
# real text), for the browser tests. Idempotent.
set -euo pipefail

say() { echo "ensure-chromium: $*"; }
die() { echo "ensure-chromium: ERROR: $*" >&2; exit 1; }

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "chromium/chromedriver missing and apt-get unavailable; install Chromium and a matching chromedriver at /usr/bin/chromium and /usr/bin/chromedriver"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo) to install chromium"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp -t ensure-chromium.XXXXXX)
    trap 'rm -f "$log"' EXIT
    apt() { "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1; }
    start=$SECONDS
    # Only refresh the package lists if apt doesn't know the packages yet.
    if ! apt-cache show chromium chromium-driver >/dev/null 2>&1; then
        apt update || { tail -n 30 "$log" >&2; die "apt-get update failed"; }
    fi
    if ! apt install -y --no-install-recommends chromium chromium-driver fonts-liberation; then
        # Stale lists (404 on a superseded version): refresh once and retry.
        apt update && apt install -y --no-install-recommends chromium chromium-driver fonts-liberation ||
            { tail -n 30 "$log" >&2; die "apt-get install chromium chromium-driver fonts-liberation failed"; }
    fi
    say "installed chromium + chromium-driver in $((SECONDS - start))s"
fi

say "$(/usr/bin/chromium --version 2>/dev/null | head -n 1); $(/usr/bin/chromedriver --version 2>/dev/null | head -n 1)"
