"""footfall's humans and bots against the hand-labelled visitor-days of
tests/data/bots (labels.tsv, README.md there): the logs go through ingest, the
real broker and aggregate, and each labelled visitor-day's class is read back
from the visits table. Precision and recall of the bot class are printed and
checked (precision >= 95 %, recall >= 80 %), and the share found by the
behavioural rules alone (every reason but user_agent) is reported.

The secrepo logs are in tests/data; the wordpress log is not (no stated
licence), so its visitor-days are measured only when ../shared/data is beside
the checkout (or FOOTFALL_SHARED_DATA names it), and the test says so."""

import csv
import gzip
import hashlib
import os

import duckdb

from footfall_support import ROOT, ingest_and_aggregate

BOTS = os.path.join(ROOT, "tests", "data", "bots")
SHARED = os.environ.get("FOOTFALL_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
LOGS = {
    "secrepo": [
        os.path.join(ROOT, "tests", "data", "secrepo-selflogs", n)
        for n in ("access-2018-12-15.log.gz", "2021_all.log.gz", "access.log.2022-12-22.gz")
    ],
    "wordpress": [os.path.join(SHARED, "wordpress-nginx-2025-hackathon", "access.log.gz")],
}
MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}


def key_of(line):
    """The visitor-day key of a combined-log line (tests/data/bots/README.md)."""
    addr = line.split(" ", 1)[0]
    day, mon, rest = line.split("[", 1)[1].split("/", 2)
    date = f"{rest[:4]}-{MONTHS[mon]:02d}-{int(day):02d}"
    quoted = line.split('"')
    ua = quoted[5] if len(quoted) > 5 else "-"
    return hashlib.sha256(f"{addr}\t{ua}\t{date}".encode()).hexdigest()[:16]


def plain_copies(work):
    """The logs there are, decompressed (offsets are then byte offsets of the files)."""
    out = {}
    for log, paths in LOGS.items():
        for i, path in enumerate(paths):
            if not os.path.exists(path):
                print(f"{path} not present: the {log} visitor-days are not measured")
                continue
            dst = os.path.join(work, f"{log}-{i}.log")
            with gzip.open(path, "rb") as f, open(dst, "wb") as g:
                g.write(f.read())
            out[dst] = log
    return out


def visitor_day_classes(work, files):
    """(visitor-day key -> bot_reason or None) as aggregate classified them."""
    wh = ingest_and_aggregate(work, "botlabels", files)
    con = duckdb.connect()
    rows = con.execute(
        f"""SELECT DISTINCT e.source, e."offset", v.bot_reason
            FROM read_parquet('{wh}/events/*/*.parquet', hive_partitioning = true) e
            JOIN (SELECT DISTINCT date, visitor_id, bot_reason
                  FROM read_parquet('{wh}/visits/*/*.parquet', hive_partitioning = true)) v
              USING (date, visitor_id)"""
    ).fetchall()
    lines = {}
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        for raw in data.split(b"\n"):
            lines[(os.path.basename(path), offset)] = raw.decode("utf-8", "replace")
            offset += len(raw) + 1
    return {key_of(lines[(os.path.basename(src), off)]): reason for src, off, reason in rows}


def test_bot_flags_on_hand_labelled_visitor_days(tmp_path):
    work = str(tmp_path)
    files = plain_copies(work)
    classes = visitor_day_classes(work, files)
    measured = {log for log in files.values()}
    with open(os.path.join(BOTS, "labels.tsv"), encoding="utf-8") as f:
        labels = [r for r in csv.DictReader(f, delimiter="\t") if r["log"] in measured]
    # Visitor-days with a visit (a request not answered 4xx) have a class.
    scored = [(r, classes[r["key"]]) for r in labels if r["key"] in classes]
    tp = sum(1 for r, c in scored if c and r["label"] == "bot")
    fp = sum(1 for r, c in scored if c and r["label"] == "human")
    fn = sum(1 for r, c in scored if not c and r["label"] == "bot")
    behaviour = sum(1 for r, c in scored if c and c != "user_agent" and r["label"] == "bot")
    bots = tp + fn
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / bots if bots else 1.0
    print(
        f"bot labels: {len(scored)} of {len(labels)} labelled visitor-days have a visit ({sorted(measured)}); "
        f"precision {precision:.3f}, recall {recall:.3f} (tp {tp}, fp {fp}, fn {fn}); "
        f"{behaviour} of {bots} bots flagged by behaviour alone"
    )
    missed = {}
    for r, c in scored:
        if not c and r["label"] == "bot":
            missed[r["evidence"]] = missed.get(r["evidence"], 0) + 1
    print(f"bots not flagged, by evidence: {dict(sorted(missed.items()))}")
    assert len(scored) >= 100, "too few labelled visitor-days were measured"
    assert precision >= 0.95, f"precision {precision:.3f}"
    assert recall >= 0.80, f"recall {recall:.3f}"
