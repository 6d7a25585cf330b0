#!/usr/bin/env python3
"""How much summary work a day aggregated in R runs costs, by strategy.

A model, not a run of footfall: it replays an access log (Common or Combined
format, plain or .gz) as R runs would see it, with events keyed to P Kafka
partitions by visitor (client address and user agent, as ingest keys them by
`visitor_id`) and each run taking an equal share of every partition, as
`footfall aggregate --max-events` does. For each strategy it prints the rows
that strategy's summaries would pass over in all R runs, in units of the
log's size (1.0 = each row once):

  whole date        every run re-reads every row of each date it touches
                    (footfall today: docs/architecture.md, "Cost of frequent runs");
  touched visitors  every run re-reads the rows of each visitor-day it touches;
  heavy kept        the same, except that a visitor-day with at least T rows
                    so far costs only its new rows (state kept per visitor-day).

It also counts the events that arrive earlier than their visitor-day's
latest event already seen, and those of them more than 30 minutes (a visit
timeout) earlier: a visitor-day kept as state would have to keep the rows of
its last minutes as they are, or re-read itself, for such events.

    python3 deploy/bench/incremental_model.py LOG [--runs 96] [--partitions 6]
    python3 deploy/bench/genlog.py --lines 1000000 --visitors 150000 --days 1 > day.log
    python3 deploy/bench/incremental_model.py day.log
"""
import argparse
import collections
import datetime as dt
import gzip
import re
import zlib

LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "(?:[^"\\]|\\.)*" \S+ \S+(?: "(?:[^"\\]|\\.)*" "((?:[^"\\]|\\.)*)")?')
THRESHOLDS = (100, 1000, 10000)


def read(path):
    """(date, visitor, timestamp) of every parsed line, in log order."""
    opener = gzip.open if path.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            t = dt.datetime.strptime(m.group(2), "%d/%b/%Y:%H:%M:%S %z")
            out.append((t.date(), m.group(1) + "|" + (m.group(3) or ""), t.timestamp()))
    return out


def runs(events, n_runs, n_parts):
    """The events of each run: an equal share of every partition, the
    share of a finished partition going to the others."""
    parts = [[] for _ in range(n_parts)]
    for e in events:
        parts[zlib.crc32(e[1].encode()) % n_parts].append(e)
    step = -(-len(events) // n_runs)
    pos = [0] * n_parts
    for _ in range(n_runs):
        left, new = step, []
        while left > 0:
            active = [i for i in range(n_parts) if pos[i] < len(parts[i])]
            if not active:
                break
            share = max(left // len(active), 1)
            for i in active:
                take = min(share, len(parts[i]) - pos[i], left)
                new.extend(parts[i][pos[i]:pos[i] + take])
                pos[i] += take
                left -= take
                if left == 0:
                    break
        yield new


def model(events, n_runs, n_parts):
    """Each strategy's rows, in units of the events, and the late events."""
    rows = collections.Counter()  # per (date, visitor): rows so far
    per_date = collections.Counter()
    latest = {}
    whole = touched = late = far = 0
    heavy = dict.fromkeys(THRESHOLDS, 0)
    for new in runs(events, n_runs, n_parts):
        fresh = collections.Counter()
        for date, visitor, ts in new:
            key = (date, visitor)
            if ts < latest.get(key, ts):
                late += 1
                far += latest[key] - ts > 1800
            latest[key] = max(ts, latest.get(key, ts))
            fresh[key] += 1
        for key, n in fresh.items():
            rows[key] += n
            per_date[key[0]] += n
        whole += sum(per_date[d] for d in {k[0] for k in fresh})
        for key, n in fresh.items():
            touched += rows[key]
            for t in THRESHOLDS:
                heavy[t] += rows[key] if rows[key] < t else n
    total = sum(rows.values())
    return {
        "events": total,
        "dates": len(per_date),
        "visitor_days": len(rows),
        "largest": [c / total for _, c in rows.most_common(3)],
        "whole_date": whole / total,
        "touched_visitors": touched / total,
        "heavy_kept": {t: h / total for t, h in heavy.items()},
        "late": late,
        "late_by_30_minutes": far,
    }


def report(m, n_runs, n_parts):
    top = [round(x, 3) for x in m["largest"]]
    print(f"{m['events']} events, {m['dates']} dates, {m['visitor_days']} visitor-days; "
          f"{n_runs} runs over {n_parts} partitions; largest visitor-days: {top} of the events")
    print(f"  whole date:        {m['whole_date']:6.2f}")
    print(f"  touched visitors:  {m['touched_visitors']:6.2f}")
    for t, h in m["heavy_kept"].items():
        print(f"  heavy kept, T={t:<5} {h:6.2f}")
    print(f"  events earlier than their visitor-day's latest: {m['late']} "
          f"({m['late_by_30_minutes']} by more than 30 minutes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--runs", type=int, default=96)
    ap.add_argument("--partitions", type=int, default=6)
    a = ap.parse_args()
    report(model(read(a.log), a.runs, a.partitions), a.runs, a.partitions)


if __name__ == "__main__":
    main()
