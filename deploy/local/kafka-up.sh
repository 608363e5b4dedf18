#!/usr/bin/env bash
# usage: kafka-up.sh <workdir>
#
# Starts a real single-node KRaft Apache Kafka broker (broker+controller in one JVM) on 127.0.0.1,
# from Maven Central jars (no tarball, no Docker). Idempotent: if the broker of <workdir> is already
# running it only re-checks readiness. Restarting on the same <workdir> (e.g. after kill -9) keeps
# the data and, when still free, the same ports.
#
# env: BROKER_PORT, SASL_PORT,        ports of the PLAINTEXT listener, the SASL_PLAINTEXT listener
#      CONTROLLER_PORT                (mechanism PLAIN, user onevoice / onevoice-test) and the
#                                     controller (default: the ones in <workdir>/kafka.env if free,
#                                     else free loopback ports picked automatically)
#      ONEVOICE_CACHE                 cache root (default $HOME/.cache/onevoice); jars go to
#                                     $ONEVOICE_CACHE/kafka-libs and are reused across runs
#      PYTHON                         python for the readiness probe (default python3); if it
#                                     cannot `import kafka` a java TopicCommand --list probe is used
#      KAFKA_PROBE=python|java        force a probe kind
#      KAFKA_READY_TIMEOUT            seconds to wait for readiness (default 120)
#      KAFKA_HEAP                     broker -Xmx (default 512m)
#      KAFKA_CLUSTER_ID               cluster id used when formatting (default fixed)
# out: <workdir>/kafka.pid, <workdir>/kafka.env (BOOTSTRAP=127.0.0.1:PORT (plaintext),
#      SASL_BOOTSTRAP=127.0.0.1:PORT (SASL_PLAINTEXT), BROKER_PORT, SASL_PORT, CONTROLLER_PORT;
#      also printed on stdout), <workdir>/logs/broker.out, <workdir>/data
# exit: 0 ready; 1 failure (broker log tail on stderr, broker stopped); 2 usage
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=kafka-up
# shellcheck source=SCRIPTDIR/_common.sh
. "$HERE/_common.sh"

[ $# -eq 1 ] || { echo "usage: $0 <workdir>" >&2; exit 2; }
mkdir -p "$1"
KDIR=$(cd "$1" && pwd -P)
CACHE=${ONEVOICE_CACHE:-${HOME:-/tmp}/.cache/onevoice}
LIBS=$CACHE/kafka-libs
PY=${PYTHON:-python3}
READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-120}
T0=$(now_ms)

command -v java >/dev/null || die "java not found (need a JDK/JRE 17+, e.g. apt-get install -y openjdk-17-jre-headless)"
mkdir -p "$KDIR/data" "$KDIR/logs"

JOPTS=(-Xms256m "-Xmx${KAFKA_HEAP:-512m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
       -Djava.awt.headless=true "-Dlog4j2.configurationFile=$HERE/log4j2.properties"
       "-Dkafka.logs.dir=$KDIR/logs")
# one-shot CLI tools: small heap, fast JIT start, quiet logs
TOOL_JOPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
            "-Dlog4j2.configurationFile=$HERE/log4j2.properties" -Donevoice.kafka.log.level=WARN)
CP="$LIBS/*"   # quoted everywhere: the JVM expands the wildcard, not the shell

BOOT=
ready_probe_kind() {
    if [ -n "${KAFKA_PROBE:-}" ]; then echo "$KAFKA_PROBE"
    elif command -v "$PY" >/dev/null 2>&1 && "$PY" -c 'import kafka' >/dev/null 2>&1; then echo python
    else echo java; fi
}

# probe_once: one real metadata round-trip (MetadataRequest via an admin client)
probe_once() {
    if [ "$PROBE" = python ]; then
        timeout 30 "$PY" - "$BOOT" >"$KDIR/logs/probe.out" 2>&1 <<'PY'
import sys
from kafka import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers=sys.argv[1], client_id="kafka-up-probe",
                     request_timeout_ms=5000, bootstrap_timeout_ms=5000)
try:
    a.list_topics()
finally:
    a.close()
PY
    else
        printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n' >"$KDIR/probe.properties"
        timeout 60 java "${TOOL_JOPTS[@]}" -cp "$CP" org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "$BOOT" --command-config "$KDIR/probe.properties" --list \
            >"$KDIR/logs/probe.out" 2>&1
    fi
}

