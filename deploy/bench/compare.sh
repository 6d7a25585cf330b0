#!/usr/bin/env bash
# footfall against its peers, on the same input, in one run:
#
#   1. `footfall parse` (1 and 2 threads)  vs  `goaccess --log-format=COMBINED -o out.json`
#   2. `footfall ingest` (stdin → Kafka)   vs  `kcat -P` producing the raw lines, same broker
#   3. `footfall aggregate` of the ingested events (events/s, peak RSS)
#   4. summary recompute of one day         vs  DuckDB running the equivalent SQL over the events table
#
# Usage: bash deploy/bench/compare.sh [--lines N] [--runs R] [--write-docs]
# Needs: a release build (built here), goaccess, kcat, python3 with duckdb, and a
# Kafka broker at $FOOTFALL_KAFKA_BROKERS (default 127.0.0.1:9092; started with
# deploy/kafka/local-kafka.sh when not running). Reports medians of R runs and ratios.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
LINES=1000000
RUNS=3
WRITE_DOCS=0
while (($#)); do
    case "$1" in
    --lines) LINES="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    *) echo "usage: $0 [--lines N] [--runs R] [--write-docs]" >&2; exit 2 ;;
    esac
done
BROKERS="${FOOTFALL_KAFKA_BROKERS:-127.0.0.1:9092}"
WORK="$(mktemp -d /tmp/footfall-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
FF="$ROOT/target/release/footfall"

say() { printf '\n== %s\n' "$*" >&2; }

for tool in goaccess kcat python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "compare.sh: $tool is required" >&2; exit 69; }
done
python3 -c 'import duckdb' 2>/dev/null || { echo "compare.sh: python3 -m pip install duckdb" >&2; exit 69; }
bash deploy/kafka/local-kafka.sh status >/dev/null 2>&1 || bash deploy/kafka/local-kafka.sh start

say "building footfall (release)"
cargo build --release -p footfall -q

say "generating $LINES lines"
python3 deploy/bench/genlog.py --lines "$LINES" > "$WORK/access.log"
"$FF" keys --keyring "$WORK/keyring" init
BYTES=$(stat -c %s "$WORK/access.log")

# run NAME CMD...: RUNS times; prints "seconds peak_kb" of the median run.
measure() {
    local name="$1"; shift
    local out="$WORK/times.$name"
    : > "$out"
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f '%e %M' -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err.$name" || { cat "$WORK/err.$name" >&2; return 1; }
        cat "$WORK/t" >> "$out"
    done
    sort -n "$out" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { print $1, $2 }'
}

# once NAME CMD...: one run, its "seconds peak_kb" appended to times.NAME.
once() {
    local name="$1"; shift
    /usr/bin/time -f '%e %M' -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err.$name" || { cat "$WORK/err.$name" >&2; return 1; }
    cat "$WORK/t" >> "$WORK/times.$name"
}
# median NAME: "seconds peak_kb" of the median run in times.NAME.
median() {
    sort -n "$WORK/times.$1" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { print $1, $2 }'
}

say "parse: goaccess vs footfall (interleaved rounds)"
# GoAccess and footfall run back to back in each round, so each pair shares
# the machine's state of the moment (it drifts on a shared host).
: > "$WORK/times.goaccess"; : > "$WORK/times.parse1"; : > "$WORK/times.parse2"
for _ in $(seq "$RUNS"); do
    once goaccess goaccess "$WORK/access.log" --log-format=COMBINED --no-global-config -o "$WORK/ga.json"
    once parse1 "$FF" parse --format combined --keyring "$WORK/keyring" -j 1 -o /dev/null "$WORK/access.log"
    once parse2 "$FF" parse --format combined --keyring "$WORK/keyring" -j 2 -o /dev/null "$WORK/access.log"
done
read -r GA_S GA_KB < <(median goaccess)
read -r FF1_S FF1_KB < <(median parse1)
read -r FF2_S FF2_KB < <(median parse2)
# Median over rounds of each round's GoAccess/footfall ratio.
read -r PAIR1 PAIR2 < <(paste -d' ' "$WORK/times.goaccess" "$WORK/times.parse1" "$WORK/times.parse2" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin]
print(statistics.median(r[0] / r[2] for r in rows), statistics.median(r[0] / r[4] for r in rows))')

