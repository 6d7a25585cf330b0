#!/usr/bin/env python3
"""The day's summary tables computed by DuckDB with SQL equivalent to footfall's
recompute: read the day's events partition, sessionise (30-minute inactivity),
aggregate the usage and routing tables, and write each as zstd Parquet.

    python3 deploy/bench/duckdb_summaries.py WAREHOUSE YYYY-MM-DD
"""
import os
import sys
import tempfile

import duckdb

wh, day = sys.argv[1], sys.argv[2]
out = tempfile.mkdtemp(prefix="duckdb-summaries-")
con = duckdb.connect()
con.execute(f"""
CREATE TEMP TABLE ev AS
SELECT * FROM read_parquet('{wh}/events/date={day}/*.parquet');

CREATE TEMP TABLE hits AS
SELECT *,
       sum(CASE WHEN prev_ts IS NULL OR ts - prev_ts > INTERVAL 30 MINUTE
                  OR coalesce(utm_campaign, '') <> coalesce(prev_campaign, '') THEN 1 ELSE 0 END)
         OVER (PARTITION BY site, visitor_id ORDER BY ts, kafka_offset) AS visit_no
FROM (SELECT *, lag(ts) OVER w AS prev_ts, lag(utm_campaign) OVER w AS prev_campaign
      FROM ev WINDOW w AS (PARTITION BY site, visitor_id ORDER BY ts, kafka_offset));

CREATE TEMP TABLE visits AS
SELECT site, visitor_id, visit_no, min(ts) AS visit_start, max(ts) AS visit_end,
       arg_min(route, ts) FILTER (WHERE is_pageview) AS entry_route,
       arg_max(route, ts) FILTER (WHERE is_pageview) AS exit_route,
       count(*) FILTER (WHERE is_pageview) AS page_views, count(*) AS requests,
       epoch(max(ts)) - epoch(min(ts)) AS duration_s,
       count(*) FILTER (WHERE is_pageview) <= 1 AS bounce,
       arg_min(referrer_medium, ts) AS medium, arg_min(referrer_source, ts) AS source,
       arg_min(utm_campaign, ts) AS campaign, any_value(device) AS device, any_value(is_bot) AS is_bot
FROM hits GROUP BY ALL;
""")
queries = {
    "traffic_daily": """
        SELECT site, count(*) AS requests, count(*) FILTER (WHERE is_pageview) AS page_views,
               (SELECT count(*) FROM visits v WHERE v.site = e.site) AS visits,
               count(DISTINCT visitor_id) FILTER (WHERE status < 400 OR status >= 500) AS visitors,
               count(DISTINCT visitor_id) FILTER (WHERE (status < 400 OR status >= 500) AND is_bot) AS bot_visitors,
               sum(bytes) AS bytes, count(*) FILTER (WHERE is_bot) AS bot_requests,
               count(*) FILTER (WHERE status BETWEEN 200 AND 299) AS status_2xx,
               count(*) FILTER (WHERE status BETWEEN 300 AND 399) AS status_3xx,
               count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS status_4xx,
               count(*) FILTER (WHERE status >= 500) AS status_5xx,
               count(*) FILTER (WHERE duration_ms <= 100) AS lat_le_100ms,
               count(*) FILTER (WHERE duration_ms > 100) AS lat_gt_100ms
        FROM ev e GROUP BY site""",
    "traffic_hourly": """
        SELECT site, hour(ts) AS hour, count(*) AS requests, count(*) FILTER (WHERE is_pageview) AS page_views,
               count(DISTINCT visitor_id) FILTER (WHERE status < 400 OR status >= 500) AS visitors, sum(bytes) AS bytes
        FROM ev GROUP BY ALL""",
    "pages_daily": """
        SELECT h.site, h.route, count(*) AS views, count(DISTINCT h.visitor_id) AS visitors,
               count(*) FILTER (WHERE v.entry_route = h.route AND v.visit_start = h.ts) AS entries,
               count(*) FILTER (WHERE v.exit_route = h.route AND v.visit_end = h.ts) AS exits,
               count(*) FILTER (WHERE v.bounce) AS bounces
        FROM hits h JOIN visits v USING (site, visitor_id, visit_no) WHERE h.is_pageview GROUP BY ALL""",
    "clients_daily": """
        SELECT site, browser, browser_version, os, device, is_bot, bot_name, count(*) AS requests,
               count(*) FILTER (WHERE is_pageview) AS page_views, count(DISTINCT visitor_id) AS visitors
        FROM ev GROUP BY ALL""",
    "status_daily": "SELECT site, status, route, count(*) AS requests FROM ev GROUP BY ALL",
    "search_terms_daily": """
        SELECT site, 'on-site' AS kind, site_search AS terms, count(*) AS searches, count(DISTINCT visitor_id) AS visitors
        FROM ev WHERE site_search IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT site, 'search-engine', search_terms, count(*), count(DISTINCT visitor_id)
        FROM ev WHERE search_terms IS NOT NULL GROUP BY ALL""",
    "referrers_daily": """
        SELECT site, medium, source, entry_route AS landing_route, count(*) AS visits,
               count(DISTINCT visitor_id) AS visitors, count(*) FILTER (WHERE bounce) AS bounces
        FROM visits GROUP BY ALL""",
    "campaigns_daily": """
        SELECT site, campaign, count(*) AS visits, count(DISTINCT visitor_id) AS visitors,
               sum(page_views) AS page_views, count(*) FILTER (WHERE bounce) AS bounces
        FROM visits WHERE campaign IS NOT NULL GROUP BY ALL""",
    "transitions_daily": """
        SELECT site, coalesce(lag(route) OVER w, '(entrance)') AS from_route, route AS to_route, count(*) OVER () AS n
        FROM hits WHERE is_pageview WINDOW w AS (PARTITION BY site, visitor_id, visit_no ORDER BY ts)""",
    "routes_hourly": """
        SELECT site, hour(ts) AS hour, host, method, route, upstream, count(*) AS requests,
               count(*) FILTER (WHERE status >= 500) AS errors, count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS status_4xx,
               sum(bytes) AS bytes
        FROM ev GROUP BY ALL""",
    "visits": "SELECT * FROM visits",
}
for name, sql in queries.items():
    path = os.path.join(out, f"{name}.parquet")
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
print(out)
