#!/usr/bin/env python3
"""Generates footfall's privacy corpus: access logs that plant personal data
of every category footfall promises to scrub, in every place a line can carry
it, and the list of what was planted.

    python3 tests/privacy/generate.py [OUT_DIR]     # default: tests/privacy

Writes (deterministic; the repository keeps the output, and
tests/python/test_privacy_corpus.py checks that it is what this script makes):

* combined.log  - `combined`: client in every address form, ident and user,
                  secrets in path segments, query values and referrers, and
                  (every fifth line) a line that `combined` rejects, carrying
                  the same categories;
* apache.log    - Apache's combined `LogFormat` (`%h %l %u ...`): identd names;
* cookies.log   - an nginx `log_format` with `$http_cookie` (session cookie `sid`);
* nginx.json    - `nginx-json`: addresses and secrets inside JSON strings;
* planted.tsv   - category, place, value: every value that must never appear
                  in anything footfall writes (topics, Parquet, dead letters, logs).
"""

import json
import os
import sys

# One value per category, unique enough that a match is never a coincidence.
EMAIL = "jane.planted@example.org"
EMAIL2 = "bob.planted@example.net"
IPV4 = "203.0.113.99"
IPV6 = "2001:db8:4711::99"
UUID = "7d0b3c52-5b7e-4c2b-9a31-0f3e4d5c6b7a"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
HEX = "9f86d081884c7d659a2feaa0c55ad015"
B64 = "Qm9iUGxhbnRlZFRva2VuMjAyNlhZWg"
PHONE = "+4915112345678"
CARD = "4111111111111111"
AWS_KEY = "AKIAIOSFODNN7PLANTED"
CRON_KEY = "c0ffee0123456789abcdef0123456789"
SESSION_TOKEN = "sessTokPlanted2026XyZ"
UID = "uid-planted-4242"

CLIENTS = [  # (form, value as logged, value to search for)
    ("ipv4", "198.51.100.77", "198.51.100.77"),
    ("ipv6 compressed", "2001:db8:47::9", "2001:db8:47::9"),
    ("ipv6 full", "2001:0db8:0048:0000:0000:0000:0000:0009", "2001:0db8:0048:0000:0000:0000:0000:0009"),
    ("ipv4-mapped", "::ffff:198.51.100.78", "198.51.100.78"),
    ("ipv6 bracketed", "[2001:db8:49::5]", "2001:db8:49::5"),
    ("ipv6 link-local with zone", "fe80::1cafe%eth0", "fe80::1cafe"),
]
IDENTS = ["jdoe-ident-planted", "-"]
USERS = ["frank.user.planted", "alice.planted@example.com"]

PATHS = [  # (category, path)
    ("email", f"/users/{EMAIL}/profile"),
    ("email percent-encoded", "/users/carol.planted%40example.org/orders"),
    ("ipv4 in path", f"/hosts/{IPV4}/status"),
    ("ipv6 in path", f"/hosts/{IPV6}/status"),
    ("uuid", f"/orders/{UUID}"),
    ("jwt", f"/auth/{JWT}"),
    ("hex token", f"/download/{HEX}"),
    ("base64 token", f"/invite/{B64}"),
    ("phone", f"/call/{PHONE}"),
    ("card", f"/pay/{CARD}/confirm"),
    ("access key", f"/keys/{AWS_KEY}"),
]
QUERIES = [  # (category, query string)
    ("email in query", f"email={EMAIL2}&page=2"),
    ("cronKey", f"doing_wp_cron=1&cronKey={CRON_KEY}"),
    ("sessionToken", f"sessionToken={SESSION_TOKEN}&view=list"),
    ("uid", f"uid={UID}"),
    ("phone in query", "phone=%2B4917612345678"),
    ("card in query", "cc=5500005555555559"),
    ("token in allowed parameter", f"page={HEX}"),
    ("email in site search", "q=erin.planted%40example.org"),
    ("email in utm", "utm_source=newsletter&utm_medium=email&utm_campaign=gina.planted@example.org"),
]
REFERRERS = [  # (category, referrer)
    ("ipv4 host", "http://84.203.1.217:80/"),
    ("ipv6 host", "https://[2001:db8:50::7]/landing"),
    ("email in referrer query", "https://mail.example/compose?to=dave.planted@example.org"),
    ("token in referrer path", f"https://partner.example/r/{JWT}/go"),
    ("schemeless with email", "www.example.com/u/harry.planted@example.org"),
    ("secret in referrer query", f"https://shop.example/cb?session={SESSION_TOKEN}x&amount=3"),
]
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BOT_UA = "Mozilla/5.0 (compatible; ExampleBot/1.0; +mailto:ops.planted@example.net)"
COOKIE_SID = "SIDplanted0123456789abcdef"
COOKIE_OTHER = "trackPlanted987654321"

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def clf_time(minute):
    return f"20/Nov/2026:10:{minute:02d}:00 +0000"


def combined_lines():
    out, minute = [], 0
    targets = [p for _, p in PATHS] + [f"/search?{q}" for _, q in QUERIES]
    for i, target in enumerate(targets):
        form, client, _ = CLIENTS[i % len(CLIENTS)]
        user = USERS[i % len(USERS)]
        _, ref = REFERRERS[i % len(REFERRERS)]
        ua = BOT_UA if i % 5 == 4 else UA
        out.append(f'{client} - {user} [{clf_time(minute)}] "GET {target} HTTP/1.1" 200 512 "{ref}" "{ua}"')
        minute += 1
    # Rejected lines among them (few enough that the format still fits).
    for i, bad in enumerate(reject_lines()):
        out.insert(5 * i + 2, bad)
    return out


