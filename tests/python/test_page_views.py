"""Page views under the definition in docs/tables.md, counted here from the
raw lines and compared with the warehouse: a page view is a GET or HEAD of a
`page` (the kind rules below, an independent reading of the documented
rules), answered 2xx or 304, that is not a repeated fixed-interval polling
request of its visitor-day. zanbil's extension-less `/image/…` requests are
assets and thedash's polling API is `api`, so neither counts.

The logs come from ../shared/data (they carry no licence that lets them into
tests/data); the test says plainly when they are not there."""

import datetime
import gzip
import json
import os
import re
from collections import defaultdict

import duckdb
import pytest

from footfall_support import ROOT, ingest_and_aggregate

SHARED = os.environ.get("FOOTFALL_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
LOGS = {
    "zanbil": (os.path.join(SHARED, "zanbil-kaggle-head10k", "access_10000.log.gz"), "combined"),
    "thedash": (os.path.join(SHARED, "thedash-nginx-json-2013", "access.log.gz"), "nginx-json"),
}
MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}

# The built-in kind rules of docs/tables.md ("kind"), restated.
ASSET_EXT = set(
    "css js mjs cjs map jpg jpeg png gif ico cur svg svgz webp avif apng bmp tif tiff heic jxl woff woff2 ttf "
    "otf eot mp3 mp4 m4a m4v ogg oga ogv opus wav flac aac webm mpeg mpg avi flv mov mkv m3u8 ts vtt swf wasm "
    "webmanifest xml".split()
)
DOWNLOAD_EXT = set(
    "pdf doc docx xls xlsx ppt pptx odt ods odp rtf epub csv zip gz tgz bz2 xz zst tar rar 7z iso exe msi dmg "
    "pkg deb rpm apk jar bin log txt".split()
)
FEED_SEGMENTS = {"feed", "rss", "atom", "rss2"}
ASSET_PREFIXES = ("/image/", "/images/", "/img/", "/static/", "/assets/", "/media/", "/_next/", "/favicon")
ASSET_DIRS = ("/wp-content/uploads/", "/wp-content/themes/", "/wp-includes/")


def kind(path):
    p = path.lower()
    if not p.startswith("/") or p == "/robots.txt":
        return "other"
    last = p.rsplit("/", 1)[-1].split(";", 1)[0]
    if (
        p == "/api"
        or p.startswith(("/api/", "/socket.io/"))
        or p in ("/graphql", "/wp-json")
        or p.startswith("/graphql/")
        or "/wp-json/" in p
        or p.endswith("/wp-json")
        or last in ("admin-ajax.php", "xmlrpc.php", "wp-cron.php")
    ):
        return "api"
    stem, dot, ext = last.rpartition(".")
    if dot and stem and ext:
        if ext == "xml" and (stem in FEED_SEGMENTS or stem == "index"):
            return "feed"
        if ext in ASSET_EXT:
            return "asset"
        if ext in DOWNLOAD_EXT:
            return "download"
        if ext in ("rss", "atom"):
            return "feed"
    if p.startswith(ASSET_PREFIXES) or any(d in p for d in ASSET_DIRS):
        return "asset"
    if dot and stem and ext == "json":
        return "api"
    segments = [s for s in p.split("/") if s]
    if (segments and segments[-1] in FEED_SEGMENTS) or p.startswith("/feeds/"):
        return "feed"
    return "page"


def route(path):
    """The route template's built-in segment rules (docs/tables.md, `route`)
    that occur on these logs: ids, dates, UUIDs, hex hashes, an id with an
    extension."""
    out = []
    for s in path.split(";", 1)[0].split("/"):
        if s.isdigit():
            s = ":id"
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}(T[\d:]+Z?)?", s):
            s = ":date"
        elif re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", s):
            s = ":uuid"
        elif re.fullmatch(r"[0-9a-fA-F]{16,}", s) and re.search(r"\d", s):
            s = ":hex"
        elif re.fullmatch(r"\d+\.[A-Za-z0-9]+", s):
            s = ":id." + s.split(".", 1)[1]
        out.append(s)
    return "/".join(out)


