"""What every Python test needs to run footfall: the binary, and the
environment a broker test requires (a missing variable is a failure under
FOOTFALL_REQUIRE_KAFKA=1 or CI=true, else the test is skipped, saying why)."""

import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# The tables of one date, of weeks and months, and every table of a warehouse (docs/tables.md).
DATE_TABLES = [
    "traffic_daily",
    "traffic_hourly",
    "pages_daily",
    "clients_daily",
    "status_daily",
    "search_terms_daily",
    "referrers_daily",
    "campaigns_daily",
    "transitions_daily",
    "routes_hourly",
    "visits",
]
PERIOD_TABLES = ["traffic_weekly", "traffic_monthly"]
TABLES = ["events", *DATE_TABLES, *PERIOD_TABLES]


def binary():
    """The footfall binary: FOOTFALL_BIN, else target/{debug,release} (CARGO_TARGET_DIR honoured)."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    found = os.environ.get("FOOTFALL_BIN") or next(
        (p for p in (os.path.join(target, d, "footfall") for d in ("debug", "release")) if os.path.exists(p)),
        None,
    )
    assert found, f"no footfall binary in {target}: run `cargo build -p footfall` first, or set FOOTFALL_BIN"
    return os.path.abspath(found)


def require_env(*names):
    """The values of `names`; fails or skips the test when one is missing."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        why = f"{', '.join(missing)} not set: this test needs a real Kafka broker (deploy/test.sh sets it from deploy/kafka/local-kafka.sh env)"
        if os.environ.get("FOOTFALL_REQUIRE_KAFKA") == "1" or os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return [os.environ[n] for n in names]


def _env(env=None):
    """The caller's environment with `env` over it, without its keyring and config variables."""
    env = dict(os.environ, **(env or {}))
    env.pop("FOOTFALL_KEYRING", None)
    env.pop("FOOTFALL_CONFIG", None)
    return env


def run(args, cwd, ok=(0,), env=None, timeout=600):
    """Runs footfall with `args` in `cwd`, ignoring the caller's keyring and
    config variables; fails the test, with footfall's stderr, on an exit code
    not in `ok`."""
    import subprocess

    p = subprocess.run([binary(), *args], cwd=cwd, env=_env(env), capture_output=True, timeout=timeout)
    assert p.returncode in ok, f"footfall {' '.join(args)} exited {p.returncode}:\n{p.stderr.decode(errors='replace')}"
    return p


def start(args, cwd, stdout, stderr, env=None):
    """Starts footfall with `args` in `cwd` without waiting (the environment
    as for `run`), its stdout and stderr to the files `stdout` and `stderr`;
    returns the Popen. The caller ends it (by its pid)."""
    import subprocess

    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        return subprocess.Popen([binary(), *args], cwd=cwd, env=_env(env), stdout=out, stderr=err)


def ingest(work, topic, logs, keys="", format="combined", state="state", config="footfall.toml"):
    """Writes the config file `config` in `work` (the broker and `topic`, the
    keyring in `work`/keys with its [keys] table extended by `keys`, one file
    source per log, the checkpoints in `work`/`state`) and runs `footfall
    ingest` of `logs` (plain files, all of `format`) with it; returns its path.
    The same keyring with a fresh `state` sends lines already sent again, with
    the same event ids."""
    b = require_env("FOOTFALL_KAFKA_BROKERS")[0]
    config = os.path.join(work, config)
    with open(config, "w") as f:
        f.write(f'[kafka]\nbrokers = "{b}"\n[kafka.topics.visits]\nname = "{topic}"\n')
        f.write(f'[ingest]\nstate_dir = "{work}/{state}"\n[http]\nenabled = false\n')
        f.write(f'[keys]\ndir = "{work}/keys"\n{keys}')
        for path in sorted(logs):
            f.write(f'[[source]]\ntype = "file"\nname = "{os.path.basename(path)}"\npaths = ["{path}"]\nfollow = false\n')
            f.write(f'[source.parse]\nformat = "{format}"\nsite = "example.org"\n')
    run(["ingest", "--config", config], work)
    return config


