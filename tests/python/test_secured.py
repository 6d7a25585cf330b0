"""One config file runs the whole pipeline on a SASL/SCRAM-secured broker, and
`footfall check` tells each installation problem by its own exit code.

The broker is deploy/kafka/local-kafka.sh's, whose SASL_PLAINTEXT listener
(FOOTFALL_KAFKA_SASL_BROKERS) has a SCRAM-SHA-512 user (FOOTFALL_KAFKA_SASL_USERNAME)
with a password in a file (FOOTFALL_KAFKA_SASL_PASSWORD_FILE); deploy/test.sh
exports all three. `topics`, `ingest`, `aggregate` and `tail` read one config
file whose password sits only in a 0600 file; while they run, every
/proc/*/cmdline is read, and afterwards every output and log line: the password
appears nowhere. Missing variables are a failure under FOOTFALL_REQUIRE_KAFKA=1
or CI=true, else the tests are skipped.
"""

import json
import os
import shutil
import subprocess
import threading
import time


from footfall_support import binary, require_env

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ELASTIC = os.path.join(ROOT, "tests", "data", "elastic-apache-logs", "apache_logs.gz")


def env():
    e = dict(os.environ)
    for k in ("FOOTFALL_KAFKA_BROKERS", "FOOTFALL_CONFIG", "FOOTFALL_KEYRING", "FOOTFALL_KAFKA_SASL_PASSWORD", "RUST_LOG"):
        e.pop(k, None)
    e["RUST_LOG"] = "debug"
    return e


def unique(p):
    return f"{p}.{os.getpid()}.{time.time_ns()}"


def write_config(path, brokers, user, password_file, topic, work, partitions=3):
    with open(path, "w") as f:
        f.write(
            "[kafka]\n"
            f"brokers = {json.dumps(brokers)}\n"
            'security_protocol = "sasl_plaintext"\n'
            'sasl_mechanism = "SCRAM-SHA-512"\n'
            f"sasl_username = {json.dumps(user)}\n"
            f"sasl_password_file = {json.dumps(password_file)}\n"
            f"[kafka.topics.visits]\nname = {json.dumps(topic)}\npartitions = {partitions}\n"
            f"[kafka.topics.dead_letter]\nname = {json.dumps(topic + '.dlq')}\n"
            f"[ingest]\nstate_dir = {json.dumps(os.path.join(work, 'state'))}\n"
            f"[keys]\ndir = {json.dumps(os.path.join(work, 'keyring'))}\n"
            "[http]\nenabled = false\n"
            f'[[source]]\ntype = "file"\npaths = [{json.dumps(ELASTIC)}]\nfollow = false\n'
            '[source.parse]\nformat = "combined"\n'
        )


