"""Every SQL example of docs/tables.md runs in DuckDB against the demo
warehouse (or FOOTFALL_WAREHOUSE, which must then hold the demo's sites and
dates: the examples name them), returns rows, returns the same rows whatever
the session's time zone, and returns what its comment says.

Each example is known by its first line, a `--` comment. CHECKS maps it to a
function that computes the example's answer another way (from the events, the
visits, or another summary table) and compares: an example without a check
fails, and so does a check whose example is gone."""

import re

import duckdb
import pytest

from footfall_support import ROOT
from test_warehouse import K, WH

DOC = open(f"{ROOT}/docs/tables.md", encoding="utf-8").read()
QUERIES = re.findall(r"```sql\n(.*?)```", DOC, re.S)
EXAMPLES = {q.strip().splitlines()[0]: q for q in QUERIES}


def src(table):
    return f"read_parquet('{WH}/{table}/*/*.parquet', hive_partitioning = true)"


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    yield c
    c.close()


def run(con, query):
    """The rows of `query` (an example, or SQL naming tables with src()), as dicts."""
    cur = con.execute(query.replace("'wh/", f"'{WH}/"))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def one(con, sql):
    return con.execute(sql).fetchone()[0]


def param(query, pattern):
    """The value the example filters on (its date, site, route...)."""
    found = re.findall(pattern, query)
    assert len(found) == 1, f"{pattern!r} in {query}"
    return found[0]


def without_limit(query):
    assert len(re.findall(r"\bLIMIT \d+", query)) == 1, query
    return re.sub(r"\s*\bLIMIT (\d+)", "", query)


def limit(query):
    """The example's LIMIT, which its comment names when it says "The 20 ..."."""
    n = int(param(query, r"\bLIMIT (\d+)"))
    said = re.match(r"-- The (\d+) ", query.strip())
    assert said is None or int(said.group(1)) == n, f"the comment says {said.group(1)}, the LIMIT is {n}"
    return n


def rounded(value, exact, digits):
    """`value` is `exact` rounded to `digits` decimals."""
    if exact is None:
        return value is None
    return value is not None and abs(value - exact) <= 0.5 * 10**-digits + 1e-9


def by(rows, *cols):
    return {tuple(r[c] for c in cols): r for r in rows}


def assert_descending(rows, col):
    values = [r[col] for r in rows]
    assert values == sorted(values, reverse=True), f"not ordered by {col} DESC: {values}"


def assert_top(rows, full, col, n):
    """`rows` are the first `n` rows of `full` (the example without its LIMIT) by `col`, ties aside."""
    assert_descending(rows, col)
    assert len(rows) == min(n, len(full))
    assert all(r in full for r in rows), "a LIMIT row is not a row of the whole result"
    rest = list(full)
    for r in rows:
        rest.remove(r)
    if rest and rows:
        assert rows[-1][col] >= max(r[col] for r in rest), f"a row left out has more {col}"


# The independent answers: the visitor-day audience of an event comes from the
# visits table (every visitor-day with a visitor request has a visit that day).
AUDIENCE = f"(SELECT DISTINCT date, site, visitor_id, audience FROM {src('visits')})"
VISITOR_REQUEST = "status NOT BETWEEN 400 AND 499"
# Local hour without DuckDB's time zone functions: whole seconds since the epoch, shifted.
LOCAL_HOUR = "CAST(((epoch_us(ts) // 1000000 + tz_offset_s) // 3600) % 24 AS INTEGER)"


def check_daily_totals(con, query, rows):
    """Requests are the events; visitors the distinct ids with a visitor request, humans and bots together."""
    want = run(
        con,
        f"""SELECT date, site, count(*) AS requests,
                   count(DISTINCT visitor_id) FILTER ({VISITOR_REQUEST}) AS visitors
            FROM {src('events')} GROUP BY ALL ORDER BY ALL""",
    )
    assert rows == want


