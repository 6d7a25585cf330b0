#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) for development, tests and CI.
#
#   deploy/kafka/local-kafka.sh install   resolve the pinned Kafka jars from Maven Central
#   deploy/kafka/local-kafka.sh start     format storage once, start the broker, wait until ready
#   deploy/kafka/local-kafka.sh stop      clean shutdown (SIGTERM, then SIGKILL after a timeout)
#   deploy/kafka/local-kafka.sh status    exit 0 when running and answering, 1 when running but
#                                         not answering, 3 when not running
#   deploy/kafka/local-kafka.sh logs [-f] last lines of the broker log (or follow it)
#   deploy/kafka/local-kafka.sh env       print `export FOOTFALL_KAFKA_BROKERS=...` and the SASL settings
#   deploy/kafka/local-kafka.sh reset     delete the state dir (data, config, logs); broker must be stopped
#
# Every command is safe to repeat: `install` and `start` are no-ops when already
# done, `stop` on a stopped broker is fine, and `start` after `stop` keeps all data.
#
# Environment (defaults in brackets):
#   FOOTFALL_KAFKA_HOME            jars      [$HOME/.cache/footfall/kafka-<version>]
#   FOOTFALL_KAFKA_STATE           data, config, logs, pid  [$HOME/.local/state/footfall/kafka]
#   FOOTFALL_KAFKA_PORT            client (PLAINTEXT) port on 127.0.0.1 [9092]
#   FOOTFALL_KAFKA_CONTROLLER_PORT KRaft controller port on 127.0.0.1   [9093]
#   FOOTFALL_KAFKA_SASL_PORT       SASL_PLAINTEXT (SCRAM-SHA-512) port on 127.0.0.1 [9094]
#
# The broker also listens with SASL/SCRAM on FOOTFALL_KAFKA_SASL_PORT, for
# testing secured set-ups: a SCRAM-SHA-512 user `footfall` is created when the
# storage is formatted (and added to storage formatted before this existed),
# with a random password kept in $FOOTFALL_KAFKA_STATE/sasl/footfall.password
# (mode 0600, directory 0700). `env` prints where it is; the password itself
# is never printed. Wrong credentials on that port fail authentication.
#   FOOTFALL_KAFKA_HEAP            JVM heap flags   [-Xms256m -Xmx512m]
#   FOOTFALL_KAFKA_START_TIMEOUT   seconds to wait for readiness [120]
#   FOOTFALL_KAFKA_STOP_TIMEOUT    seconds to wait after SIGTERM  [60]
#   FOOTFALL_KAFKA_REBALANCE_DELAY_MS  group.initial.rebalance.delay.ms [0;
#                                  Kafka's own default is 3000, for benchmarks
#                                  of a stock broker]
#
# Requires java (17 or newer) and, for `install`, mvn. Readiness is a metadata
# request: `kcat -L` when kcat is installed, otherwise Kafka's own
# BrokerApiVersionsCommand.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly POM="$SCRIPT_DIR/pom.xml"

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
readonly KAFKA_VERSION
readonly HOST=127.0.0.1
readonly PORT="${FOOTFALL_KAFKA_PORT:-9092}"
readonly CONTROLLER_PORT="${FOOTFALL_KAFKA_CONTROLLER_PORT:-9093}"
readonly SASL_PORT="${FOOTFALL_KAFKA_SASL_PORT:-9094}"
readonly SASL_USER=footfall
readonly SASL_MECHANISM=SCRAM-SHA-512
readonly KAFKA_HOME="${FOOTFALL_KAFKA_HOME:-$HOME/.cache/footfall/kafka-$KAFKA_VERSION}"
readonly STATE="${FOOTFALL_KAFKA_STATE:-$HOME/.local/state/footfall/kafka}"
readonly HEAP="${FOOTFALL_KAFKA_HEAP:--Xms256m -Xmx512m}"
readonly START_TIMEOUT="${FOOTFALL_KAFKA_START_TIMEOUT:-120}"
readonly STOP_TIMEOUT="${FOOTFALL_KAFKA_STOP_TIMEOUT:-60}"
readonly REBALANCE_DELAY_MS="${FOOTFALL_KAFKA_REBALANCE_DELAY_MS:-0}"

readonly LIBS="$KAFKA_HOME/libs"
readonly INSTALLED_MARKER="$KAFKA_HOME/installed"
readonly CONF_DIR="$STATE/config"
readonly DATA_DIR="$STATE/data"
readonly LOG_DIR="$STATE/logs"
readonly PID_FILE="$STATE/kafka.pid"
readonly SERVER_PROPERTIES="$CONF_DIR/server.properties"
readonly SERVER_LOG="$LOG_DIR/server.log"
readonly CONSOLE_LOG="$LOG_DIR/console.log"
readonly BROKERS="$HOST:$PORT"
readonly SASL_BROKERS="$HOST:$SASL_PORT"
readonly SASL_DIR="$STATE/sasl"
readonly SASL_PASSWORD_FILE="$SASL_DIR/$SASL_USER.password"
readonly SASL_USER_MARKER="$SASL_DIR/user-created"

