#!/usr/bin/env bash
# Local backing services for stockguard: a single-node Apache Kafka broker
# (KRaft mode, run from Maven Central jars; no Docker needed) and redis-server,
# both bound to loopback only.
#
# Usage: scripts/services.sh COMMAND
#   fetch         download the Kafka jars into the cache (idempotent)
#   start-kafka   start the broker unless KAFKA_BOOTSTRAP_SERVERS is set;
#                 prints the bootstrap address as the last stdout line
#   stop-kafka    stop the broker (SIGTERM, then SIGKILL after 30 s)
#   start-redis   start redis unless REDIS_URL is set; prints the URL last
#   stop-redis    stop redis
#   start | stop  both of the above
#   status        report both; exit 0 only if both are running
#   env           print `export ...` lines for eval "$(scripts/services.sh env)"
#
# Environment:
#   STOCKGUARD_CACHE     jar cache root     (default: ~/.cache/stockguard)
#   STOCKGUARD_RUN_DIR   state/logs/pids    (default: /tmp/stockguard-services)
#   KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), REDIS_PORT (6379)
#   KAFKA_HEAP_OPTS      JVM heap flags     (default: -Xms256m -Xmx1g)
#   KAFKA_START_TIMEOUT  seconds to wait for the broker (default: 90)
#   KAFKA_BOOTSTRAP_SERVERS / REDIS_URL   use an existing service instead
#
# Progress goes to stderr, so stdout carries only the addresses.
# To start from scratch, stop and delete $STOCKGUARD_RUN_DIR.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"

# The pom is the single source of truth for the Kafka version.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"
[[ -n "$KAFKA_VERSION" ]] || { echo "services: no <kafka.version> in $KAFKA_POM" >&2; exit 1; }

CACHE_DIR="${STOCKGUARD_CACHE:-$HOME/.cache/stockguard}"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"

RUN_DIR="${STOCKGUARD_RUN_DIR:-/tmp/stockguard-services}"
KAFKA_STATE="$RUN_DIR/kafka"
REDIS_STATE="$RUN_DIR/redis"
KAFKA_PID="$KAFKA_STATE/kafka.pid"
REDIS_PID="$REDIS_STATE/redis.pid"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_ADDR="127.0.0.1:$KAFKA_PORT"
REDIS_ADDR="redis://127.0.0.1:$REDIS_PORT/0"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }

# pid_of PIDFILE PATTERN: print the pid if it is alive and its command line
# contains PATTERN (guards against a stale pid file whose pid was reused).
pid_of() {
    local pid cmdline
    [[ -s "$1" ]] || return 1
    pid="$(<"$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$2"* ]] || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pid NAME PID: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
    local name="$1" pid="$2" i
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || { log "$name stopped"; return 0; }
        sleep 0.1
    done
    log "$name did not exit after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    die "$name (pid $pid) survived SIGKILL"
}

# with_lock FILE CMD...: serialise concurrent invocations (e.g. parallel test
# workers all calling start). fd 9 must not leak into the daemons we spawn,
# or they would hold the lock forever; spawn sites close it with 9>&-.
with_lock() {
    local lock="$1"; shift
    mkdir -p "$(dirname "$lock")"
    (
        exec 9>"$lock"
        flock -w 600 9 || die "timed out waiting for $lock"
        "$@"
    )
}

# ---------------------------------------------------------------- Kafka

do_fetch() {
    # The stamp holds the pom's hash, so editing the pom triggers a re-fetch.
    local stamp="$KAFKA_HOME/.fetched" want tmp
    want="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
        log "kafka $KAFKA_VERSION jars already in $KAFKA_LIBS"
        return 0
    fi
    command -v "$MVN" >/dev/null || die "mvn not found (apt-get install -y maven)"
    log "fetching kafka $KAFKA_VERSION jars into $KAFKA_LIBS"
    # Copy into a temp dir and swap it in, so an interrupted fetch never
    # leaves a half-filled libs/ that looks complete.
    tmp="$KAFKA_HOME/libs.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # Maven's output is kept in a log and shown only on failure (Maven 3.8
    # emits colour escapes even in batch mode).
    if ! "$MVN" -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_HOME/fetch.log" 2>&1; then
        cat "$KAFKA_HOME/fetch.log" >&2
        rm -rf "$tmp"
        die "mvn dependency:copy-dependencies failed (log: $KAFKA_HOME/fetch.log)"
    fi
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    echo "$want" >"$stamp"
    log "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars"
}
cmd_fetch() { with_lock "$CACHE_DIR/.fetch.lock" do_fetch; }

