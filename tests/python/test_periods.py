"""Unique visitors over weeks: with the keyring's `epoch = "week"`, a person
keeps one visitor_id all ISO week, so traffic_weekly's visitors must equal the
distinct (address, user agent) pairs with a request not answered 4xx in each
ISO week, counted here from the raw lines; and with the default daily epoch
the same column is marked as an upper bound. Real logs through ingest, the
broker and aggregate: elastic and secrepo 2021 from tests/data; wordpress when
../shared/data is present (the test says when it is not)."""

import datetime
import gzip
import os

import duckdb
import pytest

from footfall_support import ROOT, ingest_and_aggregate

SHARED = os.environ.get("FOOTFALL_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
LOGS = {
    "elastic": os.path.join(ROOT, "tests", "data", "elastic-apache-logs", "apache_logs.gz"),
    "secrepo-2021": os.path.join(ROOT, "tests", "data", "secrepo-selflogs", "2021_all.log.gz"),
    "wordpress": os.path.join(SHARED, "wordpress-nginx-2025-hackathon", "access.log.gz"),
}
MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}


def weekly_pairs(path):
    """{Monday: number of distinct (address, user agent) with a non-4xx request}."""
    weeks = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            q = line.split('"')
            if len(q) < 6:
                continue
            status = q[2].split()[0]
            if status.isdigit() and 400 <= int(status) <= 499:
                continue
            day, mon, rest = line.split("[", 1)[1].split("/", 2)
            date = datetime.date(int(rest[:4]), MONTHS[mon], int(day))
            monday = date - datetime.timedelta(days=date.weekday())
            weeks.setdefault(monday, set()).add((line.split(" ", 1)[0], q[5]))
    return {w: len(p) for w, p in weeks.items()}


def weekly(work, path, epoch):
    """traffic_weekly's (Monday, visitors summed over audiences, exact?) for one log."""
    plain = os.path.join(work, "access.log")
    with gzip.open(path, "rb") as f, open(plain, "wb") as g:
        g.write(f.read())
    wh = ingest_and_aggregate(work, f"periods.{epoch}", [plain], keys=f'epoch = "{epoch}"\n')
    return duckdb.connect().execute(
        f"""SELECT period_start, sum(visitors), bool_and(visitors_exact)
            FROM read_parquet('{wh}/traffic_weekly/*/*.parquet', hive_partitioning = true)
            GROUP BY ALL ORDER BY ALL"""
    ).fetchall()


@pytest.mark.parametrize("log", sorted(LOGS))
def test_weekly_visitors_are_exact_with_a_weekly_epoch(tmp_path, log):
    path = LOGS[log]
    if not os.path.exists(path):
        print(f"{path} not present: the {log} log is not measured")
        return
    want = weekly_pairs(path)
    got = weekly(str(tmp_path), path, "week")
    assert {w: n for w, n, _ in got} == want
    assert all(exact for _, _, exact in got)
    print(f"{log}: traffic_weekly visitors equal the raw lines' (address, user agent) pairs in {len(got)} ISO weeks")


def test_weekly_visitors_are_an_upper_bound_with_a_daily_epoch(tmp_path):
    path = LOGS["elastic"]
    want = weekly_pairs(path)
    got = weekly(str(tmp_path), path, "day")
    assert not any(exact for _, _, exact in got), "daily ids cannot give exact weekly visitors"
    assert all(n >= want[w] for w, n, _ in got)
    assert sum(n for _, n, _ in got) > sum(want.values()), "someone came back on another day"
