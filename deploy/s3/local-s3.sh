#!/usr/bin/env bash
# Single-node S3-compatible object store (MinIO, one local directory) for
# development, tests and CI. See deploy/s3/README.md for why MinIO and what it
# does and does not do.
#
#   deploy/s3/local-s3.sh install   build the pinned MinIO server from the Go module proxy (cached)
#   deploy/s3/local-s3.sh start     start the server, wait until ready, create the bucket
#   deploy/s3/local-s3.sh stop      clean shutdown (SIGTERM, then SIGKILL after a timeout)
#   deploy/s3/local-s3.sh status    exit 0 when running and answering, 1 when running but
#                                   not answering, 3 when not running
#   deploy/s3/local-s3.sh logs [-f] last lines of the server log (or follow it)
#   deploy/s3/local-s3.sh env       print `export AWS_ACCESS_KEY_ID=... AWS_ENDPOINT_URL=... FOOTFALL_S3_BUCKET=...`
#   deploy/s3/local-s3.sh reset     delete the state dir (objects, logs); server must be stopped
#
# Every command is safe to repeat: `install` and `start` are no-ops when already
# done, `stop` on a stopped server is fine, and `start` after `stop` keeps all
# objects. `start` creates the bucket when it does not exist yet.
#
# Environment (defaults in brackets):
#   FOOTFALL_S3_HOME           the built server  [$HOME/.cache/footfall/minio-<version>]
#   FOOTFALL_S3_STATE          data, logs, pid   [$HOME/.local/state/footfall/s3]
#   FOOTFALL_S3_PORT           S3 API port on 127.0.0.1 [9000]
#   FOOTFALL_S3_BUCKET         bucket made on start [footfall]
#   FOOTFALL_S3_START_TIMEOUT  seconds to wait for readiness [60]
#   FOOTFALL_S3_STOP_TIMEOUT   seconds to wait after SIGTERM  [30]
#
# The credentials are fixed test values (they guard nothing: the server
# listens on loopback only and holds test data); `env` prints them.
#
# Requires curl (7.75 or newer, for --aws-sigv4) and, for `install`, Go 1.24 or
# newer (`go` on PATH or /usr/local/go/bin/go). The build takes about 3.5
# minutes on 2 cores with empty Go caches; its module and build caches are
# temporary and removed afterwards, only the binary (about 150 MB) is kept.
set -euo pipefail

# The Go module proxy serves MinIO only as pseudo-versions (its release tags
# are not semver); this is the last commit it has, 2026-02-12.
readonly MINIO_MODULE=github.com/minio/minio
readonly MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
readonly HOST=127.0.0.1
readonly PORT="${FOOTFALL_S3_PORT:-9000}"
readonly BUCKET="${FOOTFALL_S3_BUCKET:-footfall}"
readonly ACCESS_KEY=footfall-test
readonly SECRET_KEY=footfall-test-secret
readonly REGION=us-east-1
readonly S3_HOME="${FOOTFALL_S3_HOME:-$HOME/.cache/footfall/minio-${MINIO_VERSION#v0.0.0-}}"
readonly STATE="${FOOTFALL_S3_STATE:-$HOME/.local/state/footfall/s3}"
readonly START_TIMEOUT="${FOOTFALL_S3_START_TIMEOUT:-60}"
readonly STOP_TIMEOUT="${FOOTFALL_S3_STOP_TIMEOUT:-30}"

readonly BIN="$S3_HOME/bin/minio"
readonly INSTALLED_MARKER="$S3_HOME/installed"
readonly DATA_DIR="$STATE/data"
readonly CERTS_DIR="$STATE/certs"
readonly LOG_DIR="$STATE/logs"
readonly PID_FILE="$STATE/minio.pid"
readonly SERVER_LOG="$LOG_DIR/server.log"
readonly ENDPOINT="http://$HOST:$PORT"

readonly SERVER_NAME=local-s3
readonly SERVER_MATCH='minio server'
# shellcheck source=deploy/lib/local-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/local-server.sh"

# ---------------------------------------------------------------- prerequisites

find_go() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    else
        return 1
    fi
}