def check_hours_from_events(con, query, rows):
    """Every request of the day in its local hour: the same hours as traffic_hourly's."""
    day = param(query, r"date = '([\d-]+)'")
    assert one(con, f"SELECT bool_or(tz_offset_s <> 0) FROM {src('events')} WHERE date = '{day}'"), (
        "the example's day should be one logged outside UTC, so that the offset matters"
    )
    hours = [r["hour"] for r in rows]
    assert hours == sorted(set(hours)) and set(hours) <= set(range(24))
    assert sum(r["requests"] for r in rows) == one(con, f"SELECT count(*) FROM {src('events')} WHERE date = '{day}'")
    want = run(
        con,
        f"""SELECT hour, sum(requests) AS requests FROM {src('traffic_hourly')}
            WHERE date = '{day}' GROUP BY ALL ORDER BY ALL""",
    )
    assert rows == want
    events = run(
        con,
        f"""SELECT {LOCAL_HOUR} AS hour, count(*) AS requests FROM {src('events')}
            WHERE date = '{day}' GROUP BY ALL ORDER BY ALL""",
    )
    assert rows == events


def check_human_traffic(con, query, rows):
    """Visitors, visits, bounce rate and mean visit length of the human visitor-days."""
    assert all(set(r) == {"date", "site", "visitors", "visits", "bounce_rate", "avg_visit_s"} for r in rows)
    unclassified = one(
        con,
        f"""SELECT count(*) FROM (SELECT DISTINCT date, site, visitor_id FROM {src('events')} WHERE {VISITOR_REQUEST})
            ANTI JOIN {AUDIENCE} USING (date, site, visitor_id)""",
    )
    assert unclassified == 0, "a visitor-day with visitor requests has no visit"
    visitors = by(
        run(
            con,
            f"""SELECT date, site, count(DISTINCT visitor_id) AS n
                FROM {src('events')} JOIN {AUDIENCE} USING (date, site, visitor_id)
                WHERE {VISITOR_REQUEST} AND audience = 'human' GROUP BY ALL""",
        ),
        "date",
        "site",
    )
    visits = by(
        run(
            con,
            f"""SELECT date, site, count(*) AS visits, count(*) FILTER (page_views = 1) AS bounces,
                       sum(epoch_us(visit_end) - epoch_us(visit_start)) / 1e6 AS seconds
                FROM {src('visits')} WHERE audience = 'human' GROUP BY ALL""",
        ),
        "date",
        "site",
    )
    assert set(by(rows, "date", "site")) == set(visitors) == set(visits)
    assert [(r["date"], r["site"]) for r in rows] == sorted(visitors)
    for r in rows:
        key = (r["date"], r["site"])
        v = visits[key]
        assert r["visitors"] == visitors[key]["n"], key
        assert r["visits"] == v["visits"], key
        assert rounded(r["bounce_rate"], v["bounces"] / v["visits"], 3), (key, r, v)
        assert rounded(r["avg_visit_s"], v["seconds"] / v["visits"], 1), (key, r, v)


def check_hourly_visitors(con, query, rows):
    """Per local hour: the site's requests that hour and the distinct visitors who came in it."""
    day = param(query, r"date = '([\d-]+)'")
    site = param(query, r"site = '([^']+)'")
    want = run(
        con,
        f"""SELECT {LOCAL_HOUR} AS hour, count(*) AS requests,
                   count(DISTINCT visitor_id) FILTER ({VISITOR_REQUEST}) AS visitors
            FROM {src('events')} WHERE date = '{day}' AND site = '{site}' GROUP BY ALL ORDER BY ALL""",
    )
    assert rows == want
    day_visitors = one(
        con,
        f"SELECT count(DISTINCT visitor_id) FROM {src('events')} WHERE date = '{day}' AND site = '{site}' AND {VISITOR_REQUEST}",
    )
    assert sum(r["visitors"] for r in rows) > day_visitors, "the hours' visitors should exceed the day's"