fail() {
    log "ERROR: $*"
    log "---- tail of $KDIR/logs/broker.out ----"
    tail -n 60 "$KDIR/logs/broker.out" >&2 || true
    if [ -s "$KDIR/logs/probe.out" ]; then
        log "---- last readiness probe output ----"; tail -n 20 "$KDIR/logs/probe.out" >&2
    fi
    if [ -n "${PID:-}" ] && pid_alive "$PID"; then
        log "stopping the broker (pid $PID)"; stop_pid "$PID" 15
    fi
    rm -f "$KDIR/kafka.pid"
    exit 1
}

wait_ready() {
    local deadline=$(( $(date +%s) + READY_TIMEOUT ))
    PROBE=$(ready_probe_kind)
    log "waiting for a metadata round-trip on $BOOT (probe: $PROBE, timeout ${READY_TIMEOUT}s)"
    local misses=0
    while :; do
        pid_alive "$PID" || fail "broker process $PID exited"
        if port_listening "$BROKER_PORT"; then
            if probe_once; then
                # every listener is open before the broker answers metadata requests
                port_listening "$SASL_PORT" || fail "SASL_PLAINTEXT listener $SASL_PORT is not open"
                return 0
            fi
            misses=$((misses + 1))
            if [ "$PROBE" = python ] && [ "$misses" -ge 10 ]; then
                log "python probe keeps failing on an open port; switching to the java probe:"
                tail -n 3 "$KDIR/logs/probe.out" >&2 || true
                PROBE=java
            fi
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "broker not ready within ${READY_TIMEOUT}s"
        sleep 0.5
    done
}

write_env() {
    printf 'BOOTSTRAP=127.0.0.1:%s\nSASL_BOOTSTRAP=127.0.0.1:%s\nBROKER_PORT=%s\nSASL_PORT=%s\nCONTROLLER_PORT=%s\n' \
        "$BROKER_PORT" "$SASL_PORT" "$BROKER_PORT" "$SASL_PORT" "$CONTROLLER_PORT" >"$KDIR/kafka.env.tmp"
    mv -f "$KDIR/kafka.env.tmp" "$KDIR/kafka.env"
    cat "$KDIR/kafka.env"
}

# 0) already running? -> only re-check readiness
PID=$(cat "$KDIR/kafka.pid" 2>/dev/null || true)
if [ -n "$PID" ] && is_kafka_broker "$PID" "$KDIR" && [ -f "$KDIR/kafka.env" ]; then
    want_b=${BROKER_PORT:-}
    BROKER_PORT=$(env_get "$KDIR/kafka.env" BROKER_PORT)
    SASL_PORT=$(env_get "$KDIR/kafka.env" SASL_PORT)
    CONTROLLER_PORT=$(env_get "$KDIR/kafka.env" CONTROLLER_PORT)
    [ -n "$SASL_PORT" ] || die "running broker (pid $PID) has no SASL listener: kafka-down.sh, then up again"
    if [ -n "$want_b" ] && [ "$want_b" != "$BROKER_PORT" ]; then
        log "warning: BROKER_PORT=$want_b ignored: already running on $BROKER_PORT (kafka-down.sh first)"
    fi
    BOOT=127.0.0.1:$BROKER_PORT
    log "already running (pid $PID)"
    wait_ready
    write_env
    exit 0
fi
PID=

# 1) jars: cached outside the repo, re-fetched only when pom.xml changes
T=$(now_ms)
want=$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)
if [ "$(cat "$LIBS/.pom.sha256" 2>/dev/null || true)" != "$want" ]; then
    command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
    mkdir -p "$CACHE"
    exec 9>"$CACHE/kafka-libs.lock"
    command -v flock >/dev/null && flock 9   # concurrent first runs: one downloads
    if [ "$(cat "$LIBS/.pom.sha256" 2>/dev/null || true)" != "$want" ]; then
        log "fetching Kafka jars from Maven Central into $LIBS"
        tmp=$(mktemp -d "$CACHE/kafka-libs.tmp.XXXXXX")
        # (sed: Maven 3.8 with -q still prints bare ANSI resets)
        if ! mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
                -DoutputDirectory="$tmp" 2>&1 </dev/null | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2; then
            rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed"
        fi
        echo "$want" >"$tmp/.pom.sha256"
        rm -rf "$LIBS"; mv "$tmp" "$LIBS"
        JARS_HOW=downloaded
    fi
    exec 9>&-   # never let the broker inherit the lock
fi
log "jars: ${JARS_HOW:-cached} ($(find "$LIBS" -name '*.jar' | wc -l) in $LIBS) $(since "$T")"

