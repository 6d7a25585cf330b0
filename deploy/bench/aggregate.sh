#!/usr/bin/env bash
# The aggregate benchmark, in one run: N generated events ingested into the
# local broker, then `footfall aggregate` of all of them (events/s, peak RSS),
# then recomputing one day's summaries vs DuckDB's equivalent SQL on the same
# events table (median of 3 each).
#
#   bash deploy/bench/aggregate.sh [EVENTS]      # default 5,000,000
#
# Needs a release build, python3 with duckdb, and a broker at
# $FOOTFALL_KAFKA_BROKERS (default 127.0.0.1:9092).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
N="${1:-5000000}"
B="${FOOTFALL_KAFKA_BROKERS:-127.0.0.1:9092}"
W="$(mktemp -d /tmp/footfall-aggbench.XXXXXX)"
trap 'rm -rf "$W"' EXIT
FF=target/release/footfall
T="bench.aggregate.$$.$(date +%s)"
cargo build --release -p footfall -q
python3 deploy/bench/genlog.py --lines "$N" --visitors 150000 --days 14 > "$W/access.log"
"$FF" keys --keyring "$W/keyring" init
"$FF" topics --brokers "$B" --topic "$T" --dlq-topic "$T.dlq" > /dev/null
/usr/bin/time -f "ingest: %e s, peak %M KB" env FOOTFALL_KEYRING="$W/keyring" "$FF" ingest --brokers "$B" --topic "$T" \
    --dlq-topic "$T.dlq" --format combined --state-dir "$W/state" --http-listen off - < "$W/access.log" 2>&1 | tail -2
/usr/bin/time -f "aggregate: %e s, peak %M KB" "$FF" aggregate --brokers "$B" --topic "$T" --group "$T.agg" --warehouse "$W/wh" 2>&1 | tail -2
DAY="$(ls "$W/wh/events" | sed -n 3p | sed 's/date=//')"
echo "day $DAY: $(python3 -c "import duckdb; print(duckdb.sql(\"select count(*) from read_parquet('$W/wh/events/date=$DAY/*.parquet')\").fetchone()[0])") events"
for _ in 1 2 3; do /usr/bin/time -f "footfall recompute: %e s, peak %M KB" "$FF" aggregate --warehouse "$W/wh" --recompute "$DAY" 2>&1 | tail -1; done
for _ in 1 2 3; do /usr/bin/time -f "duckdb sql: %e s, peak %M KB" python3 deploy/bench/duckdb_summaries.py "$W/wh" "$DAY" 2>&1 | tail -1; done