write_kafka_config() {
    mkdir -p "$KAFKA_STATE/logs"
    cat >"$KAFKA_STATE/server.properties" <<EOF
# Generated by scripts/services.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_STATE/data
num.partitions=4
auto.create.topics.enable=true
# Single node: every internal topic must have replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The default 50 partitions make the first consumer group join slow.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
# Do not hold back the first rebalance (default 3 s) - tests join groups often.
group.initial.rebalance.delay.ms=0
EOF

    # Broker log: rolling file in the state dir (Kafka 4 logs via log4j2).
    # shutdownHook=disable: log4j's own hook would otherwise stop logging
    # while Kafka's shutdown hook is still running, cutting off the last lines
    # of a clean shutdown (the appender flushes every event anyway).
    cat >"$KAFKA_STATE/log4j2.properties" <<EOF
status = warn
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $KAFKA_STATE/logs/server.log
appender.file.filePattern = $KAFKA_STATE/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
# Per-request logging is very chatty at INFO.
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF

    # CLI tools (StorageTool, TopicCommand): warnings to stderr only.
    cat >"$KAFKA_STATE/tools-log4j2.properties" <<EOF
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
EOF
}

kafka_tool() {
    "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$KAFKA_STATE/tools-log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$@"
}

# Format the KRaft storage once. The stamp records what the format depends on
# (with --standalone the controller endpoint is written into the metadata log),
# so a changed controller port or Kafka version gets fresh storage.
format_kafka_storage() {
    local stamp="$KAFKA_STATE/.formatted"
    local want="kafka=$KAFKA_VERSION controller_port=$KAFKA_CONTROLLER_PORT"
    if [[ -f "$KAFKA_STATE/data/meta.properties" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        return 0
    fi
    log "formatting KRaft storage in $KAFKA_STATE/data"
    rm -rf "$KAFKA_STATE/data" "$stamp"
    local cluster_id
    cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid | tail -n1)"
    kafka_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" \
        -c "$KAFKA_STATE/server.properties" >&2
    echo "$want" >"$stamp"
}

# Pick a Python that has confluent_kafka, for the readiness probe.
probe_python() {
    local py
    for py in "${STOCKGUARD_PYTHON:-}" "$REPO_DIR/.venv/bin/python" python3; do
        if [[ -z "$py" ]] || ! command -v "$py" >/dev/null; then continue; fi
        "$py" -c 'import confluent_kafka' 2>/dev/null && { echo "$py"; return 0; }
    done
    return 1
}

# kafka_ready: 0 once the broker answers a real metadata request. Port-open
# alone is not enough: the listener accepts connections before the broker has
# caught up with the controller and can serve requests.
kafka_ready() {
    local py
    port_open "$KAFKA_PORT" || return 1
    if py="$(probe_python)"; then
        "$py" - "$KAFKA_ADDR" 2>/dev/null <<'EOF'
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=5)
EOF
    elif [[ -f "$KAFKA_LIBS/kafka-tools-$KAFKA_VERSION.jar" ]]; then
        timeout 30 "$JAVA" -Xmx128m -Dlog4j2.configurationFile="$KAFKA_STATE/tools-log4j2.properties" \
            -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "$KAFKA_ADDR" --list >/dev/null 2>&1
    else
        return 0 # port is open; nothing better available
    fi
}

wait_kafka_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until kafka_ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "kafka exited during startup; last log lines:"
            tail -n 30 "$KAFKA_STATE/logs/server.log" "$KAFKA_STATE/logs/kafka.out" >&2 2>/dev/null || true
            rm -f "$KAFKA_PID"
            exit 1
        fi
        ((SECONDS < deadline)) || die "kafka not ready after ${KAFKA_START_TIMEOUT}s; see $KAFKA_STATE/logs/server.log"
        sleep 1
    done
}

