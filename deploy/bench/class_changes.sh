#!/usr/bin/env bash
# How often a visitor-day's bot class, and a route's polling flag, change as
# its day arrives in runs.
#
#   1. N generated combined lines (150,000 visitors, one day) ingested into
#      the local broker;
#   2. RUNS runs of `footfall aggregate --max-events ceil(N/RUNS)` on one
#      warehouse, as runs every 15 minutes (RUNS=96) would see the day;
#   3. after each run, DuckDB reads every visitor-day's class (`bot_reason` of
#      its visits, or human) and its requests so far, and the class changes
#      since the previous run are counted, with those of visitor-days of at
#      least 100 requests: the heavy ones that incremental state would keep
#      without their rows (a change re-labels their earlier rows and sends
#      them back to a recompute from their events);
#   4. at the end, the polling flag of every route of every visitor-day is
#      replayed over the same RUNS runs from the warehouse's events
#      (crates/footfall-aggregate/examples/polling_flips.rs, with the bot
#      rules' own test), and its changes counted the same way.
#
#   bash deploy/bench/class_changes.sh [N] [RUNS]     # default: 1000000 96
#
# Needs a release build (built here), python3 with duckdb, and a broker at
# $FOOTFALL_KAFKA_BROKERS (default 127.0.0.1:9092).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N="${1:-1000000}"
RUNS="${2:-96}"
HEAVY=100
bench_init classchanges
T="bench.class-changes.$$.$(date +%s)"

say "$N events over one day: generating and ingesting"
fill "$T" "$N" 1

# classes: the class changes since the previous call's classes ($W/classes.tsv)
# as "changes heavy_changes heavy_visitor_days_now"; replaces those classes and
# appends the heavy visitor-days that changed to $W/heavy.
classes() {
    python3 - "$W" "$HEAVY" <<'EOF'
import csv, os, sys, duckdb
work, heavy = sys.argv[1], int(sys.argv[2])
wh, prev_path = os.path.join(work, "wh"), os.path.join(work, "classes.tsv")
rows = duckdb.sql(f"""
    WITH v AS (SELECT visitor_id, any_value(coalesce(bot_reason, 'human')) AS c
               FROM read_parquet('{wh}/visits/*/*.parquet') GROUP BY 1),
         e AS (SELECT visitor_id, count(*) AS n FROM read_parquet('{wh}/events/*/*.parquet') GROUP BY 1)
    SELECT e.visitor_id, e.n, coalesce(v.c, '') FROM e LEFT JOIN v USING (visitor_id)""").fetchall()
prev = {}
if os.path.exists(prev_path):
    with open(prev_path) as f:
        prev = {v: c for v, c in csv.reader(f, delimiter="\t")}
changed = [(v, n) for v, n, c in rows if v in prev and prev[v] != c]
heavy_changed = [v for v, n in changed if n >= heavy]
with open(prev_path, "w") as f:
    csv.writer(f, delimiter="\t").writerows((v, c) for v, _, c in rows)
with open(os.path.join(work, "heavy"), "a") as f:
    f.writelines(v + "\n" for v in heavy_changed)
print(len(changed), len(heavy_changed), sum(1 for _, n, _ in rows if n >= heavy))
EOF
}

STEP=$(( (N + RUNS - 1) / RUNS ))
say "$RUNS runs of --max-events $STEP, each followed by the visitor-days' classes"
CHANGES=0
HEAVY_CHANGES=0
for ((i = 1; i <= RUNS; i++)); do
    timed "$FF" aggregate --brokers "$B" --topic "$T" --group "$T.g" --warehouse "$W/wh" \
        --max-events "$STEP" > /dev/null
    read -r C H HEAVY_NOW <<<"$(classes)"
    CHANGES=$((CHANGES + C))
    HEAVY_CHANGES=$((HEAVY_CHANGES + H))
    run_progress "$i" "$RUNS" "$CHANGES class changes, $HEAVY_CHANGES of heavy visitor-days"
done
run_progress_done

say "summary"
printf 'visitor-days: %d, with at least %d requests: %d\n' "$(wc -l < "$W/classes.tsv")" "$HEAVY" "$HEAVY_NOW"
printf 'class changes between consecutive runs: %d; of visitor-days with at least %d requests then: %d (%d distinct)\n' \
    "$CHANGES" "$HEAVY" "$HEAVY_CHANGES" "$(sort -u "$W/heavy" | wc -l)"
cargo run --release -q -p footfall-aggregate --example polling_flips -- "$W/wh" "$RUNS" "$HEAVY"