require_go() {
    local go version minor
    go="$(find_go)" || die "go not found on PATH nor in /usr/local/go/bin: install Go 1.24 or newer to build MinIO"
    version="$("$go" env GOVERSION)"
    [[ "$version" =~ ^go1\.([0-9]+) ]] || die "cannot read the Go version from '$go env GOVERSION' ($version)"
    minor="${BASH_REMATCH[1]}"
    ((minor >= 24)) || die "MinIO $MINIO_VERSION needs Go 1.24 or newer; found $version"
    printf '%s\n' "$go"
}

require_curl() {
    command -v curl >/dev/null 2>&1 || die "curl not found on PATH (Debian: apt-get install curl)"
    curl --help all 2>/dev/null | grep -q -- '--aws-sigv4' ||
        die "this curl has no --aws-sigv4 (needs curl 7.75 or newer): $(curl --version | head -n1)"
}

is_installed() {
    [[ -x "$BIN" && -f "$INSTALLED_MARKER" ]] &&
        [[ "$(cat "$INSTALLED_MARKER")" == "$MINIO_MODULE@$MINIO_VERSION" ]]
}

# ---------------------------------------------------------------- process state
# (running_pid, port_open and describe_port_owner: deploy/lib/local-server.sh)

# MinIO's unauthenticated readiness probe: 200 once it serves requests.
server_ready() {
    [[ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$ENDPOINT/minio/health/ready")" == 200 ]]
}

# The bucket answers a signed HEAD with 200, which also proves the credentials.
bucket_answers() {
    [[ "$(s3_request HEAD "/$BUCKET")" == 200 ]]
}

# One SigV4-signed request; prints the HTTP status (000 when unreachable).
s3_request() {
    local method="$1" path="$2"
    # The body is always empty; some servers require its SHA-256 as a header.
    local args=(-s -o /dev/null -m 10 -w '%{http_code}' --aws-sigv4 "aws:amz:$REGION:s3"
        -u "$ACCESS_KEY:$SECRET_KEY"
        -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    if [[ "$method" == HEAD ]]; then args+=(-I); else args+=(-X "$method"); fi
    curl "${args[@]}" "$ENDPOINT$path" || true
}

tail_log() {
    if [[ -s "$SERVER_LOG" ]]; then
        printf -- '--- last lines of %s ---\n' "$SERVER_LOG" >&2
        tail -n 40 "$SERVER_LOG" >&2
    fi
}

# ---------------------------------------------------------------- commands

cmd_install() {
    if is_installed; then
        log "MinIO $MINIO_VERSION already installed in $S3_HOME"
        return 0
    fi
    local go
    go="$(require_go)"
    log "building $MINIO_MODULE@$MINIO_VERSION with $("$go" env GOVERSION) into $S3_HOME (a few minutes)"
    mkdir -p "$S3_HOME"
    # Private module and build caches, writable so that they can be removed.
    local build="$S3_HOME/build.partial" started=$SECONDS
    rm -rf "$build"
    mkdir -p "$build"
    local build_log="$S3_HOME/build.log"
    # CGO_ENABLED=0: a static binary, as MinIO's own releases are.
    # GOTOOLCHAIN=local: build with this Go, never fetch another toolchain.
    if ! env GOBIN="$build/bin" GOMODCACHE="$build/mod" GOCACHE="$build/cache" GOPATH="$build/gopath" \
        GOFLAGS="-modcacherw -buildvcs=false -trimpath" CGO_ENABLED=0 GOTOOLCHAIN=local \
        "$go" install "$MINIO_MODULE@$MINIO_VERSION" >"$build_log" 2>&1; then
        grep -v '^go: downloading' "$build_log" | tail -n 30 >&2
        rm -rf "$build"
        die "go install $MINIO_MODULE@$MINIO_VERSION failed (is the Go module proxy reachable? full log: $build_log)"
    fi
    [[ -x "$build/bin/minio" ]] || die "go install succeeded but left no $build/bin/minio"
    mkdir -p "$S3_HOME/bin"
    mv -f "$build/bin/minio" "$BIN"
    rm -rf "$build"
    printf '%s\n' "$MINIO_MODULE@$MINIO_VERSION" >"$INSTALLED_MARKER"
    log "installed $BIN ($(du -sh "$BIN" | cut -f1)) in $((SECONDS - started))s"
}

cmd_env() {
    printf 'export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_ENDPOINT_URL=%s AWS_REGION=%s AWS_ALLOW_HTTP=true FOOTFALL_S3_BUCKET=%s\n' \
        "$ACCESS_KEY" "$SECRET_KEY" "$ENDPOINT" "$REGION" "$BUCKET"
}

wait_ready() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail_log
            rm -f "$PID_FILE"
            die "the server exited during startup (log: $SERVER_LOG)"
        fi
        if server_ready; then
            return 0
        fi
        sleep 0.3
    done
    tail_log
    die "the server did not answer $ENDPOINT/minio/health/ready within ${START_TIMEOUT}s (pid $pid is still running; stop it with '$0 stop')"
}

