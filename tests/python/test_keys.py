"""Checks footfall's keyring end to end: the binary, a real Kafka broker and
the Parquet warehouse, on the shared elastic log (10,000 combined lines,
2015-05-17 to 20).

The broker comes from FOOTFALL_KAFKA_BROKERS; without it the Kafka tests are
skipped, or fail when FOOTFALL_REQUIRE_KAFKA=1 or CI=true. The binary is the
one in target/ (FOOTFALL_BIN overrides); a missing binary is a failure.
Every topic is new (named after the pid and the clock), so runs never share
data.

Checks:

* a restart changes nothing: with the default keyring and state directories
  (cwd-relative), ingesting the log once, then following it with a SIGKILL and
  a restart and a SIGTERM, then once more, gives a warehouse whose event ids
  and (event id, visitor id) pairs are those of `footfall parse`, one row per
  line, and one keyring made once;
* two hosts that share an export (`keys export` / `keys import`) give every
  line the same event and visitor ids, on the export's day and later days,
  and the visitor ids follow the documented BLAKE3 ratchet;
* after `keys advance`, no chain value or day key of a destroyed day is
  anywhere in the state directory or the warehouse (hex in either case, or
  raw), and `erase` reports such a day as unlinkable and leaves it alone;
* `lookup` finds exactly one person's events, `erase` removes exactly them,
  the summaries then equal those of a warehouse built without the person's
  lines, a replay of the topic does not bring them back, and the ledger names
  nobody;
* keyring directories are 0700 and their files and exports 0600 even under
  umask 000;
* `footfall keys ACTION` takes --keyring (and status its --json) after the
  action too, as the messages that tell users to run `footfall keys init` or
  `footfall keys import FILE` with --keyring DIR lead them to type.
"""

import csv
import gzip
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from footfall_support import DATE_TABLES, binary, require_env

import blake3  # noqa: E402  (the ratchet's own hash; a missing package is a failure, not a skip)
import duckdb  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ELASTIC = os.path.join(ROOT, "tests", "data", "elastic-apache-logs", "apache_logs.gz")
ELASTIC_LINES = 10_000
ELASTIC_DAYS = ["2015-05-17", "2015-05-18", "2015-05-19", "2015-05-20"]

CREATED = "created a new keyring"
STEP_CTX = "footfall ratchet v1 step"
DAY_KEY_CTX = "footfall ratchet v1 day key"


BIN = binary()


# ---------------------------------------------------------------- helpers


def clean_env(**extra):
    """The environment without anything that would choose a keyring or config for us."""
    env = {k: v for k, v in os.environ.items() if k not in ("FOOTFALL_KEYRING", "FOOTFALL_CONFIG")}
    env.update(extra)
    return env


def _tail(text, n=4000):
    text = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return text if len(text) <= n else "..." + text[-n:]


def ff(*args, cwd, check=True, timeout=600, preexec_fn=None, env=None):
    """Run `footfall ARGS` in `cwd`; a non-zero exit fails with its stderr."""
    cmd = [BIN, *map(str, args)]
    p = subprocess.run(
        cmd,
        cwd=cwd,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )
    p.stdout = p.stdout.decode("utf-8", "surrogateescape")
    p.stderr = p.stderr.decode("utf-8", "replace")
    if check:
        assert p.returncode == 0, (
            f"`{' '.join(cmd)}` (cwd {cwd}) exited {p.returncode}\n--- stderr:\n{_tail(p.stderr)}"
            f"\n--- stdout:\n{_tail(p.stdout, 1500)}"
        )
    return p


@pytest.fixture(scope="module")
def brokers():
    return require_env("FOOTFALL_KAFKA_BROKERS")[0]


_TOPICS = [0]


def new_topic(brokers, hint, cwd):
    """A new topic (and its dead-letter topic) with 3 partitions."""
    _TOPICS[0] += 1
    topic = f"footfall-keys-{hint}-{os.getpid()}-{time.time_ns()}-{_TOPICS[0]}"
    ff("topics", "--brokers", brokers, "--topic", topic, "--dlq-topic", f"{topic}.dlq", "--partitions", 3, cwd=cwd)
    return topic