def check_top_pages(con, query, rows):
    """Human page views, entries, bounces and exits per route, from the events and the visits."""
    first, last = param(query, r"date BETWEEN '([\d-]+)' AND '([\d-]+)'")
    full = run(con, without_limit(query))
    assert_top(rows, full, "views", limit(query))
    period = f"date BETWEEN '{first}' AND '{last}'"
    # Page views: the human visitor-days' is_pageview events (no polling repeats among them on these dates).
    views = by(
        run(
            con,
            f"""SELECT site, route, count(*) AS n
                FROM {src('events')} JOIN {AUDIENCE} USING (date, site, visitor_id)
                WHERE {period} AND is_pageview AND audience = 'human' GROUP BY ALL""",
        ),
        "site",
        "route",
    )
    visits = f"(SELECT * FROM {src('visits')} WHERE {period} AND audience = 'human')"
    entries = by(
        run(
            con,
            f"""SELECT site, entry_route AS route, count(*) AS n, count(*) FILTER (page_views = 1) AS bounces
                FROM {visits} WHERE entry_route IS NOT NULL GROUP BY ALL""",
        ),
        "site",
        "route",
    )
    exits = by(
        run(con, f"SELECT site, exit_route AS route, count(*) AS n FROM {visits} WHERE exit_route IS NOT NULL GROUP BY ALL"),
        "site",
        "route",
    )
    assert {(r["site"], r["route"]) for r in full if r["views"] > 0} == set(views)
    for r in full:
        key = (r["site"], r["route"])
        n_views = views[key]["n"] if key in views else 0
        n_entries, n_bounces = (entries[key]["n"], entries[key]["bounces"]) if key in entries else (0, 0)
        n_exits = exits[key]["n"] if key in exits else 0
        assert r["views"] == n_views, (key, r, n_views)
        assert r["entries"] == n_entries, (key, r, n_entries)
        assert rounded(r["bounce_rate"], n_bounces / n_entries if n_entries else None, 3), (key, r, n_bounces)
        assert rounded(r["exit_rate"], n_exits / n_views if n_views else None, 3), (key, r, n_exits)


def check_clients(con, query, rows):
    """A named bot's requests are the events with its name; a rule's are its visitor-days'; the rest human."""
    assert_descending(rows, "requests")
    got = {r["client"]: r["requests"] for r in rows}
    assert len(got) == len(rows)
    assert sum(got.values()) == one(con, f"SELECT count(*) FROM {src('events')}")
    named = {
        r["bot_name"]: r["n"]
        for r in run(con, f"SELECT bot_name, count(*) AS n FROM {src('events')} WHERE bot_name IS NOT NULL GROUP BY ALL")
    }
    daily = {
        r["reason"]: r["n"]
        for r in run(
            con, f"SELECT coalesce(bot_reason, 'human') AS reason, sum(requests) AS n FROM {src('traffic_daily')} GROUP BY ALL"
        )
    }
    assert named and not set(named) & set(daily), "a bot name is also a rule's name or 'human'"
    for name, n in named.items():
        assert got.pop(name, None) == n, name
    # Every event with a bot name is a user_agent visitor-day's; the rest of those days' requests
    # carry no name, and the other rules' and the humans' none at all.
    assert got.pop("user_agent", 0) + sum(named.values()) == daily.pop("user_agent", None)
    assert got == daily


def check_not_found(con, query, rows):
    """The routes with the most 404 events."""
    want = run(
        con,
        f"SELECT site, route, count(*) AS not_found FROM {src('events')} WHERE status = 404 GROUP BY ALL",
    )
    full = run(con, without_limit(query))
    assert sorted(full, key=repr) == sorted(want, key=repr)
    assert_top(rows, full, "not_found", limit(query))