ensure_bucket() {
    local status
    status="$(s3_request HEAD "/$BUCKET")"
    case "$status" in
    200) return 0 ;;
    404)
        status="$(s3_request PUT "/$BUCKET")"
        # 409: made meanwhile by someone else, which is just as good.
        [[ "$status" == 200 || "$status" == 409 ]] ||
            die "creating bucket $BUCKET failed with HTTP $status (log: $SERVER_LOG)"
        log "created bucket $BUCKET"
        ;;
    403) die "the server at $ENDPOINT refused this script's credentials (HTTP 403): is another S3 server on port $PORT? (log: $SERVER_LOG)" ;;
    *) die "checking bucket $BUCKET failed with HTTP $status (log: $SERVER_LOG)" ;;
    esac
}

cmd_start() {
    require_curl
    is_installed || cmd_install
    local pid
    if pid="$(running_pid)"; then
        wait_ready "$pid"
        ensure_bucket
        log "already running (pid $pid) on $ENDPOINT"
        return 0
    fi
    if port_open "$PORT"; then
        log "port $HOST:$PORT is already in use by another process:"
        describe_port_owner "$PORT"
        die "cannot start MinIO: port $PORT is taken (set FOOTFALL_S3_PORT to use another)"
    fi
    mkdir -p "$DATA_DIR" "$LOG_DIR" "$CERTS_DIR" || die "cannot create the state directories under $STATE"

    local started=$SECONDS
    log "starting MinIO on $ENDPOINT (state: $STATE)"
    # setsid: the server gets its own session, so a Ctrl-C in the calling
    # shell does not reach it; `stop` is the way to end it. MINIO_BROWSER=off:
    # no web console (and no console port); --certs-dir keeps MinIO from
    # making ~/.minio; MINIO_UPDATE=off: no update checks.
    MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" \
        MINIO_BROWSER=off MINIO_UPDATE=off MINIO_SITE_REGION="$REGION" \
        setsid "$BIN" server --quiet --address "$HOST:$PORT" --certs-dir "$CERTS_DIR" "$DATA_DIR" \
        </dev/null >>"$SERVER_LOG" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    wait_ready "$pid"
    ensure_bucket
    log "ready after $((SECONDS - started))s: pid $pid, endpoint $ENDPOINT, bucket $BUCKET"
}

cmd_status() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "not running (state: $STATE)"
        return 3
    fi
    if server_ready && bucket_answers; then
        echo "running: pid $pid, MinIO $MINIO_VERSION, endpoint $ENDPOINT, bucket $BUCKET, state $STATE"
        return 0
    fi
    echo "process $pid is running but $ENDPOINT does not answer, or has no bucket $BUCKET (log: $SERVER_LOG)"
    return 1
}

cmd_reset() {
    if running_pid >/dev/null; then
        die "the server is running: run '$0 stop' first"
    fi
    [[ -d "$STATE" ]] || {
        log "nothing to reset: $STATE does not exist"
        return 0
    }
    rm -rf -- "$DATA_DIR" "$CERTS_DIR" "$LOG_DIR" "$PID_FILE"
    rmdir -- "$STATE" 2>/dev/null || true
    log "removed server state in $STATE"
}

main() {
    if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
        die "FOOTFALL_S3_PORT must be a port number, not '$PORT'"
    fi
    # S3 bucket naming rules: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit.
    [[ "$BUCKET" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] ||
        die "FOOTFALL_S3_BUCKET '$BUCKET' is not a valid bucket name (3-63 characters of a-z, 0-9, '.', '-')"
    dispatch "$@"
}

main "$@"
