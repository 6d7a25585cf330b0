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