def check_search_terms(con, query, rows):
    """Searches and visitor-days per term, over its days with at least k searching visitors."""
    want = run(
        con,
        f"""WITH hits AS (
                SELECT date, site, 'on-site' AS kind, site_search AS terms, visitor_id
                FROM {src('events')} WHERE site_search IS NOT NULL AND {VISITOR_REQUEST}
                UNION ALL
                SELECT date, site, 'search-engine', search_terms, visitor_id
                FROM {src('events')} WHERE search_terms IS NOT NULL AND {VISITOR_REQUEST}),
            shown AS (
                SELECT date, site, kind, terms FROM hits GROUP BY ALL
                HAVING count(DISTINCT visitor_id) >= {K})
            SELECT kind, terms, count(*) AS searches,
                   count(DISTINCT (site, date, visitor_id)) AS visitor_days
            FROM hits JOIN shown USING (date, site, kind, terms) GROUP BY ALL""",
    )
    full = run(con, without_limit(query))
    assert want, "no term is shown on the demo warehouse"
    assert sorted(full, key=repr) == sorted(want, key=repr)
    assert_top(rows, full, "searches", limit(query))
    assert any(r["visitor_days"] < r["searches"] for r in rows)


def check_weekly_visitors(con, query, rows):
    """Distinct ids of the week's visits none of which was a bot's."""
    want = run(
        con,
        f"""WITH ids AS (
                SELECT date_trunc('week', date)::DATE AS week, site, visitor_id,
                       bool_or(audience = 'bot') AS bot
                FROM {src('visits')} GROUP BY ALL)
            SELECT week, site, count(*) AS visitors FROM ids WHERE NOT bot GROUP BY ALL ORDER BY ALL""",
    )
    assert [{k: r[k] for k in ("week", "site", "visitors")} for r in rows] == want
    assert all(r["week"].isoweekday() == 1 for r in rows)
    assert all(isinstance(r["visitors_exact"], bool) for r in rows)


def check_referrers(con, query, rows):
    """Each visit's landing (its first page view, else its first request) from the events, hosts folded under k."""
    want = run(
        con,
        f"""WITH ev AS (
                SELECT v.date, v.site, v.visitor_id, e.referrer_medium, e.referrer_source, e.referrer_host,
                       row_number() OVER (PARTITION BY v.site, v.visitor_id, v.visit_start
                                          ORDER BY e.is_pageview DESC, e.ts, e.kafka_partition, e.kafka_offset) AS i
                FROM {src('events')} e JOIN {src('visits')} v
                  ON e.site = v.site AND e.date = v.date AND e.visitor_id = v.visitor_id
                 AND e.ts BETWEEN v.visit_start AND v.visit_end
                WHERE e.{VISITOR_REQUEST}),
            landing AS (SELECT * FROM ev WHERE i = 1),
            hosts AS (
                SELECT date, site, referrer_host, count(DISTINCT visitor_id) AS n
                FROM landing WHERE referrer_host IS NOT NULL GROUP BY ALL)
            SELECT referrer_medium AS medium,
                   coalesce(referrer_source, CASE WHEN h.n < {K} THEN '(other)' ELSE l.referrer_host END, '-') AS referrer,
                   count(*) AS visits
            FROM landing l LEFT JOIN hosts h USING (date, site, referrer_host)
            WHERE referrer_medium NOT IN ('direct', 'internal') GROUP BY ALL""",
    )
    assert one(con, f"SELECT count(*) FROM {src('visits')}") == one(
        con, f"SELECT count(DISTINCT (site, visitor_id, visit_start)) FROM {src('visits')}"
    )
    full = run(con, without_limit(query))
    assert sorted(full, key=repr) == sorted(want, key=repr)
    assert_top(rows, full, "visits", limit(query))
    assert {"search", "external"} <= {r["medium"] for r in rows}
    assert any(r["referrer"] == "(other)" for r in full)


def check_campaigns(con, query, rows):
    """The visits with a campaign, each value used by fewer than k of the day's campaign visitors folded."""
    fold = lambda col: f"""CASE WHEN {col} IS NULL THEN NULL
                                WHEN count(DISTINCT visitor_id) OVER (PARTITION BY date, site, {col}) < {K} THEN '(other)'
                                ELSE {col} END"""
    want = run(
        con,
        f"""WITH c AS (
                SELECT {fold('utm_campaign')} AS utm_campaign, {fold('utm_source')} AS utm_source, page_views
                FROM {src('visits')} WHERE utm_source IS NOT NULL OR utm_campaign IS NOT NULL)
            SELECT utm_campaign, utm_source, count(*) AS visits, sum(page_views) AS page_views FROM c GROUP BY ALL""",
    )
    assert want, "the demo warehouse has no campaign visits"
    assert_descending(rows, "visits")
    got = by(rows, "utm_campaign", "utm_source")
    assert set(got) == set(by(want, "utm_campaign", "utm_source"))
    for w in want:
        r = got[(w["utm_campaign"], w["utm_source"])]
        assert r["visits"] == w["visits"]
        assert rounded(r["pages_per_visit"], w["page_views"] / w["visits"], 2), (r, w)