say "ingest: kcat -P vs footfall ingest (same broker, fresh topics)"
RUN_ID="$$-$(date +%s)"
"$FF" topics --brokers "$BROKERS" --topic "bench.kcat.$RUN_ID" --dlq-topic "bench.kcat.$RUN_ID.dlq" > /dev/null
read -r KC_S KC_KB < <(measure kcat kcat -b "$BROKERS" -P -t "bench.kcat.$RUN_ID" -z lz4 -X linger.ms=20 -l "$WORK/access.log")
ING_TOPIC="bench.ingest.$RUN_ID"
"$FF" topics --brokers "$BROKERS" --topic "$ING_TOPIC" --dlq-topic "$ING_TOPIC.dlq" > /dev/null
ingest_once() {
    FOOTFALL_KEYRING="$WORK/keyring" "$FF" ingest --brokers "$BROKERS" --topic "$ING_TOPIC" --dlq-topic "$ING_TOPIC.dlq" \
        --format combined --state-dir "$WORK/state" --http-listen off - < "$WORK/access.log"
}
export -f ingest_once
export FF BROKERS ING_TOPIC WORK
read -r ING_S ING_KB < <(RUNS=1 measure ingest bash -c ingest_once)

say "aggregate: $LINES events from the broker"
read -r AGG_S AGG_KB < <(RUNS=1 measure aggregate "$FF" aggregate --brokers "$BROKERS" --topic "$ING_TOPIC" --group "bench-$RUN_ID" --warehouse "$WORK/wh")

say "summary recompute of one day: footfall vs DuckDB"
DAY=$(ls "$WORK/wh/events" | head -1 | sed 's/date=//')
read -r RC_S RC_KB < <(measure recompute "$FF" aggregate --recompute "$DAY" --warehouse "$WORK/wh")
read -r DK_S DK_KB < <(measure duckdb python3 deploy/bench/duckdb_summaries.py "$WORK/wh" "$DAY")

python3 - "$LINES" "$BYTES" "$RUNS" "$GA_S" "$GA_KB" "$FF1_S" "$FF1_KB" "$FF2_S" "$FF2_KB" "$KC_S" "$KC_KB" "$ING_S" "$ING_KB" "$AGG_S" "$AGG_KB" "$RC_S" "$RC_KB" "$DK_S" "$DK_KB" "$DAY" "$PAIR1" "$PAIR2" > "$WORK/table.md" <<'EOF'
import sys
a = sys.argv[1:]
lines, nbytes, runs = int(a[0]), int(a[1]), int(a[2])
f = lambda i: float(a[i])
rows = [
    ("goaccess --log-format=COMBINED -o out.json", f(3), f(4), lines),
    ("footfall parse -j 1 (enrich + JSON)", f(5), f(6), lines),
    ("footfall parse -j 2", f(7), f(8), lines),
    ("kcat -P (raw lines, lz4)", f(9), f(10), lines),
    ("footfall ingest (stdin → Kafka, acked)", f(11), f(12), lines),
    ("footfall aggregate (Kafka → Parquet)", f(13), f(14), lines),
    (f"footfall summary recompute, {a[19]}", f(15), f(16), None),
    (f"DuckDB equivalent SQL, {a[19]}", f(17), f(18), None),
]
print(f"Input: {lines:,} generated combined-format lines ({nbytes / 1e6:.0f} MB), median of {runs} runs (ingest/aggregate: 1 run).\n")
print("| tool | seconds | lines/s | peak RSS MB |")
print("|---|---:|---:|---:|")
for name, s, kb, n in rows:
    rate = f"{n / s:,.0f}" if n else "—"
    print(f"| {name} | {s:.2f} | {rate} | {kb / 1024:.0f} |")
print()
print(f"* parse, 1 thread vs GoAccess: **{f(3) / f(5):.1f}×**; 2 threads: **{f(3) / f(7):.1f}×** (ratio of medians); median of the per-round ratios (GoAccess and footfall back to back in each of the {runs} rounds): **{f(20):.1f}×** and **{f(21):.1f}×**")
print(f"* ingest vs kcat -P: **{f(9) / f(11):.2f}×** kcat's rate")
print(f"* summary recompute vs DuckDB: **{f(17) / f(15):.2f}×** DuckDB's speed (>1 is faster)")
EOF
cat "$WORK/table.md"
if ((WRITE_DOCS)); then
    python3 - "$ROOT/docs/benchmarks.md" "$WORK/table.md" "$(date -u +%Y-%m-%d)" "$(nproc)" <<'EOF'
import sys, re
doc, table, day, cores = sys.argv[1:]
text = open(doc).read()
block = f"<!-- compare.sh begin -->\nMeasured {day} on {cores} cores with `bash deploy/bench/compare.sh --write-docs`:\n\n" + open(table).read() + "<!-- compare.sh end -->"
text = re.sub(r"<!-- compare.sh begin -->.*<!-- compare.sh end -->", lambda _: block, text, flags=re.S)
open(doc, "w").write(text)
EOF
    echo "docs/benchmarks.md updated" >&2
fi