def ingest_and_aggregate(work, name, logs, keys="", format="combined"):
    """Logs `logs` (plain files, all of `format`) through `footfall topics`,
    `ingest` and `aggregate` on the real broker, one config file in `work`
    (its [keys] table extended by `keys`); returns the warehouse directory."""
    import time

    b = require_env("FOOTFALL_KAFKA_BROKERS")[0]
    topic = f"{name}.{os.getpid()}.{time.time_ns()}"
    run(["topics", "--brokers", b, "--topic", topic, "--partitions", "2"], work)
    config = ingest(work, topic, logs, keys, format)
    wh = os.path.join(work, "wh")
    run(["aggregate", "--config", config, "--group", f"{topic}.agg", "--warehouse", wh], work)
    return wh


S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FOOTFALL_S3_BUCKET")


def require_s3_env():
    """The settings of the local S3 server (`deploy/s3/local-s3.sh env`); a
    missing one fails the test under FOOTFALL_REQUIRE_S3=1 or CI=true, else
    skips it, saying why."""
    missing = [n for n in S3_ENV if not os.environ.get(n)]
    if missing:
        why = (
            f"{', '.join(missing)} not set: this test needs the local S3 server "
            "(`bash deploy/s3/local-s3.sh start && eval \"$(bash deploy/s3/local-s3.sh env)\"`)"
        )
        if os.environ.get("FOOTFALL_REQUIRE_S3") == "1" or os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    endpoint, key, secret, bucket = (os.environ[n] for n in S3_ENV)
    return {
        "endpoint": endpoint,
        "key": key,
        "secret": secret,
        "bucket": bucket,
        "region": os.environ.get("AWS_REGION") or "us-east-1",
    }


def s3_filesystem(s3):
    """pyarrow's S3 client on the server of `s3` (one try per request)."""
    import urllib.parse

    import pyarrow.fs as pafs

    url = urllib.parse.urlsplit(s3["endpoint"])
    return pafs.S3FileSystem(
        access_key=s3["key"],
        secret_key=s3["secret"],
        region=s3["region"],
        scheme=url.scheme,
        endpoint_override=url.netloc,
        allow_bucket_creation=False,
        allow_bucket_deletion=False,
        # One try: a refused request should fail the test at once, not after backoff.
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )


def s3_objects(fs, prefix):
    """Every object under `prefix` (bucket/key prefix): relative path → bytes."""
    import pyarrow.fs as pafs

    out = {}
    for info in fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as f:
                out[info.path[len(prefix) + 1 :]] = f.read()
    return out


META_OBJECT = "_footfall.json"


def s3_tables(fs, prefix):
    """The objects under `prefix` but the warehouse's metadata (META_OBJECT,
    its staging directory's `.footfall.json`): what `published_files` gives of
    the staging directory."""
    objects = s3_objects(fs, prefix)
    objects.pop(META_OBJECT, None)
    return objects


def published_files(wh):
    """The files of a local warehouse that an object-store warehouse publishes
    under the same names: every file but those under a top-level name starting
    with `.`, or with `_` other than `_erasure`, and temporaries. Relative
    path → bytes."""
    out = {}
    for d, dirs, files in os.walk(wh):
        rel = os.path.relpath(d, wh)
        top = rel.split(os.sep)[0]
        if rel != "." and (top.startswith(".") or top.startswith("_") and top != "_erasure"):
            continue
        for f in files:
            if rel == "." or f.startswith("."):
                continue
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.join(rel, f).replace(os.sep, "/")] = fh.read()
    return out


def duckdb_on_s3(s3, fs):
    """A DuckDB connection and a function giving the SQL source of the
    Parquet files one directory below an s3 prefix (`date=…/` read as a
    column unless hive=False): `read_parquet('s3://…')` through httpfs when it loads
    without a download, else an Arrow dataset on pyarrow's S3 client
    registered as a view (this DuckDB's httpfs is not on PyPI and its
    extension site is unreachable here; see deploy/s3/README.md)."""
    import urllib.parse

    import duckdb
    import pyarrow.dataset as ds

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error:
        names = {}

        def source(prefix, hive=True):
            name = names.setdefault((prefix, hive), f"t{len(names)}")
            partitioning = "hive" if hive else None
            con.register(name, ds.dataset(prefix, filesystem=fs, format="parquet", partitioning=partitioning))
            return name

        return con, source
    url = urllib.parse.urlsplit(s3["endpoint"])
    con.execute(
        "CREATE SECRET footfall_s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
        [s3["key"], s3["secret"], s3["region"], url.netloc, url.scheme == "https"],
    )

    def source(prefix, hive=True):
        return f"read_parquet('s3://{prefix}/*/*.parquet', hive_partitioning = {str(hive).lower()})"

    return con, source