class CmdlineWatch:
    """Reads every /proc/*/cmdline while the pipeline runs."""

    def __init__(self, secret):
        self.secret, self.found, self.reads = secret.encode(), [], 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            line = f.read()
                    except OSError:
                        continue
                    self.reads += 1
                    if self.secret in line:
                        self.found.append(line.replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_one_config_runs_the_pipeline_on_a_sasl_broker(tmp_path):
    brokers, user, password_source = require_env(
        "FOOTFALL_KAFKA_SASL_BROKERS", "FOOTFALL_KAFKA_SASL_USERNAME", "FOOTFALL_KAFKA_SASL_PASSWORD_FILE"
    )
    work = str(tmp_path)
    password_file = os.path.join(work, "kafka.password")
    shutil.copyfile(password_source, password_file)
    os.chmod(password_file, 0o600)
    password = open(password_file).read().strip()
    assert len(password) >= 16
    topic = unique("secured")
    config = os.path.join(work, "footfall.toml")
    write_config(config, brokers, user, password_file, topic, work)
    with open(config) as f:
        assert password not in f.read(), "the password is only in its own file"

    outputs = []
    with CmdlineWatch(password) as watch:
        def run(*args, timeout=300):
            p = subprocess.run([binary(), *args], env=env(), cwd=work, capture_output=True, timeout=timeout)
            outputs.append((args[0], p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")))
            assert p.returncode == 0, f"footfall {' '.join(args)} exited {p.returncode}:\n{outputs[-1][1][-3000:]}"
            return p

        run("topics", "--config", config)
        run("ingest", "--config", config)
        run("check", "--config", config)
        wh = os.path.join(work, "wh")
        report = json.loads(run("aggregate", "--config", config, "--warehouse", wh, "--group", topic + ".agg", "--json").stdout)
        assert report["events_written"] == 10_000, report
        tail = run("tail", "--config", config, "--from-beginning", "--limit", "25", "--json", "--timeout", "30s")
        assert len(tail.stdout.splitlines()) == 25
    assert watch.reads > 0
    assert not watch.found, f"the password was on a command line: {watch.found[:3]}"
    for name, text in outputs:
        assert password not in text, f"footfall {name} printed the password"
    for root, _, files in os.walk(os.path.join(work, "state")):
        for name in files:
            assert password.encode() not in open(os.path.join(root, name), "rb").read()


def check(config, *extra):
    p = subprocess.run([binary(), "check", "--config", config, "--timeout", "5", *extra], env=env(), capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def test_check_names_each_problem_with_its_own_code(tmp_path):
    brokers, user, password_source = require_env(
        "FOOTFALL_KAFKA_SASL_BROKERS", "FOOTFALL_KAFKA_SASL_USERNAME", "FOOTFALL_KAFKA_SASL_PASSWORD_FILE"
    )
    work = str(tmp_path)
    good = os.path.join(work, "kafka.password")
    shutil.copyfile(password_source, good)
    os.chmod(good, 0o600)
    topic = unique("checked")
    config = os.path.join(work, "ok.toml")
    write_config(config, brokers, user, good, topic, work)
    subprocess.run([binary(), "keys", "init", "--keyring", os.path.join(work, "keyring")], env=env(), check=True, capture_output=True)
    subprocess.run([binary(), "topics", "--config", config], env=env(), check=True, capture_output=True)
    code, out = check(config)
    assert code == 0, out

    def variant(name, edit):
        path = os.path.join(work, f"{name}.toml")
        with open(config) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(edit(text))
        return path

    wrong = os.path.join(work, "wrong.password")
    with open(wrong, "w") as f:
        f.write("not-the-password\n")
    os.chmod(wrong, 0o600)
    cases = [
        ("unknown key", variant("unknown", lambda t: t.replace("[http]\n", "[http]\nlisten_adress = \"x\"\n")), 78, "listen_adress"),
        ("missing keyring", variant("nokeys", lambda t: t.replace(os.path.join(work, "keyring"), os.path.join(work, "none"))), 66, "keys init"),
        ("unreachable broker", variant("down", lambda t: t.replace(brokers, "127.0.0.1:1")), 69, "no broker answers"),
        ("wrong credentials", variant("creds", lambda t: t.replace(good, wrong)), 77, "credentials"),
        ("missing topic", variant("notopic", lambda t: t.replace(json.dumps(topic), json.dumps(topic + ".nope"), 1)), 68, "does not exist"),
        ("partition mismatch", variant("parts", lambda t: t.replace("partitions = 3", "partitions = 6")), 76, "partitions"),
    ]
    for name, path, want, text in cases:
        code, out = check(path)
        assert code == want, f"{name}: exit {code}, not {want}:\n{out}"
        assert text in out and "hint:" in out, f"{name}:\n{out}"

    wh = os.path.join(work, "wh")
    os.makedirs(wh)
    with open(os.path.join(wh, ".footfall.json"), "w") as f:
        json.dump({"format": 1, "topic": "another.topic", "group": "footfall-aggregate"}, f)
    code, out = check(config, "--warehouse", wh)
    assert code == 65 and "another.topic" in out, out
    with open(os.path.join(wh, ".footfall.json"), "w") as f:
        json.dump({"format": 1, "topic": topic, "group": "another-group"}, f)
    code, out = check(config, "--warehouse", wh)
    assert code == 65 and "another-group" in out, out
