#!/usr/bin/env bash
# footfall's full test run: the command the README and CI use.
#
#   bash deploy/test.sh
#
# 1. installs what the tests need when it is missing (as root on Debian:
#    goaccess, kcat, a JRE, Maven and curl through apt; duckdb, pyarrow,
#    pytest, blake3 and botocore through pip),
# 2. starts a local Kafka broker with deploy/kafka/local-kafka.sh and a local
#    S3-compatible server with deploy/s3/local-s3.sh (MinIO, built from the Go
#    module proxy on first use; needs Go 1.24+), and stops them on exit,
#    whatever happens, if this script started them,
# 3. runs `cargo test --workspace --all-targets --no-fail-fast` and the doc tests with
#    FOOTFALL_KAFKA_BROKERS (and the SASL listener's FOOTFALL_KAFKA_SASL_*)
#    set and FOOTFALL_REQUIRE_KAFKA=1, so broker tests run and fail rather
#    than skip when the broker is missing,
# 4. runs the broker restart test and the ingest broker outage test on their
#    own (they stop and start the broker, so nothing else may use the broker
#    meanwhile),
# 5. runs `python3 -m pytest -q tests/python` when that directory has tests,
# 6. and checks style first: `cargo fmt --check`, `cargo clippy -D warnings`,
#    then sizes with `python3 deploy/lint/sizes.py` (no source file over 1000
#    lines, no function outside tests over 150).
#
# Every step runs even if an earlier one failed; the exit status is non-zero
# if any step failed. With CI=true the broker gets fresh storage in a
# temporary directory (unless FOOTFALL_KAFKA_STATE is set). Environment: FOOTFALL_KAFKA_PORT, FOOTFALL_KAFKA_STATE
# and FOOTFALL_KAFKA_HOME are passed on to local-kafka.sh; FOOTFALL_S3_PORT,
# FOOTFALL_S3_STATE and FOOTFALL_S3_HOME to local-s3.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
cd "$ROOT"

readonly KAFKA_SCRIPT="$ROOT/deploy/kafka/local-kafka.sh"
readonly S3_SCRIPT="$ROOT/deploy/s3/local-s3.sh"
readonly SCRIPT_START=$SECONDS
PASSED=()
FAILED=()
KAFKA_STARTED_HERE=0
KAFKA_STATE_TMP=""
S3_STARTED_HERE=0
S3_STATE_TMP=""

section() {
    printf '\n==== %s ====\n' "$*"
}

die() {
    printf 'deploy/test.sh: error: %s\n' "$*" >&2
    exit 1
}

# Runs one step, recording its outcome under the given name.
step() {
    local name="$1"
    shift
    section "$name"
    local started=$SECONDS status=0
    "$@" || status=$?
    if ((status == 0)); then
        PASSED+=("$name")
        printf -- '---- %s: ok (%ss)\n' "$name" "$((SECONDS - started))"
    else
        FAILED+=("$name")
        printf -- '---- %s: FAILED with exit status %s (%ss)\n' "$name" "$status" "$((SECONDS - started))"
    fi
}

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

