# shellcheck shell=bash
# Helpers sourced by kafka-up.sh / pg-up.sh (not meant to be run on its own).

log() { printf '[%s] %s\n' "${LOG_TAG:-local}" "$*" >&2; }
die() { log "ERROR: $*"; exit "${DIE_CODE:-1}"; }

# now_ms: wall clock in milliseconds (for the phase timings the scripts print)
now_ms() { date +%s%3N; }
since() { echo "$(( $(now_ms) - $1 ))ms"; }

# port_listening PORT: true if something accepts TCP connections on 127.0.0.1:PORT
port_listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# port_free PORT: nothing listening and (when python is around) bindable on 127.0.0.1
port_free() {
    local p=$1 py
    port_listening "$p" && return 1
    py=$(command -v "${PYTHON:-python3}" 2>/dev/null || command -v python3 2>/dev/null || true)
    [ -n "$py" ] || return 0
    "$py" - "$p" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
# same as the JVM / postgres do for listen sockets, so TIME_WAIT leftovers do not count as busy
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# pick_free_port [EXCLUDE...]: prints a free loopback port in 20000-32767 (below Linux's
# ephemeral range, so an outgoing connection does not grab it between the pick and the bind)
pick_free_port() {
    local p i x skip
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM + i) % 12768 ))
        skip=0
        for x in "$@"; do [ "$x" = "$p" ] && skip=1; done
        [ "$skip" = 1 ] && continue
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    return 1
}

# env_get FILE KEY: value of KEY=... in a simple KEY=VALUE file ('' if absent)
env_get() {
    [ -f "$1" ] || return 0
    sed -n "s/^$2=//p" "$1" | tail -n 1
}

# pid_alive PID: process exists and is not a zombie (an un-reaped dead broker must count as gone)
pid_alive() {
    local st
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo '?')
    [ "$st" != Z ] && [ "$st" != X ]
}

# is_kafka_broker PID KDIR: PID is a live kafka.Kafka started with KDIR/server.properties
is_kafka_broker() {
    pid_alive "$1" || return 1
    [ -r "/proc/$1/cmdline" ] || return 0   # no procfs: trust the pid file
    tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF "kafka.Kafka" &&
        tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF "$2/server.properties"
}

# stop_pid PID TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S, then SIGKILL; returns when it is gone
stop_pid() {
    local pid=$1 t=$(( $2 * 10 )) i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < t; i++)); do pid_alive "$pid" || return 0; sleep 0.1; done
    log "pid $pid still alive after $2 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do pid_alive "$pid" || return 0; sleep 0.1; done
    die "pid $pid survived SIGKILL"
}
