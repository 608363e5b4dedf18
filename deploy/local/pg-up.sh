#!/usr/bin/env bash
# usage: pg-up.sh <workdir>
#
# Starts a throwaway PostgreSQL (15 preferred) cluster in <workdir>/data on 127.0.0.1 (trust auth,
# superuser "postgres", UTF8, locale C.UTF-8 or C), socket dir <workdir>, and creates database
# "onevoice". Idempotent: if the cluster of <workdir> already runs it only re-checks it. Re-running
# on a stopped <workdir> restarts the same cluster (same data; same port when still free).
# As root the server runs as the "postgres" user (PostgreSQL refuses root): <workdir> is chowned to
# it and any parent directory it cannot traverse gets o+x. As non-root it runs as the current user.
#
# env: PG_PORT       port (default: the one in <workdir>/pg.env if free, else a free one)
#      PG_FSYNC=off  fsync=off, for throwaway test clusters only (default: on; keep it on for any
#                    benchmark that claims durability)
#      PG_SHARED_BUFFERS, PG_MAX_WAL_SIZE, PG_CHECKPOINT_TIMEOUT
#                    server sizing (default: PostgreSQL's, 128MB / 1GB / 5min); the bench
#                    passes 4GB / 16GB / 15min with BENCH_PG_SIZED=1
#      PG_BIN        directory of initdb/pg_ctl/postgres (default /usr/lib/postgresql/15/bin, else
#                    the newest /usr/lib/postgresql/*/bin)
#      PG_READY_TIMEOUT  seconds for pg_ctl start -w (default 60)
# out: <workdir>/pg.env (DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/onevoice, PGPORT,
#      PGHOST, PGUSER, PGDATABASE; also printed on stdout), <workdir>/postgres.log, <workdir>/data
# exit: 0 ready; 1 failure (server log tail on stderr); 2 usage; 3 binaries missing (non-root)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=pg-up
# shellcheck source=SCRIPTDIR/_common.sh
. "$HERE/_common.sh"

[ $# -eq 1 ] || { echo "usage: $0 <workdir>" >&2; exit 2; }
mkdir -p "$1"
W=$(cd "$1" && pwd -P)
T0=$(now_ms)

find_bin() {
    local d
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && echo "$PG_BIN"
        return
    fi
    for d in /usr/lib/postgresql/15/bin $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
    done
}

B=$(find_bin || true)
if [ -z "$B" ]; then
    if [ "$(id -u)" = 0 ]; then
        log "PostgreSQL server binaries not found: apt-get update && apt-get install -y postgresql"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2
        # don't let the package create and start a system-wide 'main' cluster on port 5432
        apt-get install -y -q postgresql-common >&2
        sed -i 's/^#*[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf 2>/dev/null || true
        apt-get install -y -q postgresql >&2
        B=$(find_bin || true)
        [ -n "$B" ] || die "still no initdb/pg_ctl in ${PG_BIN:-/usr/lib/postgresql/*/bin} after apt-get install"
    else
        cat >&2 <<EOF
[pg-up] ERROR: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in
        ${PG_BIN:-/usr/lib/postgresql/15/bin or /usr/lib/postgresql/*/bin}.
        Install them (Debian 12 ships PostgreSQL 15):
            sudo apt-get update && sudo apt-get install -y postgresql
        or point PG_BIN at a directory holding initdb and pg_ctl.
EOF
        exit 3
    fi
fi
case "$B" in */15/bin) ;; *) log "warning: using $B (PostgreSQL 15 was asked for)";; esac
PSQL_BIN=$B/psql; [ -x "$PSQL_BIN" ] || PSQL_BIN=$(command -v psql) || die "psql not found"

# who runs the server
RUN=()
if [ "$(id -u)" = 0 ]; then
    PGUSER_OS=postgres   # an existing cluster keeps running as its data directory's owner
    [ -f "$W/data/PG_VERSION" ] && PGUSER_OS=$(stat -c %U "$W/data")
    [ "$PGUSER_OS" != root ] || die "$W/data is owned by root; PostgreSQL refuses to run as root"
    if [ "$PGUSER_OS" = postgres ] && ! id -u postgres >/dev/null 2>&1; then
        log "creating system user postgres"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    fi
    RUN=(runuser -u "$PGUSER_OS" --)
    chown "$PGUSER_OS": "$W"
    d=$(dirname "$W")
    while :; do
        if ! runuser -u "$PGUSER_OS" -- test -x "$d"; then
            log "chmod o+x $d (so the $PGUSER_OS user can reach $W)"
            chmod o+x "$d"
        fi
        [ "$d" = / ] && break
        d=$(dirname "$d")
    done
fi
cd "$W"   # the server's tools complain when the cwd is not readable by their user

