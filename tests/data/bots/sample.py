#!/usr/bin/env python3
"""Enumerate visitor-days in the bot-label logs, draw the labelled sample, and
print a visitor-day's requests for review.

A visitor-day is (client address, user agent string, calendar date of the log's
own timestamp as written). Its key is the first 16 hex digits of
sha256(address + "\\t" + user_agent + "\\t" + "YYYY-MM-DD"), UTF-8, with the
user agent exactly as it appears between the quotes in the log line ("-" when
the field is absent).

This script is only a tool for building and checking labels.tsv; no test needs it.

Usage:
  sample.py list                 # every visitor-day: log key date requests
  sample.py sample               # the drawn sample: log key date requests
  sample.py show KEY [KEY ...]   # the requests of those visitor-days
  sample.py review [log]         # the requests of every sampled visitor-day
  sample.py verify [labels.tsv]  # check labels.tsv keys against the raw logs

The raw logs are read from $FOOTFALL_SHARED_DATA (default /work/shared/data),
falling back to ../secrepo-selflogs beside this file for the secrepo files.
"""
import collections
import gzip
import hashlib
import os
import random
import re
import sys
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("FOOTFALL_SHARED_DATA", "/work/shared/data")

LOGS = {
    "wordpress": ["wordpress-nginx-2025-hackathon/access.log.gz"],
    "secrepo": [
        "secrepo-selflogs/access-2018-12-15.log.gz",
        "secrepo-selflogs/2021_all.log.gz",
        "secrepo-selflogs/access.log.2022-12-22.gz",
    ],
}

# Sampling: every visitor-day with HEAVY or more requests, plus PER_LOG_LIGHT
# visitor-days drawn from the rest of each log with random.Random(SEED).sample
# over the light visitor-days sorted by (date, key).
SEED = 20250517
HEAVY = 20
PER_LOG_LIGHT = {"wordpress": 160, "secrepo": 150}

QUOTED = r'"((?:[^"\\]|\\.)*)"'
LINE = re.compile(
    r'^(\S+) \S+ \S+ \[(\d{2})/(\w{3})/(\d{4}):(\d{2}:\d{2}:\d{2}) ([+-]\d{4})\] '
    + QUOTED + r' (\d{3}) (\S+)(?: ' + QUOTED + r'(?: ' + QUOTED + r')?)?.*$'
)
MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def log_paths(name):
    for rel in LOGS[name]:
        path = os.path.join(SHARED, rel)
        if not os.path.exists(path):
            path = os.path.join(HERE, "..", rel)
        yield path


def parse(line):
    """Return a dict for one combined-log line, or None if it does not parse."""
    m = LINE.match(line)
    if not m:
        return None
    addr, dd, mon, yyyy, hms, off, req, status, size, ref, ua = m.groups()
    date = "%s-%02d-%s" % (yyyy, MONTHS[mon], dd)
    return {
        "addr": addr, "date": date, "time": hms, "offset": off,
        "ts": datetime.strptime("%s %s %s" % (date, hms, off), "%Y-%m-%d %H:%M:%S %z"),
        "request": req, "status": status, "size": size,
        "referrer": ref if ref is not None else "-",
        "ua": ua if ua is not None else "-",
    }


def key_of(addr, ua, date):
    return hashlib.sha256(("%s\t%s\t%s" % (addr, ua, date)).encode("utf-8")).hexdigest()[:16]


def visitor_days(name):
    """Map key -> {"date", "addr", "ua", "rows": [parsed lines in file order]}."""
    days = collections.OrderedDict()
    bad = 0
    for path in log_paths(name):
        with gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape") as f:
            for raw in f:
                rec = parse(raw.rstrip("\n"))
                if rec is None:
                    bad += 1
                    continue
                k = key_of(rec["addr"], rec["ua"], rec["date"])
                vd = days.setdefault(k, {"date": rec["date"], "addr": rec["addr"],
                                         "ua": rec["ua"], "rows": []})
                vd["rows"].append(rec)
    if bad:
        print("warning: %s: %d unparsed lines" % (name, bad), file=sys.stderr)
    return days


def draw(name, days):
    """The sampled keys of one log, sorted by (date, key)."""
    heavy = [k for k, v in days.items() if len(v["rows"]) >= HEAVY]
    light = sorted((v["date"], k) for k, v in days.items() if len(v["rows"]) < HEAVY)
    rng = random.Random(SEED)
    picked = [k for _, k in rng.sample(light, min(PER_LOG_LIGHT[name], len(light)))]
    return sorted(heavy + picked, key=lambda k: (days[k]["date"], k))


