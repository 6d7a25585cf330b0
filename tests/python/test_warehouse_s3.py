"""`footfall aggregate --warehouse s3://bucket/prefix` against the real broker
and the local S3 server (deploy/s3/local-s3.sh): the object store holds
exactly the tables of the staging directory, byte for byte, and those of a
run into a local warehouse; DuckDB and pyarrow read them there; a run that
the object store refuses exits 69, changes nothing and commits nothing, and
the next run publishes everything; a lost staging directory is restored from
the bucket and runs go on from it.

Needs FOOTFALL_KAFKA_BROKERS and the variables `deploy/s3/local-s3.sh env`
prints (a failure under CI=true or FOOTFALL_REQUIRE_KAFKA/S3=1, else a skip)."""

import json
import os
import subprocess
import sys
import time

import footfall_support as ff

import pyarrow.dataset as ds  # a missing analyst client is a failure, not a skip
import pyarrow.parquet as pq

LINES = 12_000
MORE = 3_000


def genlog(path, lines, seed):
    with open(path, "wb") as f:
        subprocess.run([sys.executable, os.path.join(ff.ROOT, "deploy", "bench", "genlog.py"), "--lines", str(lines),
                        "--days", "2", "--seed", str(seed)], stdout=f, check=True, timeout=120)


def aggregate(work, config, group, warehouse, env=None, ok=(0,), extra=()):
    p = ff.run(["aggregate", "--config", config, "--group", group, "--warehouse", warehouse, "--json", *extra],
               work, ok=ok, env=env)
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def assert_meta_published(fs, prefix, staging):
    """The bucket holds the staging directory's metadata, under its published name."""
    with open(os.path.join(staging, ".footfall.json"), "rb") as f:
        assert ff.s3_objects(fs, prefix)[ff.META_OBJECT] == f.read()


