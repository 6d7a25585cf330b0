#!/usr/bin/env python3
"""Generate a realistic combined-format access log for benchmarks.

Requests, referrers, user agents and status codes are drawn from the real
Apache log in tests/data (elastic/examples, Apache-2.0); client addresses come
from a pool of synthetic visitors (documentation ranges and random public-like
addresses), each keeping its user agent; timestamps advance through several
days. Deterministic for a given --seed.

    python3 deploy/bench/genlog.py --lines 1000000 > /tmp/bench.log
"""
import argparse
import datetime as dt
import gzip
import os
import random
import re
import sys

LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\S+) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--visitors", type=int, default=40_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--sample", default=os.path.join(os.path.dirname(__file__), "../../tests/data/elastic-apache-logs/apache_logs.gz"))
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    reqs = []
    with gzip.open(a.sample, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line.rstrip("\r\n"))
            if m:
                reqs.append((m.group(3), m.group(4), m.group(5), m.group(6), m.group(7)))
    uas = sorted({r[4] for r in reqs})
    visitors = []
    for i in range(a.visitors):
        ip = "%d.%d.%d.%d" % (rnd.randint(1, 223), rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254))
        visitors.append((ip, rnd.choice(uas)))
    start = dt.datetime(2024, 3, 4, 0, 0, 0, tzinfo=dt.timezone.utc)
    span = a.days * 86400
    out = sys.stdout
    buf = []
    for i in range(a.lines):
        t = start + dt.timedelta(seconds=span * i / a.lines)
        ip, ua = visitors[int(rnd.paretovariate(1.2)) % a.visitors] if rnd.random() < 0.7 else rnd.choice(visitors)
        req, status, size, ref, _ = rnd.choice(reqs)
        buf.append('%s - - [%s] "%s" %s %s "%s" "%s"\n' % (ip, t.strftime("%d/%b/%Y:%H:%M:%S +0000"), req, status, size, ref, ua))
        if len(buf) >= 10000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