def check_next_pages(con, query, rows):
    """The page view after each view of the route in its visit, from the events, or (exit)."""
    site = param(query, r"site = '([^']+)'")
    route = param(query, r"from_route = '([^']+)'")
    want = run(
        con,
        f"""WITH pv AS (
                SELECT v.visit_start, v.visitor_id, e.route,
                       lead(e.route) OVER (PARTITION BY v.visitor_id, v.visit_start
                                           ORDER BY e.ts, e.kafka_partition, e.kafka_offset) AS next
                FROM {src('events')} e JOIN {src('visits')} v
                  ON e.site = v.site AND e.date = v.date AND e.visitor_id = v.visitor_id
                 AND e.ts BETWEEN v.visit_start AND v.visit_end
                WHERE e.site = '{site}' AND e.is_pageview)
            SELECT coalesce(next, '(exit)') AS to_route, count(*) AS n FROM pv WHERE route = '{route}' GROUP BY ALL""",
    )
    assert_descending(rows, "n")
    assert sorted(rows, key=repr) == sorted(want, key=repr)
    exits = one(con, f"SELECT count(*) FROM {src('visits')} WHERE site = '{site}' AND exit_route = '{route}'")
    assert by(rows, "to_route")[("(exit)",)]["n"] == exits
    assert len(rows) > 3


def check_routes(con, query, rows):
    """Requests, 5xx share and requests over 1000 ms per upstream and route, from the day's events."""
    day = param(query, r"date = '([\d-]+)'")
    want = by(
        run(
            con,
            f"""SELECT upstream, route, count(*) AS requests, count(*) FILTER (status BETWEEN 500 AND 599) AS errors,
                       count(*) FILTER (duration_ms > 1000) AS slow
                FROM {src('events')} WHERE date = '{day}' GROUP BY ALL""",
        ),
        "upstream",
        "route",
    )
    full = run(con, without_limit(query))
    assert set(by(full, "upstream", "route")) == set(want)
    for r in full:
        w = want[(r["upstream"], r["route"])]
        assert r["requests"] == w["requests"]
        assert rounded(r["error_rate"], w["errors"] / w["requests"], 4), (r, w)
        assert r["slower_than_1s"] == w["slow"], (r, w)
    keyed = lambda r: (-r["error_rate"], -r["requests"])
    assert [keyed(r) for r in rows] == sorted(keyed(r) for r in rows)
    assert len(rows) == min(limit(query), len(full))
    left_out = [r for r in full if r not in rows]
    if left_out:
        assert keyed(rows[-1]) <= min(keyed(r) for r in left_out)
    assert rows[0]["error_rate"] > 0 and sum(r["slower_than_1s"] for r in full) > 0, (
        "the example's day should have server errors and slow requests"
    )


def check_visit_length(con, query, rows):
    """Human visits by their count of page views (10: ten or more), from the events of each visit."""
    assert [r["pages"] for r in rows] == sorted(r["pages"] for r in rows) and max(r["pages"] for r in rows) == 10
    want = run(
        con,
        f"""WITH n AS (
                SELECT v.site, v.visitor_id, v.visit_start, count(e.event_id) FILTER (e.is_pageview) AS pv
                FROM {src('visits')} v JOIN {src('events')} e
                  ON e.site = v.site AND e.date = v.date AND e.visitor_id = v.visitor_id
                 AND e.ts BETWEEN v.visit_start AND v.visit_end
                WHERE v.audience = 'human' AND e.{VISITOR_REQUEST} GROUP BY ALL)
            SELECT least(pv, 10) AS pages, count(*) AS visits FROM n GROUP BY ALL ORDER BY ALL""",
    )
    assert rows == want
    human = run(
        con,
        f"SELECT sum(visits) AS visits, sum(bounces) AS bounces FROM {src('traffic_daily')} WHERE audience = 'human'",
    )[0]
    got = {r["pages"]: r["visits"] for r in rows}
    assert sum(got.values()) == human["visits"]
    assert got[1] == human["bounces"]


