#!/usr/bin/env bash
# usage: pg-down.sh <workdir>
# Stops the cluster started by pg-up.sh <workdir> (pg_ctl stop -m fast). Idempotent: exits 0 when
# nothing runs. Keeps <workdir>/data, so pg-up.sh <workdir> restarts the same cluster.
# env: PG_BIN (as for pg-up.sh), PG_STOP_TIMEOUT (seconds, default 60)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=pg-down
# shellcheck source=SCRIPTDIR/_common.sh
. "$HERE/_common.sh"

[ $# -eq 1 ] || { echo "usage: $0 <workdir>" >&2; exit 2; }
if [ ! -f "$1/data/PG_VERSION" ]; then log "no cluster in $1: nothing to stop"; exit 0; fi
W=$(cd "$1" && pwd -P)
cd "$W"
if [ ! -f "$W/data/postmaster.pid" ]; then log "not running"; exit 0; fi

RUN=()
owner=$(stat -c %U "$W/data")
if [ "$(id -u)" = 0 ] && [ "$owner" != root ]; then RUN=(runuser -u "$owner" --); fi

B=${PG_BIN:-}
if [ -z "$B" ]; then
    for d in /usr/lib/postgresql/"$(cat "$W/data/PG_VERSION")"/bin /usr/lib/postgresql/15/bin; do
        if [ -x "$d/pg_ctl" ]; then B=$d; break; fi
    done
fi
T=$(now_ms)
if [ -n "$B" ] && [ -x "$B/pg_ctl" ]; then
    if "${RUN[@]}" "$B/pg_ctl" -D "$W/data" status >/dev/null 2>&1; then
        "${RUN[@]}" "$B/pg_ctl" -D "$W/data" -m fast -w -t "${PG_STOP_TIMEOUT:-60}" stop >/dev/null
        log "stopped $(since "$T")"
    else
        log "not running (stale postmaster.pid)"
    fi
else
    # no pg_ctl around: SIGINT is what "pg_ctl stop -m fast" sends to the postmaster
    pid=$(head -n 1 "$W/data/postmaster.pid")
    if pid_alive "$pid"; then
        kill -INT "$pid"
        for _ in $(seq 1 "$(( ${PG_STOP_TIMEOUT:-60} * 10 ))"); do pid_alive "$pid" || break; sleep 0.1; done
        pid_alive "$pid" && die "postmaster $pid did not stop"
        log "stopped postmaster $pid (SIGINT) $(since "$T")"
    else
        log "not running (stale postmaster.pid)"
    fi
fi