def lines(name):
    """(local date, microseconds, visitor, method, path, status) per line."""
    path, fmt = LOGS[name]
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if fmt == "combined":
                q = line.split('"')
                if len(q) < 6:
                    continue
                when, request, status, ua, addr = line.split("[", 1)[1].split("]", 1)[0], q[1], q[2].split()[0], q[5], line.split(" ", 1)[0]
            else:
                j = json.loads(line)
                when, request, status, ua, addr = j["time_local"], j["request"], j["status"], j["http_user_agent"], j["remote_addr"]
            day, mon, rest = when.split("/", 2)
            t = datetime.datetime(int(rest[:4]), MONTHS[mon], int(day), int(rest[5:7]), int(rest[8:10]), int(rest[11:13]))
            parts = request.split()
            if len(parts) < 2 or not status.isdigit():
                continue
            target = parts[1].split("?", 1)[0].split("#", 1)[0]
            micros = int(t.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1_000_000
            yield t.date(), micros, (addr, ua), parts[0], target, int(status)


def is_polling(times, min_requests=6, jitter=0.1):
    """docs/tables.md: at least 6 requests, 80 % of the gaps within 10 % (or
    one second) of the median gap, the median at least one second."""
    if len(times) < max(min_requests, 3):
        return False
    gaps = [b - a for a, b in zip(times, times[1:])]
    median = sorted(gaps)[len(gaps) // 2]
    if median < 1_000_000:
        return False
    allowed = max(int(median * jitter), 1_000_000)
    return sum(abs(g - median) <= allowed for g in gaps) * 5 >= len(gaps) * 4


def page_views(name):
    """{date: page views} counted from the raw lines."""
    visitor_days = defaultdict(list)
    for date, micros, visitor, method, path, status in lines(name):
        visitor_days[(date, visitor)].append((micros, method, path, status))
    views = defaultdict(int)
    for (date, _), requests in visitor_days.items():
        requests.sort(key=lambda r: r[0])
        by_route = defaultdict(list)
        for i, r in enumerate(requests):
            by_route[route(r[2])].append(i)
        repeats = set()
        if len(requests) >= 6:
            for positions in by_route.values():
                if is_polling([requests[i][0] for i in positions]):
                    repeats.update(positions[1:])
        for i, (_, method, path, status) in enumerate(requests):
            page = kind(path) == "page" and method in ("GET", "HEAD")
            if page and (200 <= status <= 299 or status == 304) and i not in repeats:
                views[date] += 1
    return dict(views)


def warehouse(work, name):
    """{date: (page views, human page views)} from traffic_daily, and
    {date: requests of kind page} from the events table, for one log."""
    path, fmt = LOGS[name]
    plain = os.path.join(work, "access.log")
    with gzip.open(path, "rb") as f, open(plain, "wb") as g:
        g.write(f.read())
    wh = ingest_and_aggregate(work, f"pageviews.{name}", [plain], format=fmt)
    db = duckdb.connect()
    daily = db.execute(
        f"""SELECT date, sum(page_views), sum(page_views) FILTER (WHERE audience = 'human')
            FROM read_parquet('{wh}/traffic_daily/*/*.parquet', hive_partitioning = true)
            GROUP BY ALL"""
    ).fetchall()
    pages = db.execute(
        f"""SELECT date, count(*) FROM read_parquet('{wh}/events/*/*.parquet', hive_partitioning = true)
            WHERE kind = 'page' GROUP BY ALL"""
    ).fetchall()
    return {d: (n, h) for d, n, h in daily}, dict(pages)


@pytest.mark.parametrize("name", sorted(LOGS))
def test_page_views_follow_the_documented_definition(tmp_path, name):
    if not os.path.exists(LOGS[name][0]):
        print(f"{LOGS[name][0]} not present: page views on {name} are not checked")
        return
    want = page_views(name)
    daily, pages = warehouse(str(tmp_path), name)
    assert {d: n for d, (n, _) in daily.items()} == want
    for d, (n, human) in daily.items():
        assert 0 < human < n, "these logs have both human and bot page views"
        print(f"{name} {d}: {n} page views ({human} human) of {pages[d]} requests of kind page")


def test_the_rules_here_are_the_documented_ones():
    """The restated rules must be able to fail: on these paths they give the
    documented kinds and routes."""
    assert kind("/image/60844/productModel/200x200") == "asset"
    assert kind("/api/dashboard/x/ping") == "api"
    assert kind("/blog/feed/") == "feed"
    assert kind("/report.pdf") == "download"
    assert kind("/product/31893/62100/") == "page"
    assert route("/product/31893/62100/") == "/product/:id/:id/"
    assert route("/d/2024-05-01/123.jpg") == "/d/:date/:id.jpg"
