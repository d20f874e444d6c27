#!/usr/bin/env bash
# Refresh the vendored front-end assets in static/vendor/ from the npm registry
# (htmx 2.x, Pico CSS 2.x). The results are committed; runtime needs no npm.
# Usage: scripts/vendor-assets.sh [htmx-spec] [pico-spec]   (defaults: 2, 2)
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_SPEC=htmx.org@${1:-2}
PICO_SPEC=@picocss/pico@${2:-2}
OUT=static/vendor

command -v npm >/dev/null 2>&1 || { echo "vendor-assets: ERROR: npm is required (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d -t vendor-assets.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# npm pack prints the tarball name on stdout's last line.
pack() { (cd "$tmp" && npm pack --silent "$1" | tail -n 1); }
htmx_tgz=$(pack "$HTMX_SPEC")
pico_tgz=$(pack "$PICO_SPEC")
mkdir -p "$tmp/htmx" "$tmp/pico"
tar -xzf "$tmp/$htmx_tgz" -C "$tmp/htmx" --strip-components=1
tar -xzf "$tmp/$pico_tgz" -C "$tmp/pico" --strip-components=1

version() { node -p "require(process.argv[1]).version" "$1/package.json"; }
license_of() { ls "$1"/LICEN[CS]E* 2>/dev/null | head -n 1; }
htmx_ver=$(version "$tmp/htmx")
pico_ver=$(version "$tmp/pico")
htmx_lic=$(license_of "$tmp/htmx")
pico_lic=$(license_of "$tmp/pico")
[[ -n $htmx_lic && -n $pico_lic ]] || { echo "vendor-assets: ERROR: LICENSE file missing from a package" >&2; exit 1; }

mkdir -p "$OUT"
install -m 0644 "$tmp/htmx/dist/htmx.min.js" "$OUT/htmx.min.js"
install -m 0644 "$tmp/pico/css/pico.min.css" "$OUT/pico.min.css"
install -m 0644 "$htmx_lic" "$OUT/htmx.LICENSE"
install -m 0644 "$pico_lic" "$OUT/pico.LICENSE"
{
    echo "# Vendored by scripts/vendor-assets.sh from the npm registry; do not edit by hand."
    echo "htmx.org $htmx_ver dist/htmx.min.js sha256:$(sha256sum "$OUT/htmx.min.js" | cut -d' ' -f1)"
    echo "@picocss/pico $pico_ver css/pico.min.css sha256:$(sha256sum "$OUT/pico.min.css" | cut -d' ' -f1)"
} >"$OUT/VERSIONS"
echo "vendor-assets: htmx.org $htmx_ver, @picocss/pico $pico_ver -> $OUT/"
