"""Checks a footfall warehouse with DuckDB and pyarrow.

Runs against the warehouse directory named by FOOTFALL_WAREHOUSE (the
footfall-aggregate broker tests build one and run this file on it). Without
the variable, it builds one itself with `footfall demo` (the built-in sample
logs through ingest, the embedded broker and aggregate), using the binary in
target/ (FOOTFALL_BIN overrides); a missing binary is a failure, not a skip.
FOOTFALL_MIN_VISITORS is the privacy threshold the warehouse was built with
(default 3).

Checks: every table reads with DuckDB (hive partitioning) and pyarrow
datasets, `date` comes from the path and is not stored in the files, every
summary table has one file per date, and the summaries reconcile with the
events table.
"""

import glob
import os
import subprocess
import tempfile

import pytest

import duckdb  # noqa: E402  (a missing analyst client is a failure, not a skip)
import pyarrow.dataset as pa_ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from footfall_support import DATE_TABLES, PERIOD_TABLES, TABLES, binary

K = int(os.environ.get("FOOTFALL_MIN_VISITORS", "3"))


def _demo_warehouse():
    out = os.path.join(tempfile.mkdtemp(prefix="footfall-pytest-"), "wh")
    subprocess.run([binary(), "demo", "--dir", out, "--json"], check=True, stdout=subprocess.DEVNULL)
    return out


WH = os.environ.get("FOOTFALL_WAREHOUSE") or _demo_warehouse()


def src(table, filename=False):
    extra = ", filename=true" if filename else ""
    return f"read_parquet('{WH}/{table}/*/*.parquet', hive_partitioning=true{extra})"


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    yield c
    c.close()


def rows(con, sql):
    return con.execute(sql).fetchall()


@pytest.mark.parametrize("table", TABLES)
def test_table_reads_with_duckdb_and_pyarrow(con, table):
    files = glob.glob(f"{WH}/{table}/date=*/*.parquet")
    assert files, f"{table} has no files"
    (n,) = rows(con, f"SELECT count(*) FROM {src(table)}")[0]
    assert n > 0
    cols = [d[0] for d in con.execute(f"SELECT * FROM {src(table)} LIMIT 1").description]
    assert "date" in cols
    ds = pa_ds.dataset(f"{WH}/{table}", format="parquet", partitioning="hive")
    t = ds.to_table()
    assert t.num_rows == n
    assert "date" in t.schema.names
    for f in files:
        schema = pq.read_schema(f)
        assert "date" not in schema.names, f"{f} stores the partition column"
        meta = pq.read_metadata(f)
        col = meta.row_group(0).column(0)
        assert col.compression == "ZSTD"
        assert col.statistics is not None and col.statistics.has_min_max


@pytest.mark.parametrize("table", [t for t in TABLES if t != "events"])
def test_summaries_are_one_file_per_date(table):
    files = glob.glob(f"{WH}/{table}/date=*/*.parquet")
    assert files, f"{table} has no files"
    name = "period.parquet" if table.startswith("traffic_") and not table.endswith(("daily", "hourly")) else "day.parquet"
    assert all(os.path.basename(f) == name for f in files), sorted(set(map(os.path.basename, files)))


def test_requests_page_views_and_status_reconcile(con):
    events = rows(
        con,
        f"""SELECT date, site, count(*),
                   count(*) FILTER (status BETWEEN 200 AND 299),
                   count(*) FILTER (status BETWEEN 400 AND 499),
                   count(*) FILTER (status BETWEEN 500 AND 599),
                   coalesce(sum(bytes), 0)
            FROM {src('events')} GROUP BY ALL ORDER BY ALL""",
    )
    daily = rows(
        con,
        f"""SELECT date, site, sum(requests), sum(status_2xx), sum(status_4xx),
                   sum(status_5xx), sum(bytes)
            FROM {src('traffic_daily')} GROUP BY ALL ORDER BY ALL""",
    )
    assert daily == events
    # Page views are the page requests less repeated polling; bots by user
    # agent are bots, whatever else the rules add.
    (bad,) = rows(
        con,
        f"""SELECT count(*) FROM
              (SELECT date, site, count(*) FILTER (is_pageview) AS pv, count(*) FILTER (is_bot) AS ua_bots
               FROM {src('events')} GROUP BY ALL) e
            JOIN (SELECT date, site, sum(page_views) AS pv,
                         sum(requests) FILTER (audience = 'bot') AS bots
                  FROM {src('traffic_daily')} GROUP BY ALL) t USING (date, site)
            WHERE t.pv > e.pv OR coalesce(t.bots, 0) < e.ua_bots""",
    )[0]
    assert bad == 0