# 2) ports: env > previous kafka.env (if free) > pick
prev_b=$(env_get "$KDIR/kafka.env" BROKER_PORT)
prev_s=$(env_get "$KDIR/kafka.env" SASL_PORT)
prev_c=$(env_get "$KDIR/kafka.env" CONTROLLER_PORT)
if [ -z "${BROKER_PORT:-}" ]; then
    if [ -n "$prev_b" ] && port_free "$prev_b"; then BROKER_PORT=$prev_b
    else BROKER_PORT=$(pick_free_port) || die "no free port found"; fi
fi
if [ -z "${SASL_PORT:-}" ]; then
    if [ -n "$prev_s" ] && [ "$prev_s" != "$BROKER_PORT" ] && port_free "$prev_s"; then
        SASL_PORT=$prev_s
    else SASL_PORT=$(pick_free_port "$BROKER_PORT") || die "no free port found"; fi
fi
if [ -z "${CONTROLLER_PORT:-}" ]; then
    if [ -n "$prev_c" ] && [ "$prev_c" != "$BROKER_PORT" ] && [ "$prev_c" != "$SASL_PORT" ] &&
            port_free "$prev_c"; then
        CONTROLLER_PORT=$prev_c
    else CONTROLLER_PORT=$(pick_free_port "$BROKER_PORT" "$SASL_PORT") || die "no free port found"; fi
fi
[ "$(printf '%s\n' "$BROKER_PORT" "$SASL_PORT" "$CONTROLLER_PORT" | sort -u | wc -l)" = 3 ] ||
    die "BROKER_PORT, SASL_PORT and CONTROLLER_PORT must differ"
for p in "$BROKER_PORT" "$SASL_PORT" "$CONTROLLER_PORT"; do
    port_listening "$p" && die "port $p on 127.0.0.1 is already in use"
done
BOOT=127.0.0.1:$BROKER_PORT
log "ports: broker $BROKER_PORT, sasl $SASL_PORT, controller $CONTROLLER_PORT"

esc() { printf '%s' "$1" | sed 's/[\\&|]/\\&/g'; }
sed -e "s|\${BROKER_PORT}|$BROKER_PORT|g" -e "s|\${SASL_PORT}|$SASL_PORT|g" \
    -e "s|\${CONTROLLER_PORT}|$CONTROLLER_PORT|g" \
    -e "s|\${KDIR}|$(esc "$KDIR")|g" "$HERE/server.properties.tmpl" >"$KDIR/server.properties"

# 3) format storage once (fixed cluster id; --ignore-formatted keeps it idempotent)
T=$(now_ms)
if [ ! -f "$KDIR/data/meta.properties" ]; then
    java "${TOOL_JOPTS[@]}" -cp "$CP" kafka.tools.StorageTool format --ignore-formatted \
        -t "${KAFKA_CLUSTER_ID:-4L6g3nShT-eMCtK--X86sw}" -c "$KDIR/server.properties" \
        >"$KDIR/logs/format.out" 2>&1 || { cat "$KDIR/logs/format.out" >&2; die "storage format failed"; }
    log "storage formatted $(since "$T")"
else
    log "storage already formatted"
fi

# 4) start the broker as its own process (own session, no inherited stdio) so tests can
#    kill -9 it and restart it on the same log.dirs
T=$(now_ms)
printf '\n===== kafka-up %s: starting broker on %s =====\n' "$(date -Is)" "$BOOT" >>"$KDIR/logs/broker.out"
rm -f "$KDIR/kafka.pid"
SETSID=(); command -v setsid >/dev/null && SETSID=(setsid)
# shellcheck disable=SC2016  # $$ / $1 expand in the child shell, on purpose
"${SETSID[@]}" bash -c 'echo $$ >"$1.tmp" && mv -f "$1.tmp" "$1"; shift; exec "$@"' _ "$KDIR/kafka.pid" \
    java "${JOPTS[@]}" -cp "$CP" kafka.Kafka "$KDIR/server.properties" \
    </dev/null >>"$KDIR/logs/broker.out" 2>&1 &
for _ in $(seq 1 100); do [ -s "$KDIR/kafka.pid" ] && break; sleep 0.05; done
PID=$(cat "$KDIR/kafka.pid" 2>/dev/null || true)
[ -n "$PID" ] || fail "broker did not start"
log "broker pid $PID"

# 5) readiness: a real metadata round-trip, not a log grep
wait_ready
log "broker ready $(since "$T") (total $(since "$T0"))"
write_env
