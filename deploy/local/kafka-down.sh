#!/usr/bin/env bash
# usage: kafka-down.sh <workdir>
# Stops the broker started by kafka-up.sh <workdir>: SIGTERM (controlled shutdown), wait up to
# KAFKA_STOP_TIMEOUT seconds (default 30), then SIGKILL. Idempotent: exits 0 when nothing runs.
# Keeps <workdir>/data, so kafka-up.sh <workdir> restarts with the same topics and messages.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=kafka-down
# shellcheck source=SCRIPTDIR/_common.sh
. "$HERE/_common.sh"

[ $# -eq 1 ] || { echo "usage: $0 <workdir>" >&2; exit 2; }
[ -d "$1" ] || { log "no such workdir $1: nothing to stop"; exit 0; }
KDIR=$(cd "$1" && pwd -P)
PID=$(cat "$KDIR/kafka.pid" 2>/dev/null || true)
if [ -z "$PID" ]; then log "not running (no pid file)"; exit 0; fi
if is_kafka_broker "$PID" "$KDIR"; then
    T=$(now_ms)
    stop_pid "$PID" "${KAFKA_STOP_TIMEOUT:-30}"
    log "stopped broker pid $PID $(since "$T")"
else
    log "pid $PID is not running (stale pid file)"
fi
rm -f "$KDIR/kafka.pid"
