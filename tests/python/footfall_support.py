"""What every Python test needs to run footfall: the binary, and the
environment a broker test requires (a missing variable is a failure under
FOOTFALL_REQUIRE_KAFKA=1 or CI=true, else the test is skipped, saying why)."""

import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


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