readonly SERVER_NAME=local-kafka
readonly SERVER_MATCH='kafka\.Kafka'
# shellcheck source=deploy/lib/local-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/local-server.sh"

# ---------------------------------------------------------------- prerequisites

require_java() {
    command -v java >/dev/null 2>&1 ||
        die "java not found on PATH: install a JDK/JRE 17 or newer (Debian: apt-get install openjdk-17-jre-headless)"
    local version major
    version="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${version%%.*}"
    [[ "$major" =~ ^[0-9]+$ ]] || die "cannot read the java version from 'java -version'"
    ((major >= 17)) || die "Kafka $KAFKA_VERSION needs java 17 or newer; found $version"
}

require_mvn() {
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found on PATH: install Apache Maven (Debian: apt-get install maven) to fetch Kafka from Maven Central"
}

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

is_installed() {
    [[ -f "$INSTALLED_MARKER" ]] && [[ "$(cat "$INSTALLED_MARKER")" == "$(pom_digest)" ]]
}

# ---------------------------------------------------------------- process state
# (running_pid, port_open and describe_port_owner: deploy/lib/local-server.sh)

java_tool() {
    local main="$1"
    shift
    java -Xmx256m -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" \
        -cp "$LIBS/*" "$main" "$@"
}

# One metadata round trip against the client listener.
broker_answers() {
    port_open "$PORT" || return 1
    if command -v kcat >/dev/null 2>&1; then
        kcat -b "$BROKERS" -L -m 5 2>/dev/null | grep -q "broker 1 at $HOST:$PORT"
    else
        java_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
            --bootstrap-server "$BROKERS" 2>/dev/null | grep -q "^$HOST:$PORT (id: 1 "
    fi
}

tail_log() {
    local file
    for file in "$SERVER_LOG" "$CONSOLE_LOG"; do
        if [[ -s "$file" ]]; then
            printf -- '--- last lines of %s ---\n' "$file" >&2
            tail -n 40 "$file" >&2
        fi
    done
}

# ---------------------------------------------------------------- commands

cmd_install() {
    require_java
    if is_installed; then
        log "Kafka $KAFKA_VERSION already installed in $KAFKA_HOME"
        return 0
    fi
    require_mvn
    log "resolving Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME"
    mkdir -p "$KAFKA_HOME"
    local staging="$KAFKA_HOME/libs.partial"
    rm -rf "$staging"
    # Maven's output is kept out of the way and shown only when it fails.
    local mvn_log="$KAFKA_HOME/mvn.log"
    if ! mvn -B --no-transfer-progress -Dstyle.color=never -f "$POM" \
        dependency:copy-dependencies \
        -DincludeScope=runtime \
        -DoutputDirectory="$staging" >"$mvn_log" 2>&1; then
        grep -E 'ERROR|BUILD' "$mvn_log" >&2 || tail -n 30 "$mvn_log" >&2
        rm -rf "$staging"
        die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is Maven Central reachable? full log: $mvn_log)"
    fi
    [[ -f "$staging/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
        die "kafka_2.13-$KAFKA_VERSION.jar missing after dependency resolution"
    rm -rf "$LIBS"
    mv "$staging" "$LIBS"
    pom_digest >"$INSTALLED_MARKER"
    log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1))"
}

write_config() {
    mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
    cp "$SCRIPT_DIR/log4j2.xml" "$CONF_DIR/log4j2.xml"
    cp "$SCRIPT_DIR/tools-log4j2.xml" "$CONF_DIR/tools-log4j2.xml"
    # Rewritten on every start so edits to this script apply; the identity
    # (node.id, cluster id) lives in $DATA_DIR/meta.properties and is kept.
    cat >"$SERVER_PROPERTIES" <<EOF
# Written by deploy/kafka/local-kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,SASL_PLAINTEXT://$HOST:$SASL_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,SASL_PLAINTEXT://$HOST:$SASL_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=$SASL_MECHANISM
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# Topics are created explicitly (footfall topics --create, or the tests), so a
# typo in a topic name fails loudly instead of creating a stray topic.
auto.create.topics.enable=false
delete.topic.enable=true

# Single node: internal topics cannot be replicated.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=$REBALANCE_DELAY_MS

log.retention.hours=168
log.segment.bytes=268435456
log.retention.check.interval.ms=300000
EOF
}

# The SCRAM user's password: made once, 0600 in a 0700 directory.
sasl_password() {
    if [[ ! -s "$SASL_PASSWORD_FILE" ]]; then
        (umask 077 && mkdir -p "$SASL_DIR" && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$SASL_PASSWORD_FILE")
    fi
    chmod 700 "$SASL_DIR"
    chmod 600 "$SASL_PASSWORD_FILE"
    cat "$SASL_PASSWORD_FILE"
}

format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi
    local cluster_id password
    cluster_id="$(java_tool kafka.tools.StorageTool random-uuid)"
    password="$(sasl_password)"
    log "formatting $DATA_DIR (cluster id $cluster_id, SCRAM user $SASL_USER)"
    java_tool kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" \
        --add-scram "$SASL_MECHANISM=[name=$SASL_USER,password=$password]" \
        --config "$SERVER_PROPERTIES" >"$LOG_DIR/format.log" 2>&1 || {
        cat "$LOG_DIR/format.log" >&2
        die "formatting the storage directory failed"
    }
    touch "$SASL_USER_MARKER"
}

# Storage formatted before the SASL listener existed gets the user through
# the running broker, once.
ensure_sasl_user() {
    [[ -f "$SASL_USER_MARKER" ]] && return 0
    local password
    password="$(sasl_password)"
    java_tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BROKERS" --alter \
        --add-config "$SASL_MECHANISM=[iterations=8192,password=$password]" \
        --entity-type users --entity-name "$SASL_USER" >"$LOG_DIR/scram-user.log" 2>&1 || {
        cat "$LOG_DIR/scram-user.log" >&2
        die "could not create the SCRAM user $SASL_USER"
    }
    touch "$SASL_USER_MARKER"
    log "created SCRAM user $SASL_USER"
}

cmd_env() {
    printf 'export FOOTFALL_KAFKA_BROKERS=%s\n' "$BROKERS"
    printf '# SASL/SCRAM listener: security_protocol = "sasl_plaintext", sasl_mechanism = "%s",\n' "$SASL_MECHANISM"
    printf '# sasl_username = "%s", sasl_password_file = "%s"\n' "$SASL_USER" "$SASL_PASSWORD_FILE"
    printf 'export FOOTFALL_KAFKA_SASL_BROKERS=%s\n' "$SASL_BROKERS"
    printf 'export FOOTFALL_KAFKA_SASL_USERNAME=%s\n' "$SASL_USER"
    printf 'export FOOTFALL_KAFKA_SASL_PASSWORD_FILE=%s\n' "$SASL_PASSWORD_FILE"
}

wait_ready() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail_log
            rm -f "$PID_FILE"
            die "the broker exited during startup (logs: $LOG_DIR)"
        fi
        if broker_answers; then
            return 0
        fi
        sleep 0.5
    done
    tail_log
    die "the broker did not answer a metadata request on $BROKERS within ${START_TIMEOUT}s (pid $pid is still running; stop it with '$0 stop')"
}

cmd_start() {
    require_java
    is_installed || cmd_install
    local pid
    if pid="$(running_pid)"; then
        wait_ready "$pid"
        ensure_sasl_user
        log "already running (pid $pid) on $BROKERS"
        return 0
    fi
    local port
    for port in "$PORT" "$SASL_PORT" "$CONTROLLER_PORT"; do
        if port_open "$port"; then
            log "port $HOST:$port is already in use by another process:"
            describe_port_owner "$port"
            die "cannot start Kafka: port $port is taken (set FOOTFALL_KAFKA_PORT / FOOTFALL_KAFKA_SASL_PORT / FOOTFALL_KAFKA_CONTROLLER_PORT to use others)"
        fi
    done
    write_config
    format_storage

    local started=$SECONDS
    log "starting Kafka $KAFKA_VERSION on $BROKERS (state: $STATE)"
    # setsid: the broker gets its own session, so a Ctrl-C in the calling shell
    # does not reach it; `stop` is the way to end it.
    # shellcheck disable=SC2086  # HEAP holds several JVM flags
    setsid java $HEAP \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j2.configurationFile="$CONF_DIR/log4j2.xml" \
        -cp "$LIBS/*" kafka.Kafka "$SERVER_PROPERTIES" \
        </dev/null >>"$CONSOLE_LOG" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    wait_ready "$pid"
    ensure_sasl_user
    log "ready after $((SECONDS - started))s: pid $pid, brokers $BROKERS (SASL/SCRAM: $SASL_BROKERS)"
}

cmd_status() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "not running (state: $STATE)"
        return 3
    fi
    if broker_answers; then
        echo "running: pid $pid, Kafka $KAFKA_VERSION, brokers $BROKERS, state $STATE"
        return 0
    fi
    echo "process $pid is running but $BROKERS does not answer (logs: $LOG_DIR)"
    return 1
}

cmd_reset() {
    if running_pid >/dev/null; then
        die "the broker is running: run '$0 stop' first"
    fi
    [[ -d "$STATE" ]] || {
        log "nothing to reset: $STATE does not exist"
        return 0
    }
    rm -rf -- "$CONF_DIR" "$DATA_DIR" "$LOG_DIR" "$SASL_DIR" "$PID_FILE"
    rmdir -- "$STATE" 2>/dev/null || true
    log "removed broker state in $STATE"
}

main() {
    [[ -n "$KAFKA_VERSION" ]] || die "cannot read kafka.version from $POM"
    dispatch "$@"
}

main "$@"
