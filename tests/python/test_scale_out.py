"""Scale-out on one machine (issue 16): three ``footfall aggregate --shared``
processes of one consumer group on one warehouse, one of them SIGKILLed while
it reads and one while it writes, each restarted at once, build the warehouse
that one exclusive process builds. Run twice: on a local warehouse, and on the
local S3 server (``--warehouse s3://bucket/<topic> --staging shared``), where
the object store must then hold the staging directory's tables byte for byte
and DuckDB must read every events row there.

Against the real broker (FOOTFALL_KAFKA_BROKERS; skipped without it, a
failure under FOOTFALL_REQUIRE_KAFKA=1 or CI=true), with the debug or release
binary in target/ (FOOTFALL_BIN overrides).

What happens
============

1. ``deploy/bench/genlog.py`` writes a combined log of SCALE_OUT_LINES lines
   over four days (seeded), ``footfall ingest`` sends it to a new topic of six
   partitions, and its first DUP_BEFORE lines are sent again (a copy under a
   rotation name, ingested with a fresh state directory: same event ids, same
   partitions, later offsets).
2. Round after round, three ``aggregate --shared`` processes run at once on
   warehouse ``shared`` with group G, each with a 6 s group session (so that
   the group gives a killed member's partitions to the others soon after)
   and a 0.5 s heartbeat (so that members learn of each rebalance at once:
   partitions are revoked and assigned again while runs read, which is what
   a run in a busy group meets). The first process seen spilling its share
   of the partitions (``.spill/p<n>/*.arrow``, fewer than all partitions
   assigned) is SIGKILLed, then the first one seen writing its events files
   (its log says it has read everything, one of its partitions' events files
   or their temporaries exists, nothing committed yet); each is restarted at
   once. A process that exits 75 (the group gave it no partition, or
   another member still holds one of its partitions) is started again after
   a second, as cron would; 0 ends its slot; anything else fails the test
   (a run that stalls exits 69 after a minute). A round ends when the three
   slots have ended with 0; rounds go on while a kill has not happened.
3. The log's first DUP_BEFORE + DUP_AFTER lines (all of the first day's
   first hours) are sent again, now that their originals are committed, and
   one more round runs (no kill): every one of them must be dropped against
   the committed events files, whichever process holds their partition.
4. An exclusive ``aggregate --dry-run`` of group G must be assigned every
   partition and find each at its end (nothing read): the group's committed
   offsets cover the topic. (A dry run writes nothing, so it cannot tidy up
   what the shared runs left.) Should it find more, another round runs.
5. One exclusive ``aggregate`` of another group builds warehouse ``single``
   from the whole topic.

Assertions
==========

* The events tables have the same rows (DuckDB, ``EXCEPT ALL`` both ways, the
  ``date`` partition column included) and ``shared`` has one row per
  ``event_id``.
* Every summary table (every table directory but ``events``) has the same
  files, and the same rows (``EXCEPT ALL`` both ways); the files are
  byte-identical as well (they are: a date's summaries are computed from all
  of that date's counting events together, and a period's from its dates'
  visits, whatever run and partition wrote them).
  The events files themselves are compared by rows only: their names carry
  the start offset of the run that wrote them, so how the runs split the
  partitions may change the files without changing the table (a
  ``--max-events`` cut, for one); the summary says whether they were
  byte-identical too.
* No ``.spill/p*`` directory and no ``*.tmp`` file is left in either warehouse.
* Both kills happened, while the victim was running.

The summary printed at the end says what happened: processes started, exit
codes per slot and round, kills (run, slot, its partitions, phase, what was
on disk), exits 75 retried, timings.

What it does not cover: every partition holds all four days, so every run's
batch spans every date and the shared runs take turns on the date locks.
Runs whose dates are disjoint but share a week or a month (and so write the
same ``traffic_weekly``/``traffic_monthly`` file) are not made to meet here;
the broker test ``shared_runs_with_disjoint_dates_of_one_week_leave_the_week_as_one_run_does``
(crates/footfall-aggregate/tests/broker.rs) makes them meet.
"""

import glob
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import footfall_support as ff