do_start_kafka() {
    local pid
    if pid="$(pid_of "$KAFKA_PID" kafka.Kafka)"; then
        log "kafka already running (pid $pid)"
        wait_kafka_ready "$pid"
        echo "$KAFKA_ADDR"
        return 0
    fi
    rm -f "$KAFKA_PID"
    port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process; set KAFKA_PORT, or KAFKA_BOOTSTRAP_SERVERS to use that broker"
    port_open "$KAFKA_CONTROLLER_PORT" && die "controller port $KAFKA_CONTROLLER_PORT is taken; set KAFKA_CONTROLLER_PORT"
    command -v "$JAVA" >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"

    cmd_fetch
    write_kafka_config
    format_kafka_storage

    log "starting kafka $KAFKA_VERSION on $KAFKA_ADDR (state: $KAFKA_STATE)"
    local start=$SECONDS
    # setsid: detach from the caller's process group so a Ctrl-C or a test
    # runner's group kill does not take the broker down. The inner shell
    # writes its own pid before exec'ing java, so the pid file is exact
    # whether or not setsid had to fork.
    # SC2016: $$ and $@ are for the inner shell. SC2086: KAFKA_HEAP_OPTS is
    # a list of flags and must split.
    # shellcheck disable=SC2016,SC2086
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PID" \
        "$JAVA" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} -XX:+UseG1GC -Djava.awt.headless=true \
        -Dkafka.logs.dir="$KAFKA_STATE/logs" \
        -Dlog4j2.configurationFile="$KAFKA_STATE/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_STATE/server.properties" \
        </dev/null >>"$KAFKA_STATE/logs/kafka.out" 2>&1 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        pid="$(pid_of "$KAFKA_PID" kafka.Kafka)" && break
        sleep 0.1
    done
    [[ -n "${pid:-}" ]] || die "kafka did not start; see $KAFKA_STATE/logs/kafka.out"
    wait_kafka_ready "$pid"
    log "kafka ready (pid $pid) after $((SECONDS - start))s"
    echo "$KAFKA_ADDR"
}

cmd_start_kafka() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS is set; not starting a local broker"
        echo "$KAFKA_BOOTSTRAP_SERVERS"
        return 0
    fi
    with_lock "$RUN_DIR/.kafka.lock" do_start_kafka
}

cmd_stop_kafka() {
    local pid
    if pid="$(pid_of "$KAFKA_PID" kafka.Kafka)"; then
        # A clean shutdown of a KRaft broker takes a few seconds.
        stop_pid kafka "$pid"
    else
        log "kafka not running"
    fi
    rm -f "$KAFKA_PID"
}

# ---------------------------------------------------------------- Redis

ensure_redis_installed() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    log "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Try without `apt-get update` first: it is slow and the lists are often
    # fresh enough already.
    "${sudo[@]}" apt-get install -y redis-server >&2 \
        || { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y redis-server >&2; } \
        || die "could not install redis-server"
}

redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

do_start_redis() {
    local pid i
    if pid="$(pid_of "$REDIS_PID" redis-server)"; then
        log "redis already running (pid $pid)"
        echo "$REDIS_ADDR"
        return 0
    fi
    rm -f "$REDIS_PID"
    ensure_redis_installed
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by another process; set REDIS_PORT, or REDIS_URL to use that server"
    mkdir -p "$REDIS_STATE"
    log "starting redis on 127.0.0.1:$REDIS_PORT (state: $REDIS_STATE)"
    # No persistence: this is a scratch instance for tests and local runs.
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
        --save '' --appendonly no --pidfile "$REDIS_PID" \
        --logfile "$REDIS_STATE/redis.log" --dir "$REDIS_STATE" 9>&- >&2
    for ((i = 0; i < 150; i++)); do
        redis_ping && break
        sleep 0.1
    done
    redis_ping || die "redis did not answer PING; see $REDIS_STATE/redis.log"
    log "redis ready (pid $(<"$REDIS_PID"))"
    echo "$REDIS_ADDR"
}

cmd_start_redis() {
    if [[ -n "${REDIS_URL:-}" ]]; then
        log "REDIS_URL is set; not starting a local redis"
        echo "$REDIS_URL"
        return 0
    fi
    with_lock "$RUN_DIR/.redis.lock" do_start_redis
}

cmd_stop_redis() {
    local pid
    if pid="$(pid_of "$REDIS_PID" redis-server)"; then
        stop_pid redis "$pid"
    else
        log "redis not running"
    fi
    rm -f "$REDIS_PID"
}

# ---------------------------------------------------------------- both

cmd_status() {
    local pid rc=0
    if pid="$(pid_of "$KAFKA_PID" kafka.Kafka)"; then
        echo "kafka: running (pid $pid) at $KAFKA_ADDR"
    else
        echo "kafka: stopped"; rc=3
    fi
    if pid="$(pid_of "$REDIS_PID" redis-server)"; then
        echo "redis: running (pid $pid) at $REDIS_ADDR"
    else
        echo "redis: stopped"; rc=3
    fi
    return "$rc"
}

cmd_env() {
    echo "export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_ADDR}"
    echo "export REDIS_URL=${REDIS_URL:-$REDIS_ADDR}"
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; }

case "${1:-}" in
    fetch) cmd_fetch ;;
    start-kafka) cmd_start_kafka ;;
    stop-kafka) cmd_stop_kafka ;;
    start-redis) cmd_start_redis ;;
    stop-redis) cmd_stop_redis ;;
    start) cmd_start_kafka; cmd_start_redis ;;
    stop) cmd_stop_kafka; cmd_stop_redis ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
esac
