#!/usr/bin/env bash
# The incremental-run benchmark: what a day costs when cron aggregates it as
# it arrives, against one run over the whole day.
#
#   1. N generated combined lines (150,000 visitors, one day) ingested into
#      the local broker;
#   2. one `footfall aggregate` run of all of them (group A, warehouse A):
#      seconds;
#   3. RUNS runs of `footfall aggregate --max-events ceil(N/RUNS)` (group B,
#      warehouse B), each reading the next 1/RUNS of every partition, as
#      runs every 15 minutes (RUNS=96) would: their seconds summed, and the
#      last run's;
#   4. the two warehouses compared: every summary file byte for byte, and the
#      events tables row for row (DuckDB).
#
#   bash deploy/bench/incremental.sh [N] [RUNS]     # default: 5000000 96
#
# Needs a release build (built here), python3 with duckdb, and a broker at
# $FOOTFALL_KAFKA_BROKERS (default 127.0.0.1:9092).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N="${1:-5000000}"
RUNS="${2:-96}"
bench_init incbench
T="bench.incremental.$$.$(date +%s)"

AGG=("$FF" aggregate --brokers "$B" --topic "$T")

say "$N events over one day: generating and ingesting"
fill "$T" "$N" 1

say "one run over the whole day"
ONE="$(timed "${AGG[@]}" --group "$T.one" --warehouse "$W/one")"
ONE="${ONE%% *}"
tail -1 "$W/err" >&2

STEP=$(( (N + RUNS - 1) / RUNS ))
say "$RUNS runs of --max-events $STEP"
TOTAL=0
LAST=0
for ((i = 1; i <= RUNS; i++)); do
    LAST="$(timed "${AGG[@]}" --group "$T.inc" --warehouse "$W/inc" --max-events "$STEP")"
    LAST="${LAST%% *}"
    TOTAL="$(echo "$TOTAL + $LAST" | bc -l)"
    run_progress "$i" "$RUNS" "$(printf '%.1f s, %.1f s so far' "$LAST" "$TOTAL")"
done
run_progress_done
tail -1 "$W/err" >&2

say "comparing the warehouses"
DIFFER=0
while IFS= read -r f; do
    rel="${f#"$W/one/"}"
    cmp -s "$f" "$W/inc/$rel" || { echo "differs: $rel" >&2; DIFFER=$((DIFFER + 1)); }
done < <(find "$W/one" -name '*.parquet' -not -path '*/events/*' -not -path '*/.*')
ONLY="$(cd "$W/inc" && find . -name '*.parquet' -not -path './events/*' -not -path '*/.*' | while read -r f; do [[ -e "$W/one/$f" ]] || echo "$f"; done | wc -l)"
EVENTS="$(python3 - "$W/one" "$W/inc" <<'EOF'
import sys, duckdb
a, b = (f"read_parquet('{d}/events/*/*.parquet', hive_partitioning=true)" for d in sys.argv[1:3])
cols = "*"
n = duckdb.sql(f"SELECT count(*) FROM {a}").fetchall()[0][0]
d1 = duckdb.sql(f"SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT ALL SELECT {cols} FROM {b})").fetchall()[0][0]
d2 = duckdb.sql(f"SELECT count(*) FROM (SELECT {cols} FROM {b} EXCEPT ALL SELECT {cols} FROM {a})").fetchall()[0][0]
print(n, d1 + d2)
EOF
)"
read -r ROWS EVENT_DIFF <<<"$EVENTS"

say "summary"
printf 'one run over the day:   %8.1f s\n' "$ONE"
printf '%d runs as it arrives:  %8.1f s in all (the last: %.1f s)\n' "$RUNS" "$TOTAL" "$LAST"
printf 'cost of the day in %d runs / one run: %.2f\n' "$RUNS" "$(echo "$TOTAL / $ONE" | bc -l)"
printf 'summary files that differ: %d, only in the incremental warehouse: %d; events rows: %d, differing: %d\n' \
    "$DIFFER" "$ONLY" "$ROWS" "$EVENT_DIFF"
[[ "$DIFFER" == 0 && "$ONLY" == 0 && "$EVENT_DIFF" == 0 ]]