def apache_lines():
    """Apache's combined LogFormat, whose `%l` is the identd name."""
    out = []
    for i, (_, path) in enumerate(PATHS[:4]):
        _, client, _ = CLIENTS[i % len(CLIENTS)]
        out.append(f'{client} {IDENTS[0]} {USERS[i % 2]} [{clf_time(20 + i)}] "GET {path} HTTP/1.1" 200 64 "-" "{UA}"')
    return out


def cookie_lines():
    out = []
    for i, (_, path) in enumerate(PATHS[:6]):
        _, client, _ = CLIENTS[i % len(CLIENTS)]
        cookie = f"sid={COOKIE_SID}; tracking={COOKIE_OTHER}; theme=dark"
        out.append(
            f'{client} - {USERS[0]} [{clf_time(30 + i)}] "GET {path} HTTP/1.1" 200 100 "-" "{UA}" "{cookie}"'
        )
    # Rejected (a status that is not a number): its dead letter keeps no cookie value.
    out.append(f'198.51.100.204 - - [{clf_time(36)}] "GET /a HTTP/1.1" OK 100 "-" "{UA}" "{cookie}"')
    return out


# A custom layout, not CLF-shaped: only the format says where the client and
# the user are.
CUSTOM_FORMAT = 'ip=$remote_addr user=$remote_user t=[$time_local] "$request" $status $body_bytes_sent uid=$cookie_uid'
CUSTOM_USER = "kim.custom.planted"
CUSTOM_HOST = "dialup7.planted-isp.example"
CUSTOM_UID = "uidPlanted5551234"


def custom_lines():
    out = []
    for i, client in enumerate([CUSTOM_HOST, "198.51.100.79"]):
        out.append(f'ip={client} user={CUSTOM_USER} t=[{clf_time(50 + i)}] "GET /a HTTP/1.1" 200 64 uid={CUSTOM_UID}')
    # Rejected (a status that is not a number): its dead letter keeps neither.
    out.append(f'ip={CUSTOM_HOST} user={CUSTOM_USER} t=[{clf_time(52)}] "GET /a HTTP/1.1" OK 64 uid={CUSTOM_UID}')
    return out


def json_lines():
    out = []
    for i, (_, query) in enumerate(QUERIES):
        _, client, _ = CLIENTS[i % len(CLIENTS)]
        _, ref = REFERRERS[i % len(REFERRERS)]
        out.append(json.dumps({
            "time_iso8601": f"2026-11-20T11:{i:02d}:00+00:00",
            "remote_addr": client,
            "remote_user": USERS[1],
            "request": f"GET /api/v1/items?{query} HTTP/1.1",
            "status": 200,
            "body_bytes_sent": 42,
            "http_referer": ref,
            "http_user_agent": UA,
            "http_cookie": f"sid={COOKIE_SID}",
        }, separators=(",", ":")))
    return out


def reject_lines():
    return [
        # A time footfall cannot read.
        f'198.51.100.201 {IDENTS[0]} {USERS[1]} [20/Nov/2026:25:61:00 +0000] "GET /users/{EMAIL}/x HTTP/1.1" 200 5 "-" "{UA}"',
        # A status that is not a number, a compressed IPv6 client.
        f'2001:db8:51::3 - {USERS[0]} [{clf_time(40)}] "GET /orders/{UUID}?token={HEX} HTTP/1.1" OK 5 "-" "{BOT_UA}"',
        # Cut off after the request: an IPv4-mapped client, a card and a phone in the target.
        f'::ffff:198.51.100.202 - - [{clf_time(41)}] "GET /pay/{CARD}?phone={PHONE}&email={EMAIL2}',
        # Not a log line at all, carrying a JWT, an access key and an address.
        f"connection from 198.51.100.203 rejected: key={AWS_KEY} jwt={JWT} user={EMAIL}",
    ]


def planted():
    rows = []
    for form, _, value in CLIENTS:
        rows.append(("client", form, value))
    rows += [("client", "rejected line", v) for v in ("198.51.100.201", "2001:db8:51::3", "198.51.100.202", "198.51.100.203", "198.51.100.204")]
    for v in IDENTS + USERS:
        if v != "-":
            rows.append(("ident/user", "ident or user field", v))
    for cat, path in PATHS:
        seg = path.split("/")[2]
        rows.append((cat, "path segment", seg.replace("%40", "@")))
    for v in (EMAIL2, CRON_KEY, SESSION_TOKEN, UID, "+4917612345678", "5500005555555559", "erin.planted@example.org", "gina.planted@example.org"):
        rows.append(("query value", "query", v))
    for v in ("84.203.1.217", "2001:db8:50::7", "dave.planted@example.org", "harry.planted@example.org"):
        rows.append(("referrer", "referrer", v))
    rows.append(("email", "user agent (dead letters)", "ops.planted@example.net"))
    rows += [("cookie", "cookie value", COOKIE_SID), ("cookie", "cookie value", COOKIE_OTHER)]
    rows += [("ident/user", "custom format's user field", CUSTOM_USER), ("client", "custom format's host name", CUSTOM_HOST),
             ("cookie", "custom format's cookie field", CUSTOM_UID)]
    return sorted(set(rows))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out_dir, exist_ok=True)
    files = {
        "combined.log": combined_lines(),
        "apache.log": apache_lines(),
        "cookies.log": cookie_lines(),
        "custom.log": custom_lines(),
        "nginx.json": json_lines(),
        "planted.tsv": ["category\tplace\tvalue"] + ["\t".join(r) for r in planted()],
    }
    for name, lines in files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