install_system_packages() {
    local missing=()
    command -v goaccess >/dev/null 2>&1 || missing+=(goaccess)
    command -v kcat >/dev/null 2>&1 || missing+=(kcat)
    command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if ((${#missing[@]} == 0)); then
        echo "system packages: goaccess, kcat, java, mvn and curl already installed"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get to install them with: install them by hand"
    echo "installing with apt-get: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_python_packages() {
    command -v python3 >/dev/null 2>&1 || die "python3 not found"
    if python3 -c 'import duckdb, pyarrow, pytest, blake3, botocore' 2>/dev/null; then
        echo "python packages: duckdb, pyarrow, pytest, blake3 and botocore already installed"
        return 0
    fi
    local flags=(--quiet --disable-pip-version-check)
    # Debian's own python3 refuses pip installs outside a venv (PEP 668).
    if python3 - <<'EOF'
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)
EOF
    then
        flags+=(--break-system-packages)
    fi
    echo "installing with pip: duckdb pyarrow pytest blake3 botocore"
    python3 -m pip install "${flags[@]}" duckdb pyarrow pytest blake3 botocore
}

stop_kafka() {
    if ((KAFKA_STARTED_HERE)); then
        section "stopping Kafka"
        bash "$KAFKA_SCRIPT" stop || true
    fi
}

start_kafka() {
    bash "$KAFKA_SCRIPT" install
    if bash "$KAFKA_SCRIPT" status >/dev/null 2>&1; then
        echo "using the Kafka broker that is already running (left running afterwards)"
        bash "$KAFKA_SCRIPT" status
        return 0
    fi
    # In CI a broker started here gets fresh storage, so every run formats it
    # from scratch and no data from earlier runs on the machine can leak in.
    if [[ "${CI:-}" == "true" && -z "${FOOTFALL_KAFKA_STATE:-}" ]]; then
        KAFKA_STATE_TMP="$(mktemp -d -t footfall-kafka-ci.XXXXXX)"
        export FOOTFALL_KAFKA_STATE="$KAFKA_STATE_TMP"
        echo "CI: broker state in $FOOTFALL_KAFKA_STATE (removed on exit)"
    fi
    # Set before starting, so a start that fails half-way is still cleaned up.
    KAFKA_STARTED_HERE=1
    bash "$KAFKA_SCRIPT" start
}

# Style: rustfmt's layout and no clippy warning, on every target.
style() {
    local status=0
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        rustup component add rustfmt clippy
    fi
    cargo fmt --all -- --check || status=$?
    cargo clippy --workspace --all-targets -- -D warnings || status=$?
    return "$status"
}

# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo_tests() {
    cargo test --workspace --all-targets --no-fail-fast
}

cargo_doc_tests() {
    cargo test --workspace --doc --no-fail-fast
}

# Tests that stop and start the broker through FOOTFALL_KAFKA_SCRIPT. Both
# run even if the first fails.
restart_test() {
    local status=0
    # --workspace (not -p): the same feature set as the step above, so the
    # test binaries are reused instead of rebuilding librdkafka and tokio.
    FOOTFALL_KAFKA_SCRIPT="$KAFKA_SCRIPT" cargo test --workspace --test restart || status=$?
    FOOTFALL_KAFKA_SCRIPT="$KAFKA_SCRIPT" cargo test --workspace --test broker_outage -- --nocapture || status=$?
    return "$status"
}

python_tests() {
    if [[ ! -d tests/python ]] ||
        [[ -z "$(find tests/python -name 'test_*.py' -o -name '*_test.py' | head -n1)" ]]; then
        echo "tests/python has no tests: nothing to run"
        return 0
    fi
    local status=0
    python3 -m pytest -q tests/python || status=$?
    # 5: no tests were collected. Not a failure for this step.
    if ((status == 5)); then
        echo "pytest collected no tests"
        return 0
    fi
    return "$status"
}

stop_s3() {
    if ((S3_STARTED_HERE)); then
        section "stopping the S3 server"
        bash "$S3_SCRIPT" stop || true
    fi
}

# The S3-compatible server (MinIO, built once from the Go module proxy into
# ~/.cache/footfall) that the object-store tests use.
start_s3() {
    bash "$S3_SCRIPT" install
    if bash "$S3_SCRIPT" status >/dev/null 2>&1; then
        echo "using the S3 server that is already running (left running afterwards)"
        bash "$S3_SCRIPT" status
        return 0
    fi
    if [[ "${CI:-}" == "true" && -z "${FOOTFALL_S3_STATE:-}" ]]; then
        S3_STATE_TMP="$(mktemp -d -t footfall-s3-ci.XXXXXX)"
        export FOOTFALL_S3_STATE="$S3_STATE_TMP"
    fi
    S3_STARTED_HERE=1
    bash "$S3_SCRIPT" start
}

on_exit() {
    local status=$?
    stop_kafka
    if [[ -n "$KAFKA_STATE_TMP" ]]; then
        rm -rf -- "$KAFKA_STATE_TMP"
    fi
    stop_s3
    if [[ -n "$S3_STATE_TMP" ]]; then
        rm -rf -- "$S3_STATE_TMP"
    fi
    exit "$status"
}

main() {
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    if [[ "${CI:-}" == "true" ]]; then
        export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
        export CARGO_TERM_PROGRESS_WHEN="${CARGO_TERM_PROGRESS_WHEN:-never}"
        # A one-off build gains nothing from incremental state, which would
        # double the target directory's size.
        export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
    fi
    export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup"

    section "prerequisites"
    install_system_packages
    install_python_packages

    section "Kafka"
    start_kafka
    # FOOTFALL_KAFKA_BROKERS, and the SASL/SCRAM listener's address, user and
    # password file (FOOTFALL_KAFKA_SASL_*) for the secured-broker tests.
    eval "$(bash "$KAFKA_SCRIPT" env)"
    export FOOTFALL_REQUIRE_KAFKA=1
    echo "FOOTFALL_KAFKA_BROKERS=$FOOTFALL_KAFKA_BROKERS FOOTFALL_KAFKA_SASL_BROKERS=$FOOTFALL_KAFKA_SASL_BROKERS FOOTFALL_REQUIRE_KAFKA=1"

    section "S3 server"
    start_s3
    eval "$(bash "$S3_SCRIPT" env)"
    export FOOTFALL_REQUIRE_S3=1

    step "cargo fmt --check and clippy -D warnings" style
    step "sizes" python3 deploy/lint/sizes.py
    step "cargo test --workspace --all-targets" cargo_tests
    step "cargo test --workspace --doc" cargo_doc_tests
    step "broker restart and outage tests" restart_test
    step "python tests" python_tests

    local elapsed=$((SECONDS - SCRIPT_START))
    section "summary"
    local name
    for name in "${PASSED[@]}"; do echo "ok      $name"; done
    for name in "${FAILED[@]+"${FAILED[@]}"}"; do echo "FAILED  $name"; done
    if ((${#FAILED[@]} > 0)); then
        echo "deploy/test.sh: FAILED (${#FAILED[@]} of $((${#PASSED[@]} + ${#FAILED[@]})) steps) after ${elapsed}s"
        exit 1
    fi
    echo "deploy/test.sh: all ${#PASSED[@]} steps succeeded in ${elapsed}s"
}

main "$@"
