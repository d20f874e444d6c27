#!/usr/bin/env bash
# Make a PostgreSQL server available on 127.0.0.1:5432 where user `postgres`
# connects with trust auth over TCP. Idempotent; prints one line saying what it did.
#
#   (a) $DATABASE_URL set and reachable         -> nothing to do
#   (b) something already answers on :5432     -> nothing to do
#   (c) a cluster exists but is down           -> start it
#   (d) no server installed / no cluster       -> apt-get install, create, configure, start
set -euo pipefail

HOST=127.0.0.1
PORT=5432
WAIT_SECS=${PG_WAIT_SECS:-60}
LOG=$(mktemp -t ensure-postgres.XXXXXX)
trap 'rm -f "$LOG"' EXIT

say() { echo "ensure-postgres: $*"; }
die() {
    echo "ensure-postgres: ERROR: $*" >&2
    if [[ -s $LOG ]]; then
        echo "---- last lines of command output ----" >&2
        tail -n 30 "$LOG" >&2
    fi
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if have sudo; then SUDO=(sudo); else SUDO=(__need_root__); fi
fi
as_root() {
    [[ ${SUDO[*]-} == __need_root__ ]] && die "must run as root (or have sudo) to $*"
    "${SUDO[@]}" "$@"
}

answers_on_port() {
    if have pg_isready; then
        pg_isready -q -h "$HOST" -p "$PORT" -t 3
    else
        (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
    fi
}

wait_ready() {
    local i
    for ((i = 0; i < WAIT_SECS; i++)); do
        pg_isready -q -h "$HOST" -p "$PORT" -t 1 && return 0
        sleep 1
    done
    die "PostgreSQL did not accept connections on $HOST:$PORT within ${WAIT_SECS}s (see /var/log/postgresql/)"
}

apt_install() {
    have apt-get || die "PostgreSQL server is not installed and apt-get is unavailable. Install PostgreSQL (server + contrib, for the hstore/pgcrypto extensions) listening on $HOST:$PORT with trust auth for user postgres, or set DATABASE_URL to a reachable server."
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -o DPkg::Lock::Timeout=300 update >>"$LOG" 2>&1 ||
        die "apt-get update failed"
    as_root apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@" >>"$LOG" 2>&1 ||
        die "apt-get install $* failed"
}

# Newest installed server version (e.g. 15), or empty.
server_version() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V); do
        basename "$(dirname "$(dirname "$d")")"
    done | tail -n 1
}

# "ver name status" of the cluster configured for $PORT, or empty.
cluster_on_port() {
    have pg_lsclusters || return 0
    pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p { print $1, $2, $4; exit }'
}

# set_conf FILE KEY VALUE: replace the (possibly commented-out) KEY line, or append it.
set_conf() {
    local file=$1 key=$2 value=$3
    if grep -Eq "^[[:space:]]*#?[[:space:]]*$key[[:space:]]*=" "$file"; then
        as_root sed -i -E "0,/^[[:space:]]*#?[[:space:]]*$key[[:space:]]*=.*/s//$key = $value/" "$file"
    else
        echo "$key = $value" | as_root tee -a "$file" >/dev/null
    fi
}

# Trust auth for local + loopback TCP, listen on loopback:$PORT.
configure_cluster() {
    local ver=$1 name=$2 dir=/etc/postgresql/$1/$2
    set_conf "$dir/postgresql.conf" listen_addresses "'$HOST'"
    set_conf "$dir/postgresql.conf" port "$PORT"
    as_root tee "$dir/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/ensure-postgres.sh: trust auth for local development/CI.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
host    all       all   ::1/128       trust
EOF
}

# (a) DATABASE_URL already works.
if [[ -n ${DATABASE_URL:-} ]]; then
    if have psql && psql "$DATABASE_URL" -wAtqc 'select 1' >/dev/null 2>&1; then
        say "DATABASE_URL is reachable; nothing to do"
        exit 0
    elif ! have psql && have pg_isready && pg_isready -q -d "$DATABASE_URL" -t 3; then
        say "DATABASE_URL is reachable; nothing to do"
        exit 0
    fi
fi

# (b) A server already answers on 127.0.0.1:5432.
if answers_on_port; then
    say "PostgreSQL already running on $HOST:$PORT; nothing to do"
    exit 0
fi

# (c) A cluster exists (on our port) but is down: start it.
read -r ver name status <<<"$(cluster_on_port)" || true
if [[ -n ${ver:-} && -x /usr/lib/postgresql/$ver/bin/postgres ]]; then
    if [[ $status != online ]]; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >>"$LOG" 2>&1 ||
            die "pg_ctlcluster $ver $name start failed"
    fi
    wait_ready
    say "started existing cluster $ver/$name on $HOST:$PORT"
    exit 0
fi

# (d) Install the server (and contrib: hstore, pgcrypto) if needed.
did=""
ver=$(server_version)
if [[ -z $ver ]] || ! ls /usr/share/postgresql/"$ver"/extension/hstore.control >/dev/null 2>&1; then
    start=$SECONDS
    apt_install postgresql postgresql-contrib
    ver=$(server_version)
    [[ -n $ver ]] || die "apt-get installed postgresql but no server binary found under /usr/lib/postgresql"
    did="installed PostgreSQL $ver in $((SECONDS - start))s, "
fi

# Make sure a cluster exists (the package usually creates $ver/main).
name=main
if [[ ! -d /etc/postgresql/$ver/$name ]]; then
    as_root pg_createcluster --port "$PORT" "$ver" "$name" >>"$LOG" 2>&1 ||
        die "pg_createcluster $ver $name failed"
    did+="created cluster $ver/$name, "
fi

configure_cluster "$ver" "$name"
if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n && $4 == "online" { f = 1 } END { exit !f }'; then
    # Possibly started by the package with default settings: restart to apply ours.
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" restart >>"$LOG" 2>&1 ||
        die "pg_ctlcluster $ver $name restart failed"
else
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >>"$LOG" 2>&1 ||
        die "pg_ctlcluster $ver $name start failed"
fi
wait_ready
say "${did}configured trust auth and started cluster $ver/$name on $HOST:$PORT"