# unix socket path must fit in ~107 bytes: fall back to a short private dir
SOCKDIR=$W
if [ $(( ${#W} + 20 )) -gt 100 ]; then
    SOCKDIR=$(mktemp -d /tmp/ovpg.XXXXXX)
    [ "${#RUN[@]}" -eq 0 ] || chown "$PGUSER_OS": "$SOCKDIR"
    log "workdir path too long for a unix socket: socket dir $SOCKDIR"
fi

PSQL=("$PSQL_BIN" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
ensure_db() {
    local i
    for i in $(seq 1 50); do
        "${PSQL[@]}" -p "$PORT" -d postgres -Atc 'select 1' >/dev/null 2>&1 && break
        [ "$i" = 50 ] && { tail -n 40 "$W/postgres.log" >&2 || true; die "server not answering on 127.0.0.1:$PORT"; }
        sleep 0.2
    done
    if [ "$("${PSQL[@]}" -p "$PORT" -d postgres -Atc "select 1 from pg_database where datname = 'onevoice'")" != 1 ]; then
        "${PSQL[@]}" -p "$PORT" -d postgres -c 'create database onevoice'
        log "created database onevoice"
    fi
}
write_env() {
    printf 'DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:%s/onevoice\nPGPORT=%s\nPGHOST=127.0.0.1\nPGUSER=postgres\nPGDATABASE=onevoice\n' \
        "$PORT" "$PORT" >"$W/pg.env.tmp"
    mv -f "$W/pg.env.tmp" "$W/pg.env"
    cat "$W/pg.env"
}

# already running? (a kill -9'd postmaster can linger as a zombie until its new parent reaps it;
# pg_ctl and postgres both take a zombie for a live server, so wait for it to go away first)
PMPID=$(head -n 1 "$W/data/postmaster.pid" 2>/dev/null || true)
if [ -n "$PMPID" ] && kill -0 "$PMPID" 2>/dev/null && ! pid_alive "$PMPID"; then
    log "postmaster $PMPID is a zombie (killed?): waiting up to 30 s for it to be reaped"
    for _ in $(seq 1 300); do kill -0 "$PMPID" 2>/dev/null || break; sleep 0.1; done
fi
if [ -f "$W/data/PG_VERSION" ] && pid_alive "$PMPID" &&
        "${RUN[@]}" "$B/pg_ctl" -D "$W/data" status >/dev/null 2>&1; then
    PORT=$(sed -n 4p "$W/data/postmaster.pid")   # line 4 of postmaster.pid is the port
    log "already running (pid $(head -n 1 "$W/data/postmaster.pid"), port $PORT)"
    ensure_db
    write_env
    exit 0
fi

# 1) initdb once
T=$(now_ms)
if [ ! -f "$W/data/PG_VERSION" ]; then
    LOCALE=C
    locale -a 2>/dev/null | grep -qixE 'c\.utf-?8' && LOCALE=C.UTF-8
    NOSYNC=(); [ "${PG_FSYNC:-on}" = off ] && NOSYNC=(--no-sync)
    if ! "${RUN[@]}" "$B/initdb" -D "$W/data" -A trust -U postgres -E UTF8 --locale="$LOCALE" \
            "${NOSYNC[@]}" >"$W/initdb.log" 2>&1; then
        cat "$W/initdb.log" >&2; die "initdb failed"
    fi
    echo "include = 'onevoice.conf'" >>"$W/data/postgresql.conf"
    log "initdb done (locale $LOCALE) $(since "$T")"
fi

# 2) port + settings (rewritten on every start)
PORT=${PG_PORT:-}
if [ -z "$PORT" ]; then
    prev=$(env_get "$W/pg.env" PGPORT)
    # shellcheck disable=SC2119  # pick_free_port: no ports to exclude
    if [ -n "$prev" ] && port_free "$prev"; then PORT=$prev
    else PORT=$(pick_free_port) || die "no free port found"; fi
fi
port_listening "$PORT" && die "port $PORT on 127.0.0.1 is already in use"
FSYNC=on; [ "${PG_FSYNC:-on}" = off ] && FSYNC=off
q() { printf "'%s'" "${1//\'/\'\'}"; }
cat >"$W/onevoice.conf.tmp" <<EOF
# written by deploy/local/pg-up.sh on every start
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = $(q "$SOCKDIR")
fsync = $FSYNC
EOF
conf_line() { [ -z "$2" ] || echo "$1 = $(q "$2")" >>"$W/onevoice.conf.tmp"; }
conf_line shared_buffers "${PG_SHARED_BUFFERS:-}"
conf_line max_wal_size "${PG_MAX_WAL_SIZE:-}"
conf_line checkpoint_timeout "${PG_CHECKPOINT_TIMEOUT:-}"
[ "${#RUN[@]}" -eq 0 ] || chown "$PGUSER_OS": "$W/onevoice.conf.tmp"
mv -f "$W/onevoice.conf.tmp" "$W/data/onevoice.conf"

# 3) start
T=$(now_ms)
if ! "${RUN[@]}" "$B/pg_ctl" -D "$W/data" -l "$W/postgres.log" -w -t "${PG_READY_TIMEOUT:-60}" start >/dev/null; then
    log "---- tail of $W/postgres.log ----"; tail -n 40 "$W/postgres.log" >&2 || true
    die "pg_ctl start failed"
fi
ensure_db
log "postgres ready on 127.0.0.1:$PORT (fsync=$FSYNC) $(since "$T") (total $(since "$T0"))"
write_env