def test_an_s3_warehouse_holds_the_tables_of_a_local_one(tmp_path, capsys):
    brokers = ff.require_env("FOOTFALL_KAFKA_BROKERS")[0]
    s3 = ff.require_s3_env()
    fs = ff.s3_filesystem(s3)
    work = str(tmp_path)
    topic = f"footfall-s3-warehouse.{os.getpid()}.{time.time_ns()}"
    prefix = f"{s3['bucket']}/{topic}"
    url = f"s3://{prefix}"
    xdg = os.path.join(work, "xdg")
    env = {"XDG_STATE_HOME": xdg}
    staging = os.path.join(xdg, "footfall", "staging", "s3", s3["bucket"], topic)
    local = os.path.join(work, "local")
    try:
        # ------------------------------------------------ a topic, a run to S3, a run to a directory
        log = os.path.join(work, "access.log")
        genlog(log, LINES, 7)
        ff.run(["topics", "--brokers", brokers, "--topic", topic, "--partitions", "3"], work)
        config = ff.ingest(work, topic, [log])
        _, first = aggregate(work, config, f"{topic}.s3", url, env=env)
        _, ref = aggregate(work, config, f"{topic}.local", local)
        assert first["events_written"] == ref["events_written"] == LINES, (first, ref)
        assert os.path.isfile(os.path.join(staging, ".footfall.json")), "the default staging directory"

        objects = ff.s3_tables(fs, prefix)
        assert objects.keys() == ff.published_files(staging).keys() == ff.published_files(local).keys()
        assert objects == ff.published_files(staging), "the object store holds the staging tables, byte for byte"
        assert objects == ff.published_files(local), "and those of a local warehouse"
        assert not any(k.startswith((".", "_")) or "/." in k for k in objects), sorted(objects)[:5]
        assert_meta_published(fs, prefix, staging)
        tables = sorted({k.split("/")[0] for k in objects})
        assert {"events", "visits", "traffic_daily", "pages_daily", "traffic_weekly"} <= set(tables), tables

        # ------------------------------------------------ analysts read it there
        con, source = ff.duckdb_on_s3(s3, fs)
        counts = {}
        for t in tables:
            counts[t] = con.execute(f"SELECT count(*) FROM {source(f'{prefix}/{t}')}").fetchall()[0][0]
            want = pq.ParquetDataset(os.path.join(local, t)).read().num_rows
            assert counts[t] == want, (t, counts[t], want)
        dates = con.execute(f"SELECT count(DISTINCT date) FROM {source(f'{prefix}/events')}").fetchall()[0][0]
        con.close()
        assert counts["events"] == LINES and dates >= 2, (counts, dates)
        by_pyarrow = ds.dataset(f"{prefix}/events", filesystem=fs, format="parquet", partitioning="hive").count_rows()
        assert by_pyarrow == LINES

        # ------------------------------------------------ the object store refuses: exit 69, nothing changes
        more = os.path.join(work, "more.log")
        genlog(more, MORE, 8)
        ff.ingest(work, topic, [more], state="state-more", config="more.toml")
        before_local = ff.published_files(staging)
        wrong = dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret")
        p, _ = aggregate(work, config, f"{topic}.s3", url, env=wrong, ok=(69,))
        err = p.stderr.decode(errors="replace")
        assert "object store" in err and "nothing was committed" in err, err
        assert "not-the-secret" not in err and s3["secret"] not in err, err
        assert ff.published_files(staging) == before_local, "no local change without its upload"
        assert ff.s3_tables(fs, prefix) == objects

        # ------------------------------------------------ the next run publishes it all
        _, second = aggregate(work, config, f"{topic}.s3", url, env=env)
        _, ref2 = aggregate(work, config, f"{topic}.local", local)
        assert second["events_read"] == ref2["events_read"] == MORE, (second, ref2)
        objects = ff.s3_tables(fs, prefix)
        assert objects == ff.published_files(staging) == ff.published_files(local)
        # Nothing new: nothing written, nothing uploaded.
        _, third = aggregate(work, config, f"{topic}.s3", url, env=env)
        assert (third["events_read"], third["files_written"]) == (0, 0), third
        assert ff.s3_tables(fs, prefix) == objects

        # ------------------------------------------------ footfall check asks the object store
        for e, line in ((env, "ok    store"), (wrong, "FAIL  store")):
            p = ff.run(["check", "--config", config, "--group", f"{topic}.s3", "--warehouse", url], work,
                       ok=range(256), env=e)
            out = p.stdout.decode(errors="replace")
            assert any(l.startswith(line) for l in out.splitlines()), out
            assert "not-the-secret" not in out, out

        # ------------------------------------------------ the staging directory is bound to its URL
        p, _ = aggregate(work, config, f"{topic}.s3", f"s3://{s3['bucket']}/elsewhere", env=env, ok=(78,),
                         extra=("--staging", staging))
        assert f"published to {url}" in p.stderr.decode(errors="replace")

        # ------------------------------------------------ the staging directory is lost: restored from the bucket
        meta = json.load(open(os.path.join(staging, ".footfall.json")))
        lost = staging + ".lost"
        os.rename(staging, lost)
        p, _ = aggregate(work, config, f"{topic}.s3", url, env=env, ok=(78,))
        assert "--restore" in p.stderr.decode(errors="replace")
        p = ff.run(["check", "--config", config, "--group", f"{topic}.s3", "--warehouse", url], work,
                   ok=range(1, 256), env=env)
        out = p.stdout.decode(errors="replace")
        assert any(l.startswith("FAIL  store") and "published warehouse" in l for l in out.splitlines()), out
        assert "--restore" in out, out
        p = ff.run(["aggregate", "--config", config, "--warehouse", url, "--restore", "--json"], work, env=env)
        restored = json.loads(p.stdout)
        assert (restored["files"], restored["skipped"]) == (len(objects), []), restored
        assert restored["bytes"] == sum(len(b) for b in objects.values()), restored
        assert ff.published_files(staging) == objects, "the tables, byte for byte"
        restored_meta = json.load(open(os.path.join(staging, ".footfall.json")))
        assert restored_meta.pop("staging") != meta.pop("staging"), "a staging directory of its own"
        assert restored_meta == meta, "and the binding"
        assert_meta_published(fs, prefix, staging)
        p = ff.run(["aggregate", "--config", config, "--warehouse", url, "--restore"], work, env=env, ok=(78,))
        assert "in use" in p.stderr.decode(errors="replace")
        # Runs go on from it: new events counted once, the same tables as the local warehouse's.
        newer = os.path.join(work, "newer.log")
        genlog(newer, MORE, 9)
        ff.ingest(work, topic, [newer], state="state-newer", config="newer.toml")
        _, fourth = aggregate(work, config, f"{topic}.s3", url, env=env)
        _, ref3 = aggregate(work, config, f"{topic}.local", local)
        assert fourth["events_read"] == ref3["events_read"] == MORE, (fourth, ref3)
        assert fourth["events_written"] == ref3["events_written"], (fourth, ref3)
        objects = ff.s3_tables(fs, prefix)
        assert objects == ff.published_files(staging) == ff.published_files(local)
        assert_meta_published(fs, prefix, staging)
        # The lost directory comes back: superseded, its runs are refused and change nothing.
        p, _ = aggregate(work, config, f"{topic}.s3", url, env=env, ok=(78,), extra=("--staging", lost))
        assert "was superseded" in p.stderr.decode(errors="replace"), p.stderr
        assert ff.s3_tables(fs, prefix) == objects
        assert_meta_published(fs, prefix, staging)
        lost_config = os.path.join(work, "lost.toml")
        with open(lost_config, "w") as f:
            f.write(open(config).read() + f'\n[aggregate]\nstaging = "{lost}"\n')
        p = ff.run(["check", "--config", lost_config, "--group", f"{topic}.s3", "--warehouse", url], work,
                   ok=range(1, 256), env=env)
        out = p.stdout.decode(errors="replace")
        assert any(l.startswith("FAIL  store") and "was superseded" in l for l in out.splitlines()), out

        # ------------------------------------------------ a bucket that does not exist: exit 78, named
        missing = f"s3://no-such-bucket-{os.getpid()}/{topic}"
        p, _ = aggregate(work, config, f"{topic}.missing", missing, env=env, ok=(78,),
                         extra=("--staging", os.path.join(work, "staging-missing")))
        err = p.stderr.decode(errors="replace")
        assert f"{missing}: the bucket does not exist" in err, err
        assert "<Error>" not in err, "no XML of the store's answer"
        p = ff.run(["check", "--config", config, "--group", f"{topic}.missing", "--warehouse", missing], work,
                   ok=range(256), env=env)
        out = p.stdout.decode(errors="replace")
        store = [l for l in out.splitlines() if l.startswith("FAIL  store")]
        assert p.returncode != 0 and store and "the bucket does not exist" in store[0], out
        with capsys.disabled():
            print(f"\ns3 warehouse: {len(objects)} objects in {len(tables)} tables, rows {counts}", flush=True)
    finally:
        try:
            fs.delete_dir(prefix)
        except (FileNotFoundError, OSError):
            pass
