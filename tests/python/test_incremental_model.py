"""deploy/bench/incremental_model.py counts what each strategy would re-read.

The model backs the figures of docs/benchmarks.md ("A model of incremental
strategies"); these cases have counts worked out by hand.
"""
import datetime as dt
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("incremental_model", ROOT / "deploy/bench/incremental_model.py")
model = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(model)

DAY = dt.date(2024, 3, 4)


def ev(visitor, minute, date=DAY):
    return (date, visitor, minute * 60.0)


def test_a_run_that_touches_one_visitor_re_reads_the_date_but_not_the_other_visitor():
    # Run 1 reads a, a; run 2 reads b, b (one partition, two runs of two).
    m = model.model([ev("a", 0), ev("a", 1), ev("b", 2), ev("b", 3)], 2, 1)
    assert m["whole_date"] == (2 + 4) / 4
    assert m["touched_visitors"] == (2 + 2) / 4
    assert m["heavy_kept"][100] == m["touched_visitors"]


def test_a_heavy_visitor_day_costs_its_new_rows_only():
    # 150 rows of a in run 1, 150 more in run 2: re-reading a costs 150 + 300,
    # keeping it as state from 100 rows costs 150 + 150.
    events = [ev("a", i / 10) for i in range(300)]
    m = model.model(events, 2, 1)
    assert m["touched_visitors"] == (150 + 300) / 300
    assert m["heavy_kept"][100] == 1.0
    assert m["heavy_kept"][1000] == m["touched_visitors"]


def test_dates_are_apart_and_late_events_are_counted():
    other = DAY + dt.timedelta(days=1)
    # Run 1: a at 10:00 on DAY; run 2: a at 09:59 (late by one minute), a
    # at 09:00 (late by an hour), and a on the next date.
    events = [ev("a", 600), ev("a", 599), ev("a", 540), ev("a", 600, other)]
    m = model.model(events, 3, 1)  # runs of 2: [600, 599], [540, other]
    assert m["dates"] == 2 and m["visitor_days"] == 2
    assert m["late"] == 2 and m["late_by_30_minutes"] == 1
    # Run 1 touches DAY (2 rows), run 2 DAY (3) and the next date (1).
    assert m["whole_date"] == (2 + 3 + 1) / 4


def test_a_log_is_read_as_common_or_combined(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(
        '192.0.2.1 - - [04/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n'
        '192.0.2.1 - - [04/Mar/2024:10:00:01 +0000] "GET / HTTP/1.1" 200 5\n'
        "not a log line\n"
    )
    got = model.read(str(log))
    assert [(d, v) for d, v, _ in got] == [(DAY, "192.0.2.1|curl/8"), (DAY, "192.0.2.1|")]
