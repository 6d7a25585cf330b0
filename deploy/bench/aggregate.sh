#!/usr/bin/env bash
# The aggregate benchmark, in one run:
#
#   1. for each size N: N generated combined lines (150,000 visitors over 14
#      days) ingested into the local broker, then `footfall aggregate` of all
#      of them with no size flag (from Kafka, with dedupe, the events table and
#      every summary): seconds, events/s and peak RSS;
#   2. at the first size, three more footfall runs (new groups and
#      warehouses), each followed by DuckDB copying the same events as
#      footfall's own JSON (read back from the topic with kcat) to a
#      date-partitioned Parquet table, `COPY (SELECT *, CAST(ts AS DATE) AS
#      date FROM read_json(...)) TO ... (FORMAT parquet, PARTITION_BY (date))`:
#      the medians of the 3 (runs alternate, so both see the same machine),
#      events/s, and footfall's rate as a ratio of DuckDB's.
#
#   bash deploy/bench/aggregate.sh [N ...]      # default: 1000000 5000000 20000000
#
# Needs a release build (built here), python3 with duckdb, kcat, about 1 GB of
# disk per million events, and a broker at $FOOTFALL_KAFKA_BROKERS (default
# 127.0.0.1:9092). Summary recompute against DuckDB's SQL is in compare.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(1000000 5000000 20000000)
bench_init aggbench

RESULTS=()
for N in "${SIZES[@]}"; do
    T="bench.aggregate.$$.$N.$(date +%s)"
    say "$N events: generating and ingesting"
    fill "$T" "$N" 14
    say "$N events: footfall aggregate"
    t="$(timed "$FF" aggregate --brokers "$B" --topic "$T" --group "$T.agg" --warehouse "$W/wh.$N")"
    read -r secs kb <<<"$t"
    tail -1 "$W/err" >&2
    if [[ "$N" == "${SIZES[0]}" ]]; then
        say "$N events: 3 more footfall runs, each followed by a DuckDB COPY of the same events (footfall's JSON, from the topic)"
        kcat -b "$B" -C -t "$T" -e -q -f '%s\n' > "$W/events.json"
        OURS=()
        DUCK=()
        for r in 1 2 3; do
            rm -rf "$W/wh.$N.$r" "$W/duck"
            t="$(timed "$FF" aggregate --brokers "$B" --topic "$T" --group "$T.agg.$r" --warehouse "$W/wh.$N.$r")"
            read -r s k <<<"$t"
            OURS+=("$s $k")
            echo "footfall aggregate: $s s, peak $((k / 1024)) MB" >&2
            t="$(timed python3 -c "import duckdb; duckdb.sql(\"COPY (SELECT *, CAST(ts AS DATE) AS date FROM read_json('$W/events.json')) TO '$W/duck' (FORMAT parquet, PARTITION_BY (date))\")")"
            read -r s k <<<"$t"
            DUCK+=("$s $k")
            echo "duckdb copy: $s s, peak $((k / 1024)) MB" >&2
            rm -rf "$W/wh.$N.$r"
        done
        DUCK_MEDIAN="$(printf '%s\n' "${DUCK[@]}" | sort -n | sed -n 2p)"
        read -r secs _ <<<"$(printf '%s\n' "${OURS[@]}" | sort -n | sed -n 2p)"
        for o in "${OURS[@]}"; do read -r _ k <<<"$o"; if ((k > kb)); then kb=$k; fi; done
        rm -rf "$W/events.json" "$W/duck"
        FIRST="$N $secs"
    fi
    RESULTS+=("$N $secs $kb")
    rm -rf "$W/wh.$N"
done

say "summary"
printf '%-12s %10s %14s %12s\n' events seconds events/s "peak RSS"
for r in "${RESULTS[@]}"; do
    read -r n s k <<<"$r"
    printf '%-12s %10s %14.0f %9d MB\n' "$n" "$s" "$(echo "$n / $s" | bc -l)" "$((k / 1024))"
done
read -r ds dk <<<"$DUCK_MEDIAN"
read -r fn fs <<<"$FIRST"
printf 'footfall aggregate of %s events: %s s (median of 3, alternating with DuckDB), %.0f events/s\n' "$fn" "$fs" "$(echo "$fn / $fs" | bc -l)"
printf 'DuckDB COPY of %s events: %s s (median of 3), %.0f events/s, peak %d MB\n' "$fn" "$ds" "$(echo "$fn / $ds" | bc -l)" "$((dk / 1024))"
printf 'footfall aggregate / DuckDB COPY rate: %.2f\n' "$(echo "$ds / $fs" | bc -l)"
