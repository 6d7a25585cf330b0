#!/usr/bin/env python3
"""How often a visitor-day's bot class changes as its day arrives in runs.

Generates one day of N combined lines (deploy/bench/genlog.py, 150,000
visitors), ingests it into a new topic on $FOOTFALL_KAFKA_BROKERS, then runs
`footfall aggregate --max-events ceil(N/RUNS)` RUNS times on one warehouse, as
runs every 15 minutes would see the day. After each run DuckDB reads every
visitor-day's class (`bot_reason` of its visits, or human) and its requests so
far; the script counts the class changes between consecutive runs, and those
of visitor-days with at least 100 requests (the heavy ones that incremental
state would keep without their rows: a change re-labels their earlier rows and
sends them back to a recompute from their events).

    python3 deploy/bench/class_changes.py [N] [RUNS]     # default: 1000000 96

Needs a release build (cargo build --release -p footfall), python3 with duckdb
and a broker (deploy/kafka/local-kafka.sh start; `env` prints the variable).
"""
import math
import os
import subprocess
import sys
import tempfile

import duckdb

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FF = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "footfall")
HEAVY = 100

CLASSES = """
WITH v AS (SELECT visitor_id, any_value(coalesce(bot_reason, 'human')) AS c
           FROM read_parquet('{w}/visits/*/*.parquet') GROUP BY 1),
     e AS (SELECT visitor_id, count(*) AS n FROM read_parquet('{w}/events/*/*.parquet') GROUP BY 1)
SELECT e.visitor_id, e.n, v.c FROM e LEFT JOIN v USING (visitor_id)
"""


def fill(work, brokers, topic, n):
    log = os.path.join(work, "day.log")
    with open(log, "wb") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "deploy/bench/genlog.py"), "--lines", str(n),
                        "--visitors", "150000", "--days", "1"], stdout=f, check=True)
    subprocess.run([FF, "topics", "--brokers", brokers, "--topic", topic, "--dlq-topic", topic + ".dlq"],
                   check=True, capture_output=True)
    with open(log, "rb") as f:
        subprocess.run([FF, "ingest", "--brokers", brokers, "--topic", topic, "--dlq-topic", topic + ".dlq",
                        "--format", "combined", "--state-dir", os.path.join(work, "state"), "--http-listen", "off",
                        "--keyring", os.path.join(work, "keyring"), "-"], stdin=f, check=True, capture_output=True)
    os.remove(log)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 96
    brokers = os.environ.get("FOOTFALL_KAFKA_BROKERS", "127.0.0.1:9092")
    work = tempfile.mkdtemp(prefix="class-changes.")
    topic = f"bench.class-changes.{os.getpid()}"
    wh = os.path.join(work, "wh")
    print(f"{n} events of one day into {topic}, then {runs} runs", file=sys.stderr)
    fill(work, brokers, topic, n)
    step = math.ceil(n / runs)
    prev, changes, heavy_changes, heavy_changed = {}, 0, 0, set()
    for i in range(runs):
        subprocess.run([FF, "aggregate", "--brokers", brokers, "--topic", topic, "--group", topic + ".g",
                        "--warehouse", wh, "--max-events", str(step)], check=True, capture_output=True)
        with duckdb.connect() as con:
            cur = {v: (n_, c) for v, n_, c in con.execute(CLASSES.format(w=wh)).fetchall()}
        for v, (n_, c) in cur.items():
            if v in prev and prev[v][1] != c:
                changes += 1
                if n_ >= HEAVY:
                    heavy_changes += 1
                    heavy_changed.add(v)
        prev = cur
        if (i + 1) % 12 == 0:
            print(f"  run {i + 1}/{runs}: {changes} class changes, {heavy_changes} of heavy visitor-days",
                  file=sys.stderr)
    heavy = sum(1 for n_, _ in prev.values() if n_ >= HEAVY)
    print(f"visitor-days: {len(prev)}, with at least {HEAVY} requests: {heavy}")
    print(f"class changes between consecutive runs: {changes}; of visitor-days with at least {HEAVY} requests "
          f"then: {heavy_changes} ({len(heavy_changed)} distinct)")
    print(f"work directory (warehouse): {work}")


if __name__ == "__main__":
    main()