def test_every_table_splits_into_humans_and_bots(con):
    for table in DATE_TABLES:
        (bad,) = rows(
            con,
            f"""SELECT count(*) FROM {src(table)}
                WHERE audience NOT IN ('human', 'bot')
                   OR (audience = 'human') <> (bot_reason IS NULL)""",
        )[0]
        assert bad == 0, table


def test_every_table_adds_up_per_audience(con):
    """The human rows of every table agree with traffic_daily's human rows,
    and the bot rows with its bot rows, so human plus bot is the same total
    in every table (traffic_daily's total is checked against the events)."""

    def per_audience(table, measure, where="TRUE"):
        return rows(
            con,
            f"""SELECT date, site, audience, sum({measure}) FROM {src(table)}
                WHERE {where} GROUP BY ALL HAVING sum({measure}) > 0 ORDER BY ALL""",
        )

    requests = per_audience("traffic_daily", "requests")
    assert {r[2] for r in requests} == {"human", "bot"}, "the demo has both audiences"
    for table in ["traffic_hourly", "routes_hourly", "status_daily", "clients_daily"]:
        assert per_audience(table, "requests") == requests, table
    assert per_audience("pages_daily", "views") == per_audience("traffic_daily", "page_views")
    visits = per_audience("traffic_daily", "visits")
    for table, measure in [("visits", "1"), ("referrers_daily", "visits")]:
        assert per_audience(table, measure) == visits, table
    with_pages = per_audience("visits", "1", "page_views > 0")
    assert per_audience("pages_daily", "entries") == with_pages
    assert per_audience("transitions_daily", "count", "from_route = '(entrance)'") == with_pages
    # Searches: one per visitor request carrying on-site terms, one per
    # visitor request with search-engine terms, over both audiences.
    searches = rows(
        con,
        f"""SELECT date, site, count(site_search) + count(search_terms) FROM {src('events')}
            WHERE status NOT BETWEEN 400 AND 499 GROUP BY ALL HAVING count(site_search) + count(search_terms) > 0 ORDER BY ALL""",
    )
    got = rows(con, f"SELECT date, site, sum(searches) FROM {src('search_terms_daily')} GROUP BY ALL ORDER BY ALL")
    assert got == searches
    # Weeks and months: a visitor's class may differ between days, but over
    # both audiences a period holds exactly the visits that started on its
    # dates, with their page views.
    for table in PERIOD_TABLES:
        got = rows(
            con,
            f"""SELECT period_start, site, sum(visits), sum(page_views) FROM {src(table)}
                GROUP BY ALL ORDER BY ALL""",
        )
        want = rows(
            con,
            f"""SELECT p.period_start, v.site, count(*), sum(v.page_views)
                FROM {src('visits')} v
                JOIN (SELECT DISTINCT period_start, period_end FROM {src(table)}) p
                  ON v.date BETWEEN p.period_start AND p.period_end
                GROUP BY ALL ORDER BY ALL""",
        )
        assert got == want, table


def test_visitors_per_day_are_distinct_non_4xx_visitors(con):
    want = rows(
        con,
        f"""SELECT date, site, count(DISTINCT visitor_id) FROM {src('events')}
            WHERE status NOT BETWEEN 400 AND 499 GROUP BY ALL ORDER BY ALL""",
    )
    got = rows(
        con,
        f"SELECT date, site, sum(visitors) FROM {src('traffic_daily')} WHERE visitors > 0 GROUP BY ALL ORDER BY ALL",
    )
    assert got == want