import duckdb  # noqa: E402  (a missing analyst client is a failure, not a skip)

ROOT = ff.ROOT
SCALE_OUT_LINES = int(os.environ.get("FOOTFALL_SCALE_OUT_LINES", "250000"))
DUP_BEFORE = 20_000  # the log's first lines, sent again before any run
DUP_AFTER = 5_000  # the first DUP_BEFORE + DUP_AFTER lines are sent again once committed
PARTITIONS = 6
INSTANCES = 3
SESSION_MS = 6000  # the broker's group.min.session.timeout.ms
HEARTBEAT_MS = 500
DEADLINE_S = 420  # the whole test (about 50 s on an idle machine), hard: every process it started is killed then
MAX_RETRIES = 30  # exits 75 over the whole test
MAX_ROUNDS = 6


class Deadline(Exception):
    pass


class Runs:
    """Every aggregate process the test starts, by slot and round, with its
    stderr in a file; all of them are ended (by pid) whatever happens."""

    def __init__(self, work, args, deadline):
        self.work = work
        self.args = args
        self.deadline = deadline
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs)
        self.all = []
        self.rounds = []  # [{"slot": [exit codes]}]
        self.kills = []
        self.retries = 0

    def left(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Deadline(f"the test passed its {DEADLINE_S} s deadline")
        return left

    def start(self, slot):
        n = len(self.all) + 1
        base = os.path.join(self.logs, f"{n:03d}-slot{slot}")
        p = ff.start(self.args, self.work, base + ".json", base + ".err")
        p.err_path, p.out_path, p.slot, p.started, p.n = base + ".err", base + ".json", slot, time.time(), n
        self.all.append(p)
        return p

    def end_all(self):
        for p in self.all:
            if p.poll() is None:
                p.kill()
                p.wait()


def stderr_of(p):
    with open(p.err_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def tail(text, n=3000):
    return text if len(text) <= n else "..." + text[-n:]


def assigned(err):
    """The partitions of the last assignment a run logged."""
    found = re.findall(r"partitions assigned partitions=\[([0-9, ]*)\]", err)
    return [int(x) for x in found[-1].split(",") if x.strip()] if found else []


def spilled(wh, partitions):
    return [f for p in partitions for f in glob.glob(os.path.join(wh, ".spill", f"p{p}", "date=*", "*.arrow"))]


def events_files_of(wh, partitions, since):
    """Events files (or their temporaries) of `partitions` changed since `since`."""
    out = []
    for p in partitions:
        for pattern in (f"part-{p}-*.parquet", f".part-{p}-*.parquet.tmp"):
            for f in glob.glob(os.path.join(wh, "events", "date=*", pattern)):
                try:
                    if os.stat(f).st_mtime >= since - 1:
                        out.append(os.path.relpath(f, wh))
                except FileNotFoundError:
                    pass
    return out


def reading(wh, p, err):
    """A run that is reading: its spill holds files of its partitions."""
    if "read every assigned partition" in err:
        return None
    partitions = assigned(err)
    if len(partitions) == PARTITIONS:  # alone in the group so far
        return None
    files = spilled(wh, partitions)
    return {"spill_files": len(files)} if files else None


def writing(wh, p, err):
    """A run that is writing: everything read, events files of its
    partitions appearing, nothing committed."""
    if "read every assigned partition" not in err or "offsets committed" in err:
        return None
    files = events_files_of(wh, assigned(err), p.started)
    return {"events_files": sorted(files)} if files else None


def round_of(runs, wh, kills):
    """Three slots, each running until a process of it exits 0; `kills` is a
    list of (phase, condition) to apply, in order, to the first process that
    meets the condition. Returns the kills still to do."""
    kills = list(kills)
    codes = {s: [] for s in range(INSTANCES)}
    live = {s: runs.start(s) for s in range(INSTANCES)}
    retry_at = {}
    while live or retry_at:
        runs.left()
        now = time.monotonic()
        for s, at in list(retry_at.items()):
            if now >= at:
                del retry_at[s]
                live[s] = runs.start(s)
        if kills:
            phase, cond = kills[0]
            for s, p in list(live.items()):
                if p.poll() is not None:
                    continue
                seen = cond(wh, p, stderr_of(p))
                if seen is None:
                    continue
                p.send_signal(signal.SIGKILL)
                assert p.wait(timeout=runs.left()) == -signal.SIGKILL
                runs.kills.append({"phase": phase, "run": p.n, "slot": s, "partitions": assigned(stderr_of(p)), **seen})
                codes[s].append("SIGKILL")
                kills.pop(0)
                live[s] = runs.start(s)
                break
        for s, p in list(live.items()):
            rc = p.poll()
            if rc is None:
                continue
            del live[s]
            codes[s].append(rc)
            if rc == 75:
                runs.retries += 1
                assert runs.retries <= MAX_RETRIES, f"{runs.retries} exits 75\n{tail(stderr_of(p))}"
                retry_at[s] = time.monotonic() + 1.0
            else:
                assert rc == 0, f"aggregate run {p.n} (slot {s}) exited {rc}:\n{tail(stderr_of(p))}"
        time.sleep(0.02)
    runs.rounds.append({str(s): c for s, c in codes.items()})
    return kills


def dry_run(work, config, group, wh, runs):
    """An exclusive dry run of `group`: its JSON report (retried on exit 75)."""
    while True:
        p = ff.run(["aggregate", "--config", config, "--group", group, "--warehouse", wh, "--dry-run", "--json",
                    "-X", f"session.timeout.ms={SESSION_MS}"], work, ok=(0, 75), timeout=runs.left())
        if p.returncode == 0:
            return json.loads(p.stdout)
        runs.retries += 1
        assert runs.retries <= MAX_RETRIES, p.stderr.decode(errors="replace")
        time.sleep(1.0)


def leftovers(wh):
    """Spill directories and temporary files left in a warehouse."""
    out = sorted(os.path.relpath(d, wh) for d in glob.glob(os.path.join(wh, ".spill", "p*")))
    for d, _, files in os.walk(wh):
        out += sorted(os.path.relpath(os.path.join(d, f), wh) for f in files if f.endswith(".tmp") or ".tmp-" in f)
    return out


def files_of(wh, table):
    d = os.path.join(wh, table)
    return sorted(os.path.relpath(f, d) for f in glob.glob(os.path.join(d, "date=*", "*.parquet")))


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def except_all(con, a, b):
    """Rows of parquet glob `a` not in `b` (multiset), and of `b` not in `a`: counts and a few."""
    q = "SELECT * FROM read_parquet('{}', hive_partitioning = true) EXCEPT ALL SELECT * FROM read_parquet('{}', hive_partitioning = true)"
    out = []
    for x, y in ((a, b), (b, a)):
        n = con.execute(f"SELECT count(*) FROM ({q.format(x, y)})").fetchone()[0]
        some = con.execute(f"{q.format(x, y)} LIMIT 3").fetchall() if n else []
        out.append((n, some))
    return out


@pytest.mark.parametrize("store", ["local", "s3"])
def test_three_shared_aggregators_with_kills_equal_one_exclusive(tmp_path, capsys, store):
    brokers = ff.require_env("FOOTFALL_KAFKA_BROKERS")[0]
    started = time.monotonic()
    work = str(tmp_path)
    times = {}
    topic = f"footfall-scale-out.{os.getpid()}.{time.time_ns()}"
    group = f"{topic}.shared"
    shared = os.path.join(work, "shared")
    single = os.path.join(work, "single")
    # On S3 the shared runs publish to the bucket; `shared` is their staging directory.
    s3 = ff.require_s3_env() if store == "s3" else None
    prefix = f"{s3['bucket']}/{topic}" if s3 else None
    target = ["--warehouse", f"s3://{prefix}", "--staging", shared] if s3 else ["--warehouse", shared]

    # ------------------------------------------------ 1. the topic
    t = time.monotonic()
    logs = os.path.join(work, "in")
    os.makedirs(logs)
    log = os.path.join(logs, "access.log")
    with open(log, "wb") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "bench", "genlog.py"), "--lines", str(SCALE_OUT_LINES),
                        "--days", "4", "--seed", "16"], stdout=f, check=True, timeout=120)
    ff.run(["topics", "--brokers", brokers, "--topic", topic, "--partitions", str(PARTITIONS)], work)
    config = ff.ingest(work, topic, [log])

    def resend(name, lines):
        """Lines of the log again, as a rotation of it (same lineage and first
        line: same event ids), with a fresh state directory."""
        path = os.path.join(logs, name)
        with open(log, "rb") as src, open(path, "wb") as dst:
            for i, line in enumerate(src):
                if i >= lines:
                    break
                dst.write(line)
        ff.ingest(work, topic, [path], state=f"state-{name}", config=f"{name}.toml")

    resend("access.log.1", DUP_BEFORE)
    times["fill"] = time.monotonic() - t

    # ------------------------------------------------ 2., 3. shared runs
    args = ["aggregate", "--config", config, "--group", group, *target, "--shared", "--json",
            "-X", f"session.timeout.ms={SESSION_MS}", "-X", f"heartbeat.interval.ms={HEARTBEAT_MS}"]
    runs = Runs(work, args, started + DEADLINE_S)
    try:
        t = time.monotonic()
        kills = [("reading", reading), ("writing", writing)]
        while kills:
            assert len(runs.rounds) < MAX_ROUNDS, f"kills not done after {MAX_ROUNDS} rounds: {[k for k, _ in kills]}"
            kills = round_of(runs, shared, kills)
        times["shared_with_kills"] = time.monotonic() - t

        t = time.monotonic()
        # The first day's last lines of the first DUP_BEFORE + DUP_AFTER: committed by now.
        resend("access.log.2", DUP_BEFORE + DUP_AFTER)
        round_of(runs, shared, [])
        times["shared_after_resend"] = time.monotonic() - t

        # ------------------------------------------------ 4. every partition at its end
        t = time.monotonic()
        while True:
            check = dry_run(work, config, group, shared, runs)
            at_end = all(p["start_offset"] == p["high_watermark"] for p in check["partitions"])
            if at_end or len(runs.rounds) >= MAX_ROUNDS:
                break
            round_of(runs, shared, [])
        times["check"] = time.monotonic() - t
    finally:
        runs.end_all()

    # ------------------------------------------------ 5. one exclusive process
    t = time.monotonic()
    ref = json.loads(ff.run(["aggregate", "--config", config, "--group", f"{topic}.single", "--warehouse", single, "--json"],
                            work, timeout=runs.left()).stdout)
    times["single"] = time.monotonic() - t

    # ------------------------------------------------ comparisons
    t = time.monotonic()
    con = duckdb.connect()
    ev = lambda wh: os.path.join(wh, "events", "*", "*.parquet")  # noqa: E731
    events_diff = except_all(con, ev(shared), ev(single))
    rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{ev(shared)}')").fetchone()
    ref_rows = con.execute(f"SELECT count(*) FROM read_parquet('{ev(single)}')").fetchone()[0]
    ev_files = {wh: files_of(wh, "events") for wh in (shared, single)}
    ev_identical = ev_files[shared] == ev_files[single] and all(
        digest(os.path.join(shared, "events", f)) == digest(os.path.join(single, "events", f)) for f in ev_files[single]
    )
    tables = sorted({d for wh in (shared, single) for d in os.listdir(wh)
                     if not d.startswith(".") and d != "events" and os.path.isdir(os.path.join(wh, d))})
    table_report = {}
    for table in tables:
        a, b = files_of(shared, table), files_of(single, table)
        differ = [f for f in sorted(set(a) & set(b))
                  if digest(os.path.join(shared, table, f)) != digest(os.path.join(single, table, f))]
        glob_of = lambda wh: os.path.join(wh, table, "*", "*.parquet")  # noqa: E731
        table_report[table] = {
            "files": len(b),
            "only_shared": sorted(set(a) - set(b)),
            "only_single": sorted(set(b) - set(a)),
            "bytes_differ": differ,
            "rows": except_all(con, glob_of(shared), glob_of(single)) if a and b else None,
        }
    con.close()
    left_shared, left_single = leftovers(shared), leftovers(single)
    published = published_check(s3, prefix, shared) if s3 else None
    times["compare"] = time.monotonic() - t

    summary = {
        "lines": SCALE_OUT_LINES,
        "resent": {"before_runs": DUP_BEFORE, "after_commit": DUP_BEFORE + DUP_AFTER},
        "topic_messages": sum(p["high_watermark"] for p in check["partitions"]),
        "aggregate_processes": len(runs.all),
        "rounds_exit_codes": runs.rounds,
        "kills": runs.kills,
        "exit_75_retried": runs.retries,
        "final_dry_run": {"events_read": check["events_read"], "partitions": len(check["partitions"]),
                          "every_partition_at_end": at_end},
        "single_run": {k: ref[k] for k in ("events_read", "duplicates_dropped", "events_written", "files_written")},
        "events_rows": {"shared": rows, "distinct_ids": distinct, "single": ref_rows},
        "events_files_byte_identical": ev_identical,
        "summary_tables": {k: {"files": v["files"], "bytes_differ": len(v["bytes_differ"])} for k, v in table_report.items()},
        "leftovers": {"shared": left_shared, "single": left_single},
        "store": store,
        "published": published and {k: v for k, v in published.items() if k != "differ"},
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "runtime_s": round(time.monotonic() - started, 1),
    }
    with capsys.disabled():
        print("\nscale-out summary: " + json.dumps(summary, indent=1), flush=True)

    # ------------------------------------------------ assertions
    assert at_end and check["events_read"] == 0, f"the group's committed offsets are not at the end: {check['partitions']}"
    assert len(check["partitions"]) == PARTITIONS, check["partitions"]
    assert [k["phase"] for k in runs.kills] == ["reading", "writing"], runs.kills
    assert ref["events_read"] == SCALE_OUT_LINES + 2 * DUP_BEFORE + DUP_AFTER, ref
    assert ref["events_written"] == SCALE_OUT_LINES, ref
    (only_shared, some_a), (only_single, some_b) = events_diff
    assert (only_shared, only_single) == (0, 0), (
        f"events differ: {only_shared} rows only in the shared warehouse, e.g. {some_a}; "
        f"{only_single} only in the single run's, e.g. {some_b}"
    )
    assert rows == distinct == ref_rows == SCALE_OUT_LINES, (rows, distinct, ref_rows)
    assert "traffic_daily" in tables and "visits" in tables and "traffic_weekly" in tables, tables
    for table, r in table_report.items():
        assert not r["only_shared"] and not r["only_single"], f"{table}: files differ: {r}"
        (x, sx), (y, sy) = r["rows"]
        assert (x, y) == (0, 0), f"{table}: {x} rows only in the shared warehouse (e.g. {sx}), {y} only in the single's (e.g. {sy})"
        assert not r["bytes_differ"], f"{table}: same rows, but these files differ in bytes: {r['bytes_differ']}"
    assert not left_shared, f"left in the shared warehouse: {left_shared}"
    assert not left_single, f"left in the single run's warehouse: {left_single}"
    if published:
        assert not published["differ"], f"the object store and the staging directory differ: {published['differ'][:10]}"
        assert published["events_rows"] == SCALE_OUT_LINES, published


def published_check(s3, prefix, staging):
    """What the object store holds against the staging directory's tables
    (objects only on one side or with other bytes), and the events rows
    DuckDB reads there; the prefix is removed afterwards."""
    fs = ff.s3_filesystem(s3)
    try:
        objects, local = ff.s3_tables(fs, prefix), ff.published_files(staging)
        differ = sorted(k for k in objects.keys() | local.keys() if objects.get(k) != local.get(k))
        con, source = ff.duckdb_on_s3(s3, fs)
        rows = con.execute(f"SELECT count(*) FROM {source(prefix + '/events')}").fetchall()[0][0]
        con.close()
        return {"objects": len(objects), "differ": differ, "events_rows": rows}
    finally:
        try:
            fs.delete_dir(prefix)
        except (FileNotFoundError, OSError):
            pass
