# shellcheck shell=bash
# What deploy/kafka/local-kafka.sh and deploy/s3/local-s3.sh share: messages,
# usage, the pid file and the port checks, `stop` and `logs`, and the command
# dispatch. Sourced by them after they set:
#   SERVER_NAME      prefix of every message (local-kafka, local-s3)
#   SERVER_MATCH     grep pattern of the server's command line in /proc
#   HOST             the address the server listens on
#   PID_FILE         where `start` writes the server's pid
#   SERVER_LOG       the server's log, for `logs`
#   STOP_TIMEOUT     seconds `stop` waits after SIGTERM before SIGKILL

log() { printf '%s: %s\n' "$SERVER_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SERVER_NAME" "$*" >&2
    exit 1
}

# The calling script's header comment, up to its `set -euo pipefail`.
usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

# Prints the server's pid when the pid file names a live process whose command
# line matches SERVER_MATCH.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$SERVER_MATCH" || return 1
    printf '%s\n' "$pid"
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

describe_port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' >&2 || true
    fi
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid $pid (SIGTERM, up to ${STOP_TIMEOUT}s)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still running after ${STOP_TIMEOUT}s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_logs() {
    [[ -f "$SERVER_LOG" ]] || die "no log yet at $SERVER_LOG"
    if [[ "${1:-}" == "-f" ]]; then
        exec tail -n 100 -F "$SERVER_LOG"
    fi
    tail -n "${1:-100}" "$SERVER_LOG"
}

# dispatch COMMAND [ARGS...]: runs the calling script's cmd_install, cmd_start,
# cmd_status, cmd_env and cmd_reset, or the shared cmd_stop and cmd_logs
# (given ARGS); usage for help, and usage on stderr with exit 2 otherwise.
dispatch() {
    local command="${1:-}"
    shift || true
    case "$command" in
    install | start | stop | status | env | reset) "cmd_$command" ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}