def check_visitors_two_ways(con, query, rows):
    """The two columns agree, for every date and site of the events."""
    assert all(r["visitors"] == r["from_events"] for r in rows), [r for r in rows if r["visitors"] != r["from_events"]]
    days = run(con, f"SELECT DISTINCT date, site FROM {src('events')} ORDER BY ALL")
    assert [(r["date"], r["site"]) for r in rows] == [(d["date"], d["site"]) for d in days]


CHECKS = {
    "-- DuckDB: requests and visitors per day and site (humans and bots)": check_daily_totals,
    "-- Requests per local hour of one day, straight from the events": check_hours_from_events,
    "-- Human traffic per day": check_human_traffic,
    "-- Requests and visitors per hour of one day on one site": check_hourly_visitors,
    "-- The 20 pages humans viewed most in May 2015, with their bounce and exit rates": check_top_pages,
    "-- Requests per client: the bot's name, else the rule that made it a bot, else human": check_clients,
    "-- The 20 routes answered 404 most often": check_not_found,
    "-- The 20 most searched terms. Summed over dates, visitors become visitor-days:": check_search_terms,
    "-- Human unique visitors per week: exact where visitors_exact, else an upper": check_weekly_visitors,
    "-- Visits from other sites: per named source (all of its hosts), else per": check_referrers,
    "-- Campaign visits and their page views per visit; a value used by fewer than k": check_campaigns,
    "-- Where do visitors go after /projects/xdotool/? ((exit): the visit ends there)": check_next_pages,
    "-- Server error rate and requests slower than 1 s per upstream and route, on one day": check_routes,
    "-- Distribution of visit length (page views) for humans; 10 stands for 10 or more": check_visit_length,
    "-- Visitors per day, from the summaries and from the events": check_visitors_two_ways,
}


def test_the_doc_has_its_examples():
    assert len(QUERIES) >= 15
    assert len(EXAMPLES) == len(QUERIES), "two examples share a first line"
    assert all(title.startswith("-- ") for title in EXAMPLES), "an example does not open with a comment"


def test_every_example_has_a_check():
    assert sorted(set(EXAMPLES) - set(CHECKS)) == [], "examples without a check"
    assert sorted(set(CHECKS) - set(EXAMPLES)) == [], "checks of examples no longer in the doc"


@pytest.mark.parametrize("title", list(EXAMPLES))
def test_every_example_query_runs(con, title):
    assert run(con, EXAMPLES[title]), "the example returns nothing on the demo warehouse"


@pytest.mark.parametrize("title", list(EXAMPLES))
def test_every_example_ignores_the_session_time_zone(title):
    """An analyst's DuckDB uses the machine's time zone: the answer must not change with it
    (compared without the LIMIT, which picks any of the rows tied at its edge)."""
    query = EXAMPLES[title]
    query = without_limit(query) if re.search(r"\bLIMIT \d+", query) else query
    results = []
    for tz in ("UTC", "Asia/Kathmandu", "America/Los_Angeles"):
        c = duckdb.connect()
        c.execute(f"SET TimeZone = '{tz}'")
        results.append(sorted(run(c, query), key=repr))
        c.close()
    assert results[1] == results[0] and results[2] == results[0]


@pytest.mark.parametrize("title", list(EXAMPLES))
def test_every_example_returns_what_its_text_says(con, title):
    query = EXAMPLES[title]
    CHECKS[title](con, query, run(con, query))
