"""footfall's privacy corpus end to end: nothing planted leaves footfall.

tests/privacy/generate.py plants personal data of every category footfall
promises to scrub (client addresses in every textual form, ident and user
names, e-mail addresses, IP literals, UUIDs, JWTs, hex and base64 tokens,
phone and card numbers, access keys, secret query values, cookie values) in
every place a line can carry it, plus lines that are rejected. This test runs
the corpus through `footfall parse`, `footfall ingest` into the real broker
(visits and dead-letter topics) and `footfall aggregate` into Parquet, all at
debug log level, then searches every byte footfall wrote (both topics read back
with kcat: keys, headers and values; every file of the warehouse, raw and
decoded with pyarrow; every output and log line) for every planted value,
plain and percent-encoded. Needs FOOTFALL_KAFKA_BROKERS (a missing broker is a
failure under FOOTFALL_REQUIRE_KAFKA=1 or CI=true, else the test is skipped).
"""

import filecmp
import glob
import json
import os
import subprocess
import time
import sys
import urllib.parse

import pyarrow.parquet as pq

import footfall_support
from footfall_support import require_env

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "privacy")
COOKIE_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" "$http_cookie"'
)
APACHE_FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"'
sys.path.insert(0, CORPUS)
from generate import CUSTOM_FORMAT  # noqa: E402  (one home: the script that makes the corpus)
# (file, parse flags, [source.parse] table)
SOURCES = [
    ("combined.log", ["-f", "combined"], {"format": "combined"}),
    ("apache.log", ["--log-format", APACHE_FORMAT], {"log_format": APACHE_FORMAT}),
    ("cookies.log", ["--log-format", COOKIE_FORMAT, "--session-cookie", "sid"],
     {"log_format": COOKIE_FORMAT, "session_cookie": "sid"}),
    ("nginx.json", ["-f", "nginx-json", "--session-cookie", "sid"], {"format": "nginx-json", "session_cookie": "sid"}),
    ("custom.log", ["--log-format", CUSTOM_FORMAT], {"log_format": CUSTOM_FORMAT}),
]


def brokers():
    return require_env("FOOTFALL_KAFKA_BROKERS")[0]


def run(args, cwd, ok=(0,)):
    return footfall_support.run(args, cwd, ok, env={"RUST_LOG": "debug"}, timeout=300)


def planted():
    with open(os.path.join(CORPUS, "planted.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [(cat, place, value) for cat, place, value in rows]


def forms(value):
    """The value as written and as it may be percent-encoded."""
    out = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote(value), urllib.parse.quote_plus(value)}
    return {f for f in out if f}


def toml_str(s):
    return json.dumps(s)


def test_corpus_is_what_the_script_makes(tmp_path):
    subprocess.run(["python3", os.path.join(CORPUS, "generate.py"), str(tmp_path)], check=True)
    for name in os.listdir(tmp_path):
        assert filecmp.cmp(tmp_path / name, os.path.join(CORPUS, name), shallow=False), (
            f"tests/privacy/{name} differs from what generate.py makes: run python3 tests/privacy/generate.py"
        )


def test_privacy_corpus_leaks_nothing(tmp_path):
    b = brokers()
    work = str(tmp_path)
    keyring = os.path.join(work, "keyring")
    haystacks = []  # (where, text)

    # 1. parse, with rejects kept.
    for name, flags, _ in SOURCES:
        ev, rej = os.path.join(work, f"{name}.events"), os.path.join(work, f"{name}.rejects")
        p = run(["parse", "--keyring", keyring, *flags, "--rejects", rej, "-o", ev, os.path.join(CORPUS, name)], work)
        haystacks.append((f"parse {name} stderr", p.stderr.decode(errors="replace")))
        for path in (ev, rej):
            haystacks.append((f"parse {name} output {os.path.basename(path)}", open(path, encoding="utf-8", errors="replace").read()))
    for name, rejects in (("combined.log", 4), ("cookies.log", 1), ("custom.log", 1)):
        parsed = sum(1 for _ in open(os.path.join(work, f"{name}.rejects")))
        assert parsed == rejects, f"the rejected lines of {name} are rejected"

    # 2. ingest into the real broker, visits and dead-letter topics, debug logging.
    topic = f"privacy.{os.getpid()}.{time.time_ns()}"
    run(["topics", "--brokers", b, "--topic", topic, "--dlq-topic", f"{topic}.dlq", "--partitions", "3"], work)
    config = os.path.join(work, "footfall.toml")
    with open(config, "w") as f:
        f.write(f'[kafka]\nbrokers = {toml_str(b)}\n[kafka.topics.visits]\nname = {toml_str(topic)}\n')
        f.write(f'[kafka.topics.dead_letter]\nname = {toml_str(topic + ".dlq")}\n')
        f.write(f'[ingest]\nstate_dir = {toml_str(os.path.join(work, "state"))}\n[http]\nenabled = false\n')
        f.write(f'[keys]\ndir = {toml_str(keyring)}\n[log]\nlevel = "debug"\n')
        for name, _, parse in SOURCES:
            f.write(f'[[source]]\ntype = "file"\nname = {toml_str(name)}\npaths = [{toml_str(os.path.join(CORPUS, name))}]\nfollow = false\n')
            f.write("[source.parse]\n" + "".join(f"{k} = {toml_str(v)}\n" for k, v in parse.items()))
    p = run(["ingest", "--config", config], work)
    haystacks.append(("ingest stderr", p.stderr.decode(errors="replace")))

    # 3. aggregate into Parquet, debug logging.
    wh = os.path.join(work, "wh")
    p = run(["aggregate", "--brokers", b, "--topic", topic, "--group", f"{topic}.agg", "--warehouse", wh, "--min-visitors", "1"], work)
    haystacks.append(("aggregate stderr", p.stderr.decode(errors="replace")))

    # 4. both topics, read back with kcat: keys, headers and values.
    for t in (topic, f"{topic}.dlq"):
        out = subprocess.run(
            ["kcat", "-C", "-b", b, "-t", t, "-e", "-q", "-f", "%k\t%h\t%s\n"], capture_output=True, timeout=120, check=True
        ).stdout.decode(errors="replace")
        assert out.strip(), f"topic {t} is empty"
        haystacks.append((f"topic {t}", out))
    dlq_lines = [l for l in haystacks[-1][1].splitlines() if l.strip()]
    assert len(dlq_lines) == 6, "every rejected line reached the dead-letter topic"

    # 5. every file of the warehouse, raw and decoded.
    files = [p for p in glob.glob(os.path.join(wh, "**", "*"), recursive=True) if os.path.isfile(p)]
    assert any(p.endswith(".parquet") for p in files)
    for path in files:
        raw = open(path, "rb").read()
        haystacks.append((f"file {os.path.relpath(path, wh)}", raw.decode("latin-1")))
        if path.endswith(".parquet"):
            haystacks.append((f"rows of {os.path.relpath(path, wh)}", json.dumps(pq.read_table(path).to_pylist(), default=str)))

    # 6. search.
    found = []
    for cat, place, value in planted():
        for form in forms(value):
            for where, text in haystacks:
                if form in text or form.lower() in text.lower():
                    i = text.lower().find(form.lower())
                    found.append(f"{cat} ({place}) {form!r} in {where}: …{text[max(0, i - 60):i + len(form) + 60]!r}…")
    assert not found, f"{len(found)} planted values found:\n" + "\n".join(found[:60])
