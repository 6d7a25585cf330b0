# shellcheck shell=bash
# What the aggregate benchmarks share: the broker, the release build, timing, a work
# directory with a keyring, topics filled with generated lines, and the
# progress of a series of runs. Sourced,
# after `set -euo pipefail`, by aggregate.sh, incremental.sh and class_changes.sh.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B="${FOOTFALL_KAFKA_BROKERS:-127.0.0.1:9092}"
FF=target/release/footfall

# bench_init NAME: the release build, and a work directory $W (removed on
# exit) holding a new keyring.
bench_init() {
    W="$(mktemp -d "/tmp/footfall-$1.XXXXXX")"
    trap 'rm -rf "$W"' EXIT
    cargo build --release -p footfall -q
    "$FF" keys --keyring "$W/keyring" init 2>/dev/null
}

say() { printf '\n== %s\n' "$*" >&2; }

# timed CMD...: "SECONDS PEAK_KB" of the command (/usr/bin/time); its
# stdout and stderr in $W/out and $W/err, shown and fatal if it fails.
timed() { /usr/bin/time -f "%e %M" -o "$W/time" "$@" >"$W/out" 2>"$W/err" || { cat "$W/err" >&2; exit 1; }; cat "$W/time"; }

# fill TOPIC N DAYS: N generated combined lines (150,000 visitors over DAYS
# days) ingested into TOPIC (made here, with TOPIC.dlq); ingest's summary
# line on stderr.
fill() {
    python3 deploy/bench/genlog.py --lines "$2" --visitors 150000 --days "$3" > "$W/access.log"
    "$FF" topics --brokers "$B" --topic "$1" --dlq-topic "$1.dlq" > /dev/null 2>&1
    FOOTFALL_KEYRING="$W/keyring" "$FF" ingest --brokers "$B" --topic "$1" --dlq-topic "$1.dlq" \
        --format combined --state-dir "$W/state.$1" --http-listen off - < "$W/access.log" 2>&1 | tail -1 >&2
    rm -rf "$W/access.log" "$W/state.$1"
}

# run_progress I RUNS TEXT: "run I/RUNS: TEXT" on stderr, rewritten in place
# on a terminal, else a line every 12th run; run_progress_done ends it.
run_progress() {
    if [[ -t 2 ]]; then
        printf '\r  run %d/%d: %s' "$1" "$2" "$3" >&2
    elif (($1 % 12 == 0)); then
        printf '  run %d/%d: %s\n' "$1" "$2" "$3" >&2
    fi
}
run_progress_done() { if [[ -t 2 ]]; then echo >&2; fi; }