ASSET = re.compile(r"\.(css|js|png|jpe?g|gif|svg|webp|ico|woff2?|ttf|eot)(\?|$)", re.I)


def summary(rows):
    """One line of counts: methods, statuses, asset share, distinct paths, gaps."""
    methods = collections.Counter(r["request"].split(" ")[0] or "(empty)" for r in rows)
    statuses = collections.Counter(r["status"][0] + "xx" for r in rows)
    paths = [r["request"].split(" ")[1] if " " in r["request"] else r["request"] for r in rows]
    assets = sum(1 for p in paths if ASSET.search(p))
    gaps = sorted((b["ts"] - a["ts"]).total_seconds() for a, b in zip(rows, rows[1:]))
    med = gaps[len(gaps) // 2] if gaps else 0
    refs = sum(1 for r in rows if r["referrer"] != "-")
    return "methods=%s status=%s assets=%d/%d paths=%d refs=%d median_gap=%ds span=%s-%s" % (
        dict(methods), dict(statuses), assets, len(rows), len(set(paths)), refs, med,
        rows[0]["time"], rows[-1]["time"])


def show(key, vd, out=sys.stdout, limit=400):
    rows = vd["rows"]
    print("=== %s %s n=%d ua=%s" % (key, vd["date"], len(rows), vd["ua"]), file=out)
    print("  " + summary(rows), file=out)
    prev = None
    for r in rows[:limit]:
        gap = "" if prev is None else "+%ds" % (r["ts"] - prev).total_seconds()
        prev = r["ts"]
        ref = r["referrer"]
        print("  %s %-7s %s %s %s%s" % (r["time"], gap, r["status"], r["size"],
                                       r["request"][:160],
                                       "" if ref == "-" else "  <- " + ref[:80]), file=out)
    if len(rows) > limit:
        print("  ... %d more" % (len(rows) - limit), file=out)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "sample"
    if cmd in ("list", "sample"):
        for name in LOGS:
            days = visitor_days(name)
            keys = draw(name, days) if cmd == "sample" else sorted(
                days, key=lambda k: (days[k]["date"], k))
            for k in keys:
                print("%s\t%s\t%s\t%d" % (name, k, days[k]["date"], len(days[k]["rows"])))
    elif cmd == "show":
        wanted = set(argv[2:])
        for name in LOGS:
            for k, v in visitor_days(name).items():
                if k in wanted:
                    print("[%s]" % name)
                    show(k, v)
    elif cmd == "review":
        for name in argv[2:] or LOGS:
            days = visitor_days(name)
            for k in draw(name, days):
                show(k, days[k], limit=25)
    elif cmd == "verify":
        return verify(argv[2] if len(argv) > 2 else os.path.join(HERE, "labels.tsv"))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


def verify(path):
    """Every labels.tsv key must match exactly one visitor-day of its log, with
    the same date and request count; the file must equal the drawn sample."""
    index = {name: visitor_days(name) for name in LOGS}
    # A key collision across or within logs would make a key ambiguous.
    seen = collections.Counter(k for d in index.values() for k in d)
    errors = 0
    counts = collections.Counter()
    labelled = collections.defaultdict(set)
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header == ["key", "log", "date", "requests", "label", "evidence", "note"], header
        for n, line in enumerate(f, 2):
            key, log, date, req, label, evidence, note = line.rstrip("\n").split("\t")
            rows.append((log, date, key))
            vd = index.get(log, {}).get(key)
            if vd is None or seen[key] != 1:
                print("line %d: key %s matches %d visitor-days" % (n, key, seen[key]))
                errors += 1
                continue
            if vd["date"] != date or len(vd["rows"]) != int(req):
                print("line %d: %s date/requests %s/%s, log says %s/%d"
                      % (n, key, date, req, vd["date"], len(vd["rows"])))
                errors += 1
            if label not in ("human", "bot"):
                print("line %d: bad label %r" % (n, label))
                errors += 1
            if key in labelled[log]:
                print("line %d: duplicate key %s" % (n, key))
                errors += 1
            labelled[log].add(key)
            counts[(log, label)] += 1
    if rows != sorted(rows):
        print("labels.tsv is not sorted by log, date, key")
        errors += 1
    for name, days in index.items():
        drawn = set(draw(name, days))
        if drawn != labelled[name]:
            print("%s: %d drawn keys unlabelled, %d labelled keys not drawn"
                  % (name, len(drawn - labelled[name]), len(labelled[name] - drawn)))
            errors += 1
    for (log, label), c in sorted(counts.items()):
        print("%s\t%s\t%d" % (log, label, c))
    print("total\t%d\t%s" % (sum(counts.values()), "OK" if not errors else "%d ERRORS" % errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