def ingest_args(brokers, topic, log, once=True, state_dir=None, keyring=None):
    args = ["ingest", "--brokers", brokers, "--topic", topic, "--dlq-topic", f"{topic}.dlq"]
    args += ["--format", "combined", "--http-listen", "off"]
    if once:
        args.append("--once")
    if state_dir is not None:
        args += ["--state-dir", state_dir]
    if keyring is not None:
        args += ["--keyring", keyring]
    return args + [log]


def ingest(brokers, topic, log, cwd, **kw):
    return ff(*ingest_args(brokers, topic, log, **kw), cwd=cwd)


def aggregate(brokers, topic, warehouse, cwd, group, *extra):
    return ff("aggregate", "--brokers", brokers, "--topic", topic, "--group", group, "--warehouse", warehouse,
              *extra, cwd=cwd)


def end_offsets(brokers, topic, partitions=3):
    """Sum of the partitions' end offsets (messages written so far), or None without kcat."""
    if not shutil.which("kcat"):
        return None
    args = ["kcat", "-Q", "-b", brokers]
    for p in range(partitions):
        args += ["-t", f"{topic}:{p}:-1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    found = [int(n) for n in re.findall(r"\[\d+\] offset (-?\d+)", out)]
    assert len(found) == partitions, f"kcat -Q said: {out!r}"
    return sum(found)


def read_topic(brokers, topic, cwd, group):
    """Every event on the topic, as dicts (kcat; without kcat, through aggregate and the events table)."""
    if shutil.which("kcat"):
        out = subprocess.run(
            ["kcat", "-C", "-b", brokers, "-t", topic, "-e", "-q", "-f", "%s\n"],
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout.decode("utf-8", "surrogateescape")
        return [json.loads(l) for l in out.splitlines() if l.strip()]
    wh = os.path.join(cwd, f"wh-{group}")
    aggregate(brokers, topic, wh, cwd, group)
    con = duckdb.connect()
    rows = con.execute(f"SELECT event_id, visitor_id, epoch(ts), path FROM {src(wh, 'events')}").fetchall()
    con.close()
    return [
        {
            "event_id": e,
            "visitor_id": v,
            "ts": datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "path": p,
        }
        for e, v, t, p in rows
    ]


def src(wh, table):
    return f"read_parquet('{wh}/{table}/*/*.parquet', hive_partitioning=true)"


def q(sql):
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def event_ids(wh):
    return {r[0] for r in q(f"SELECT event_id FROM {src(wh, 'events')}")}


def row_count(wh):
    return q(f"SELECT count(*) FROM {src(wh, 'events')}")[0][0]


def multiset_diff(a_sql, b_sql, limit=5):
    """Rows of a not in b and of b not in a (EXCEPT ALL both ways)."""
    only_a = q(f"SELECT * FROM (({a_sql}) EXCEPT ALL ({b_sql})) LIMIT {limit}")
    only_b = q(f"SELECT * FROM (({b_sql}) EXCEPT ALL ({a_sql})) LIMIT {limit}")
    return only_a, only_b


def assert_summaries_equal(wa, wb, label):
    for table in DATE_TABLES:
        na = q(f"SELECT count(*) FROM {src(wa, table)}")[0][0]
        nb = q(f"SELECT count(*) FROM {src(wb, table)}")[0][0]
        only_a, only_b = multiset_diff(f"SELECT * FROM {src(wa, table)}", f"SELECT * FROM {src(wb, table)}")
        assert not only_a and not only_b and na == nb, (
            f"{label}: {table} differs ({na} rows vs {nb})\n only in {wa}: {only_a}\n only in {wb}: {only_b}"
        )


def read_log_lines(path=ELASTIC):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [l.decode("utf-8", "surrogateescape") for l in lines]


_MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
_LINE = re.compile(r'^(\S+) \S+ \S+ \[(\d\d)/(\w{3})/(\d{4}):[^\]]*\] .*"((?:[^"\\]|\\.)*)"\s*$')


def client_agent_day(line):
    """(client address, user agent, YYYY-MM-DD) of a combined line: the first
    field and the last quoted field (a cut-off final quote runs to the end)."""
    m = _LINE.match(line)
    if m:
        ip, dd, mon, yyyy, ua = m.groups()
    else:
        m = re.match(r"^(\S+) \S+ \S+ \[(\d\d)/(\w{3})/(\d{4}):", line)
        assert m, f"not a combined line: {line!r}"
        ip, dd, mon, yyyy = m.groups()
        ua = line[line.rindex('"') + 1 :]
    return ip, ua, f"{yyyy}-{_MONTHS[mon]:02d}-{dd}"


def parse_ids(log, cwd, keyring=None):
    """`footfall parse` of the log: one (event_id, visitor_id) per line, in order."""
    args = ["parse", "--format", "combined"]
    if keyring is not None:
        args += ["--keyring", keyring]
    p = ff(*args, log, cwd=cwd)
    events = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return [(e["event_id"], e["visitor_id"]) for e in events], p


def keys_status(keyring, cwd):
    args = ["keys"] + (["--keyring", keyring] if keyring is not None else []) + ["--json"]
    return json.loads(ff(*args, cwd=cwd).stdout)


def read_keyring_toml(path):
    """format, installation, from, chain (and newest_day) of a keyring file or export."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r'^\s*(\w+)\s*=\s*"?([^"\n]*)"?\s*$', line)
            if m:
                out[m.group(1)] = m.group(2)
    assert {"format", "installation", "from", "chain"} <= out.keys(), f"{path}: {out.keys()}"
    return out


def derive(ctx, data):
    return blake3.blake3(data, derive_key_context=ctx).digest()


def chain_values(chain_hex, start, end):
    """{day: chain(day)} for every day from start through end."""
    c = bytes.fromhex(chain_hex)
    d = start
    out = {}
    while d <= end:
        out[d] = c
        c = derive(STEP_CTX, c)
        d += timedelta(days=1)
    return out


def day_key(chain_hex, start, day):
    return derive(DAY_KEY_CTX, chain_values(chain_hex, start, day)[day])


def expected_visitor_id(dkey, site, ip, ua):
    """As crates/footfall-parse/src/privacy.rs builds it: keyed BLAKE3 of
    site \\0i\\0 address \\0 user agent, first 8 bytes as hex."""
    basis = site.encode() + b"\0i\0" + ip.encode("utf-8", "surrogateescape") + b"\0" + ua.encode("utf-8", "surrogateescape")
    return blake3.blake3(basis, key=dkey).digest()[:8].hex()


def parse_day(s):
    return date.fromisoformat(s)


def assert_private(d):
    mode = stat.S_IMODE(os.stat(d).st_mode)
    assert mode == 0o700, f"{d} is {oct(mode)}, want 0o700"
    names = os.listdir(d)
    assert names, f"{d} is empty"
    for name in names:
        p = os.path.join(d, name)
        mode = stat.S_IMODE(os.stat(p).st_mode)
        assert mode == 0o600, f"{p} is {oct(mode)}, want 0o600"


def fingerprint_in(stderr):
    m = re.search(r"fingerprint ([0-9a-f]{16})", stderr)
    assert m, f"no fingerprint in: {stderr!r}"
    return m.group(1)


# ---------------------------------------------------------------- 1. restart


def test_restart_changes_nothing(brokers, tmp_path):
    cwd = str(tmp_path)
    lines = read_log_lines()
    assert len(lines) == ELASTIC_LINES
    topic = new_topic(brokers, "restart", cwd)

    # 1. once, default keyring and state directory (both made under cwd/.state).
    first = ingest(brokers, topic, ELASTIC, cwd=cwd)
    assert CREATED in first.stderr, f"the first ingest did not say it made the keyring:\n{first.stderr}"
    fp = fingerprint_in(first.stderr[first.stderr.index(CREATED) :])
    assert os.path.isfile(os.path.join(cwd, ".state", "keyring", "keyring.toml"))
    assert os.listdir(os.path.join(cwd, ".state", "ingest")), "no checkpoint under the default .state/ingest"
    after_once = end_offsets(brokers, topic)
    assert after_once in (None, ELASTIC_LINES), f"the first --once run wrote {after_once} messages"

    # 2. follow with a fresh state dir: SIGKILL part way, restart, SIGTERM at the end.
    follow = ingest_args(brokers, topic, ELASTIC, once=False, state_dir=os.path.join(cwd, "follow-state"))
    stderrs = []

    def start():
        errf = open(os.path.join(cwd, f"follow-{len(stderrs)}.err"), "w+")
        stderrs.append(errf)
        return subprocess.Popen([BIN, *follow], cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=errf)

    def err_text(i):
        stderrs[i].seek(0)
        return stderrs[i].read()

    proc = start()
    deadline = time.monotonic() + 30
    if after_once is None:
        time.sleep(1.5)
    else:
        while time.monotonic() < deadline and end_offsets(brokers, topic) <= ELASTIC_LINES:
            assert proc.poll() is None, f"the follower exited {proc.returncode}:\n{err_text(0)}"
            time.sleep(0.05)
    assert proc.poll() is None, f"the follower exited {proc.returncode}:\n{err_text(0)}"
    killed_at = end_offsets(brokers, topic)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    proc = start()
    try:
        if after_once is None:
            time.sleep(10)
        else:
            # Until the restarted follower has reached the end (>= one more
            # copy of every line) and the topic is still for a second.
            last, still_since = None, time.monotonic()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"the restarted follower exited {proc.returncode}:\n{err_text(1)}"
                n = end_offsets(brokers, topic)
                if n != last:
                    last, still_since = n, time.monotonic()
                elif n >= 2 * ELASTIC_LINES and time.monotonic() - still_since > 1.5:
                    break
                time.sleep(0.2)
            assert last >= 2 * ELASTIC_LINES, (
                f"the restarted follower did not reach the end: {last} messages "
                f"({killed_at} when the first was killed)\n{err_text(1)}"
            )
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, f"SIGTERM: the follower exited {rc}, want 0 (a clean stop)\n{err_text(1)}"
    assert os.listdir(os.path.join(cwd, "follow-state")), "the follower left no checkpoint in its --state-dir"

    # 3. once more, another fresh state dir (every line sent again).
    third = ingest(brokers, topic, ELASTIC, cwd=cwd, state_dir=os.path.join(cwd, "third-state"))

    wh = os.path.join(cwd, "wh")
    aggregate(brokers, topic, wh, cwd, group=f"{topic}-agg")

    pairs, parsed = parse_ids(ELASTIC, cwd)
    assert len(pairs) == ELASTIC_LINES, f"parse gave {len(pairs)} events for {ELASTIC_LINES} lines"

    for label, err in [("follower", err_text(0)), ("restarted follower", err_text(1)), ("third ingest", third.stderr),
                       ("parse", parsed.stderr)]:
        assert CREATED not in err, f"the {label} made another keyring:\n{err}"
    for f in stderrs:
        f.close()

    assert row_count(wh) == ELASTIC_LINES == len(lines)
    assert event_ids(wh) == {e for e, _ in pairs}
    got_pairs = set(q(f"SELECT event_id, visitor_id FROM {src(wh, 'events')}"))
    want_pairs = set(pairs)
    assert got_pairs == want_pairs, (
        f"{len(got_pairs - want_pairs)} (event_id, visitor_id) pairs not from parse, e.g. "
        f"{sorted(got_pairs - want_pairs)[:3]}; parse's missing: {sorted(want_pairs - got_pairs)[:3]}"
    )

    status = keys_status(None, cwd)
    assert status["fingerprint"] == fp, f"keys --json says {status['fingerprint']}, the first ingest made {fp}"
    assert os.path.realpath(os.path.join(cwd, str(status["dir"]))) == os.path.realpath(
        os.path.join(cwd, ".state", "keyring")
    )
    assert sorted(os.listdir(cwd + "/.state")) == ["ingest", "keyring"]


# ---------------------------------------------------------------- 2. two hosts


def test_two_hosts_agree(brokers, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    ka, kb = str(a / "keyring"), str(b / "keyring")
    export = str(tmp_path / "export.toml")

    init = ff("keys", "--keyring", ka, "init", cwd=str(a))
    ff("keys", "--keyring", ka, "advance", "--to", "2015-01-01", cwd=str(a))
    assert keys_status(ka, str(a))["held_from"] == "2015-01-01"
    ff("keys", "--keyring", ka, "export", "--out", export, cwd=str(a))
    exported = read_keyring_toml(export)
    assert exported["from"] == "2015-01-01"
    imp = ff("keys", "--keyring", kb, "import", export, cwd=str(b))
    assert fingerprint_in(init.stderr) == fingerprint_in(imp.stderr)
    with open(os.path.join(kb, "keyring.toml"), "rb") as f:
        imported = f.read()
    again = ff("keys", "--keyring", kb, "import", export, cwd=str(b), check=False)
    assert again.returncode != 0, "a second import into an existing keyring was accepted"
    with open(os.path.join(kb, "keyring.toml"), "rb") as f:
        assert f.read() == imported, "a refused import changed the keyring"

    clients = [
        ("192.0.2.10", "Mozilla/5.0 (X11; Linux x86_64; rv:38.0) Gecko/20100101 Firefox/38.0"),
        ("198.51.100.7", "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.152 Safari/537.36"),
        ("203.0.113.99", "curl/7.38.0"),
    ]
    lines = []
    for day, stamp in [("2015-05-17", "17/May/2015:09:%02d:00 +0000"), ("2015-07-30", "30/Jul/2015:18:%02d:00 +0000")]:
        for i, (ip, ua) in enumerate(clients):
            for j in range(2):
                minute = 10 * i + j
                path = f"/{day}/page-{i}-{j}.html"
                lines.append(
                    f'{ip} - - [{stamp % minute}] "GET {path} HTTP/1.1" 200 {100 + minute} "-" "{ua}"'
                )
    log = tmp_path / "two-days.log"
    log.write_text("\n".join(lines) + "\n")

    got = {}
    for host, cwd, keyring in [("a", a, ka), ("b", b, kb)]:
        topic = new_topic(brokers, f"host{host}", str(cwd))
        ingest(brokers, topic, str(log), cwd=str(cwd), state_dir=str(cwd / "state"), keyring=keyring)
        events = read_topic(brokers, topic, str(cwd), group=f"{topic}-read")
        by_line = {}
        for e in events:
            by_line.setdefault((e["ts"], e["path"]), set()).add((e["event_id"], e["visitor_id"]))
        got[host] = by_line

    want_keys = set()
    for line in lines:
        m = re.search(r"\[(\d\d)/(\w{3})/(\d{4}):(\d\d:\d\d:\d\d) \+0000\] \"GET (\S+)", line)
        dd, mon, yyyy, hms, path = m.groups()
        want_keys.add((f"{yyyy}-{_MONTHS[mon]:02d}-{dd}T{hms}Z", path))
    for host in "ab":
        assert set(got[host]) == want_keys, f"host {host}: events for {sorted(got[host])} want {sorted(want_keys)}"
        multi = {k: v for k, v in got[host].items() if len(v) != 1}
        assert not multi, f"host {host}: a line with several ids: {multi}"
    assert got["a"] == got["b"], "hosts A and B gave different ids:\n" + "\n".join(
        f"  {k}: A {got['a'][k]} B {got['b'][k]}" for k in sorted(want_keys) if got["a"][k] != got["b"][k]
    )

    # The visitor ids are the ratchet's, from the exported position.
    start = parse_day(exported["from"])
    for line in lines:
        ip, ua, day = client_agent_day(line)
        m = re.search(r"\[(\d\d)/(\w{3})/(\d{4}):(\d\d:\d\d:\d\d) \+0000\] \"GET (\S+)", line)
        key = (f"{day}T{m.group(4)}Z", m.group(5))
        ((_, vid),) = got["a"][key]
        want = expected_visitor_id(day_key(exported["chain"], start, parse_day(day)), "default", ip, ua)
        assert vid == want, f"{key}: visitor_id {vid}, the ratchet from the export gives {want}"
    vids = {d: {next(iter(v))[1] for k, v in got["a"].items() if k[0].startswith(d)} for d in ("2015-05-17", "2015-07-30")}
    assert len(vids["2015-05-17"]) == len(vids["2015-07-30"]) == len(clients)
    assert not vids["2015-05-17"] & vids["2015-07-30"], "visitor ids did not change between days"

    sa, sb = keys_status(ka, str(a)), keys_status(kb, str(b))
    assert sa["fingerprint"] == sb["fingerprint"] == fingerprint_in(init.stderr)


# ---------------------------------------------------------------- 3. destroyed keys


_HEX_RUN = re.compile(rb"[0-9a-fA-F]{64,}")


def find_secrets(data, raw, hexes):
    """Which of the 32-byte values (raw) or their hex forms (hexes, lower case) occur in data."""
    hits = set()
    for m in _HEX_RUN.finditer(data):
        run = m.group(0).lower()
        for i in range(len(run) - 63):
            if run[i : i + 64] in hexes:
                hits.add(run[i : i + 64].decode())
    prefixes = {v[:4] for v in raw}
    for i in range(len(data) - 31):
        if data[i : i + 4] in prefixes and data[i : i + 32] in raw:
            hits.add(data[i : i + 32].hex())
    return hits


def parquet_text(path):
    """Every value of a Parquet file, as text (its pages are compressed on disk)."""
    t = pq.read_table(path)
    parts = []
    for col in t.columns:
        for v in col.to_pylist():
            parts.append(v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape"))
    return b"\n".join(parts)


def test_old_keys_are_gone(brokers, tmp_path):
    cwd = str(tmp_path)
    state = tmp_path / "state"
    keyring = str(state / "keyring")
    export = str(tmp_path / "export.toml")
    wh = str(tmp_path / "wh")

    ff("keys", "--keyring", keyring, "init", cwd=cwd)
    ff("keys", "--keyring", keyring, "export", "--out", export, cwd=cwd)
    exported = read_keyring_toml(export)

    topic = new_topic(brokers, "oldkeys", cwd)
    ingest(brokers, topic, ELASTIC, cwd=cwd, state_dir=str(state), keyring=keyring)
    aggregate(brokers, topic, wh, cwd, group=f"{topic}-agg")
    assert row_count(wh) == ELASTIC_LINES

    ff("keys", "--keyring", keyring, "advance", "--to", "2015-05-18", cwd=cwd)
    status = keys_status(keyring, cwd)
    assert status["held_from"] == "2015-05-18", status

    start, last = parse_day(exported["from"]), date(2015, 5, 17)
    chains = chain_values(exported["chain"], start, last)
    secrets = set(chains.values()) | {derive(DAY_KEY_CTX, c) for c in chains.values()}
    hexes = {s.hex().encode() for s in secrets}
    # The search finds what it looks for: the export (outside the state dir) holds chain(from).
    with open(export, "rb") as f:
        assert chains[start].hex() in find_secrets(f.read(), secrets, hexes)
    assert bytes.fromhex(read_keyring_toml(os.path.join(keyring, "keyring.toml"))["chain"]) not in secrets

    scanned, found = 0, {}
    for top in (str(state), wh):
        for dirpath, _, names in os.walk(top):
            for name in names:
                p = os.path.join(dirpath, name)
                with open(p, "rb") as f:
                    data = f.read()
                hits = find_secrets(data, secrets, hexes)
                if name.endswith(".parquet"):
                    hits |= find_secrets(parquet_text(p), secrets, hexes)
                if hits:
                    found[p] = sorted(hits)[:3]
                scanned += 1
    assert scanned > 10, f"only {scanned} files under {state} and {wh}"
    assert not found, f"keys of destroyed days (before 2015-05-18) are still on disk: {found}"

    # erase cannot reach a day whose key is gone, and leaves it as it is.
    line = next(l for l in read_log_lines() if client_agent_day(l)[2] == "2015-05-17")
    ip, ua, _ = client_agent_day(line)
    vid = expected_visitor_id(derive(DAY_KEY_CTX, chains[last]), "default", ip, ua)
    count_sql = f"SELECT count(*), count(*) FILTER (visitor_id = '{vid}') FROM {src(wh, 'events')} WHERE date = '2015-05-17'"
    before = q(count_sql)[0]
    assert before[1] > 0, f"no events of {ip} on 2015-05-17 under visitor_id {vid}"
    p = ff("erase", "--warehouse", wh, "--keyring", keyring, "--client", ip, "--user-agent", ua,
           "--from", "2015-05-17", "--to", "2015-05-17", "--json", cwd=cwd)
    report = json.loads(p.stdout)
    assert "2015-05-17" in report["days_unlinkable"], report
    assert "2015-05-17" not in report["days_erased"], report
    assert report["rows_removed"] == 0, report
    assert "unlinkable" in p.stderr, p.stderr
    assert q(count_sql)[0] == before
    assert row_count(wh) == ELASTIC_LINES


# ---------------------------------------------------------------- 4. erase


FOLD = ("--min-visitors", "2")


def test_erase_is_exact_and_stays_erased(brokers, tmp_path):
    cwd = str(tmp_path)
    keyring = str(tmp_path / "keyring")
    ff("keys", "--keyring", keyring, "init", cwd=cwd)
    lines = read_log_lines()

    t1 = new_topic(brokers, "erase1", cwd)
    w1 = str(tmp_path / "w1")
    g1 = f"{t1}-agg"
    ingest(brokers, t1, ELASTIC, cwd=cwd, state_dir=str(tmp_path / "s1"), keyring=keyring)
    # Not the default threshold: the erasure must fold as the runs did (they
    # record it in the warehouse), without being told.
    aggregate(brokers, t1, w1, cwd, g1, *FOLD)
    all_ids = event_ids(w1)
    assert len(all_ids) == row_count(w1) == ELASTIC_LINES

    # The person seen on the most days (then most lines, then by name).
    days, counts = {}, {}
    for l in lines:
        ip, ua, day = client_agent_day(l)
        days.setdefault((ip, ua), set()).add(day)
        counts[(ip, ua)] = counts.get((ip, ua), 0) + 1
    person = min(days, key=lambda k: (-len(days[k]), -counts[k], k))
    ip, ua = person
    assert len(days[person]) >= 2
    mine = [i for i, l in enumerate(lines) if client_agent_day(l)[:2] == person]
    n = len(mine)

    pairs, _ = parse_ids(ELASTIC, cwd, keyring=keyring)
    assert len(pairs) == ELASTIC_LINES
    erased_ids = {pairs[i][0] for i in mine}
    erased_vids = {pairs[i][1] for i in mine}
    assert len(erased_ids) == n and erased_ids <= all_ids

    who = ["--warehouse", w1, "--keyring", keyring, "--client", ip, "--user-agent", ua]
    span = ["--from", ELASTIC_DAYS[0], "--to", ELASTIC_DAYS[-1]]

    # lookup: exactly the person's events, as JSON lines and as CSV.
    found = [json.loads(l) for l in ff("lookup", *who, *span, cwd=cwd).stdout.splitlines() if l.strip()]
    got = [e["event_id"] for e in found]
    assert len(got) == n and set(got) == erased_ids, (
        f"lookup gave {len(got)} events ({len(set(got) - erased_ids)} not the person's, "
        f"{len(erased_ids - set(got))} missing), want {n}"
    )
    assert {e["visitor_id"] for e in found} == erased_vids
    rows = list(csv.reader(io.StringIO(ff("lookup", *who, *span, "--format", "csv", cwd=cwd).stdout)))
    assert "event_id" in rows[0], f"CSV header: {rows[0]}"
    assert len(rows) == n + 1, f"CSV has {len(rows)} rows, want a header and {n}"
    col = rows[0].index("event_id")
    assert {r[col] for r in rows[1:]} == erased_ids

    # erase: exactly those rows go.
    report = json.loads(ff("erase", *who, *span, "--json", cwd=cwd).stdout)
    assert report["rows_removed"] == n, report
    assert sorted(report["days_erased"]) == sorted(days[person]), report
    assert report["days_unlinkable"] == [], report
    assert report["files_rewritten"] + report["files_removed"] > 0, report
    left = event_ids(w1)
    assert not left & erased_ids, f"{len(left & erased_ids)} erased events remain"
    assert left == all_ids - erased_ids, f"{len(all_ids - erased_ids - left)} other events went too"
    assert row_count(w1) == ELASTIC_LINES - n

    # The same log without the person's lines, through its own topic.
    rest = tmp_path / "without-person.log"
    with open(rest, "wb") as f:
        skip = set(mine)
        for i, l in enumerate(lines):
            if i not in skip:
                f.write(l.encode("utf-8", "surrogateescape") + b"\n")
    t2 = new_topic(brokers, "erase2", cwd)
    w2 = str(tmp_path / "w2")
    ingest(brokers, t2, str(rest), cwd=cwd, state_dir=str(tmp_path / "s2"), keyring=keyring)
    aggregate(brokers, t2, w2, cwd, f"{t2}-agg", *FOLD)
    assert row_count(w2) == ELASTIC_LINES - n
    assert_summaries_equal(w1, w2, "after erase")
    cols = [d[0] for d in duckdb.connect().execute(f"SELECT * FROM {src(w1, 'events')} LIMIT 0").description]
    # Ids of the others depend on byte offsets, which differ in the shorter log.
    exclude = [c for c in ("event_id", "offset", "source", "kafka_partition", "kafka_offset") if c in cols]
    quoted = ", ".join('"' + c + '"' for c in exclude)
    ex = f"EXCLUDE ({quoted})" if exclude else ""
    only1, only2 = multiset_diff(f"SELECT * {ex} FROM {src(w1, 'events')}", f"SELECT * {ex} FROM {src(w2, 'events')}")
    assert not only1 and not only2, f"events differ\n only in W1: {only1}\n only in W2: {only2}"

    # No resurrection: every line sent to T1 again, aggregated again.
    ingest(brokers, t1, ELASTIC, cwd=cwd, state_dir=str(tmp_path / "s3"), keyring=keyring)
    aggregate(brokers, t1, w1, cwd, g1, *FOLD)
    left = event_ids(w1)
    assert not left & erased_ids, f"a replay brought back {len(left & erased_ids)} erased events"
    assert left == all_ids - erased_ids
    assert row_count(w1) == ELASTIC_LINES - n
    assert_summaries_equal(w1, w2, "after the replay")
    # A recompute without flags folds as the runs did too.
    for day in ELASTIC_DAYS:
        ff("aggregate", "--warehouse", w1, "--recompute", day, cwd=cwd)
    assert_summaries_equal(w1, w2, "after a recompute of every day")

    ledger_path = os.path.join(w1, "_erasure", "ledger.jsonl")
    with open(ledger_path, encoding="utf-8") as f:
        ledger_text = f.read()
    entries = [json.loads(l) for l in ledger_text.splitlines() if l.strip()]
    assert len(entries) == 1, entries
    for secret in [ip, ua, *erased_vids, *erased_ids]:
        assert secret not in ledger_text, f"the ledger names {secret!r}"


# ---------------------------------------------------------------- 5. modes


def test_key_files_are_private_under_umask_000(tmp_path):
    cwd = str(tmp_path)
    umask0 = lambda: os.umask(0)  # noqa: E731
    d1 = str(tmp_path / "k1")
    d2 = tmp_path / "k2"
    d2.mkdir()
    sub = str(d2 / "sub")
    log = tmp_path / "one.log"
    with gzip.open(ELASTIC, "rb") as f:
        log.write_bytes(f.readline())

    ff("keys", "--keyring", d1, "init", cwd=cwd, preexec_fn=umask0)
    p = ff("parse", "--format", "combined", "--keyring", sub, str(log), cwd=cwd, preexec_fn=umask0)
    assert CREATED in p.stderr
    assert len(p.stdout.splitlines()) == 1
    for d in (d1, sub):
        assert os.path.isfile(os.path.join(d, "keyring.toml")), os.listdir(d)
        assert_private(d)

    out = str(tmp_path / "export.toml")
    ff("keys", "--keyring", d1, "export", "--out", out, cwd=cwd, preexec_fn=umask0)
    mode = stat.S_IMODE(os.stat(out).st_mode)
    assert mode == 0o600, f"{out} is {oct(mode)}, want 0o600"
    assert_private(d1)


def test_keys_options_after_the_action(tmp_path):
    cwd = str(tmp_path)
    d1, d2 = str(tmp_path / "k1"), str(tmp_path / "k2")
    out = str(tmp_path / "export.toml")
    init = ff("keys", "init", "--keyring", d1, cwd=cwd)
    fp = fingerprint_in(init.stderr)
    status = json.loads(ff("keys", "status", "--keyring", d1, "--json", cwd=cwd).stdout)
    assert status["fingerprint"] == fp
    ff("keys", "advance", "--to", "2015-01-01", "--keyring", d1, cwd=cwd)
    ff("keys", "export", "--out", out, "--keyring", d1, cwd=cwd)
    ff("keys", "import", out, "--keyring", d2, cwd=cwd)
    assert keys_status(d2, cwd)["fingerprint"] == fp
    assert keys_status(d2, cwd)["held_from"] == "2015-01-01"
    assert not os.path.exists(os.path.join(cwd, ".state")), "a keyring was made in the default place"