def test_every_breakdown_adds_up_to_daily_requests(con):
    daily = rows(con, f"SELECT date, site, sum(requests) FROM {src('traffic_daily')} GROUP BY ALL ORDER BY ALL")
    for table in ["traffic_hourly", "routes_hourly", "status_daily", "clients_daily"]:
        got = rows(con, f"SELECT date, site, sum(requests) FROM {src(table)} GROUP BY ALL ORDER BY ALL")
        assert got == daily, table
    lat = " + ".join(
        f"sum({c})"
        for c in [
            "lat_le_10ms",
            "lat_le_50ms",
            "lat_le_100ms",
            "lat_le_250ms",
            "lat_le_500ms",
            "lat_le_1000ms",
            "lat_le_2500ms",
            "lat_gt_2500ms",
            "lat_unknown",
        ]
    )
    got = rows(con, f"SELECT date, site, {lat} FROM {src('routes_hourly')} GROUP BY ALL ORDER BY ALL")
    assert got == daily


def test_pages_and_visits_reconcile(con):
    pv = rows(con, f"SELECT date, site, sum(page_views) FROM {src('traffic_daily')} GROUP BY ALL ORDER BY ALL")
    views = rows(con, f"SELECT date, site, sum(views) FROM {src('pages_daily')} GROUP BY ALL ORDER BY ALL")
    assert views == pv
    visits = rows(
        con,
        f"SELECT date, site, sum(visits), sum(bounces) FROM {src('traffic_daily')} WHERE visits > 0 GROUP BY ALL ORDER BY ALL",
    )
    table = rows(
        con,
        f"SELECT date, site, count(*), count(*) FILTER (bounce) FROM {src('visits')} GROUP BY ALL ORDER BY ALL",
    )
    assert table == visits
    referrers = rows(
        con,
        f"SELECT date, site, sum(visits), sum(bounces) FROM {src('referrers_daily')} GROUP BY ALL ORDER BY ALL",
    )
    assert referrers == visits
    # One entrance and one exit per visit with a page view.
    with_pages = rows(
        con,
        f"SELECT date, site, count(*) FROM {src('visits')} WHERE page_views > 0 GROUP BY ALL ORDER BY ALL",
    )
    for side, col in [("(entrance)", "from_route"), ("(exit)", "to_route")]:
        got = rows(
            con,
            f"SELECT date, site, sum(count) FROM {src('transitions_daily')} WHERE {col} = '{side}' GROUP BY ALL ORDER BY ALL",
        )
        assert got == with_pages, side
    entries = rows(
        con,
        f"SELECT date, site, sum(entries) FROM {src('pages_daily')} WHERE entries > 0 GROUP BY ALL ORDER BY ALL",
    )
    assert entries == with_pages
    (bad,) = rows(con, f"SELECT count(*) FROM {src('visits')} WHERE duration_s <> epoch(visit_end) - epoch(visit_start)")[0]
    assert bad == 0


def test_rare_values_are_folded(con):
    (bad,) = rows(
        con,
        f"""SELECT count(*) FROM (
              SELECT filename, site, kind, terms, sum(visitors) AS v FROM {src('search_terms_daily', filename=True)}
              WHERE terms <> '(other)' GROUP BY ALL) WHERE v < {K}""",
    )[0]
    assert bad == 0
    (bad,) = rows(
        con,
        f"""SELECT count(*) FROM (
              SELECT filename, site, referrer_host, sum(visitors) AS v FROM {src('referrers_daily', filename=True)}
              WHERE referrer_host IS NOT NULL AND referrer_host <> '(other)' GROUP BY ALL) WHERE v < {K}""",
    )[0]
    assert bad == 0
    # Each campaign value on its own: used by at least K visitors that day, or (other).
    for col in ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"]:
        (bad,) = rows(
            con,
            f"""SELECT count(*) FROM (
                  SELECT date, site, {col}, sum(visitors) AS v FROM {src('campaigns_daily')}
                  WHERE {col} IS NOT NULL AND {col} <> '(other)' GROUP BY ALL) WHERE v < {K}""",
        )[0]
        assert bad == 0, col
