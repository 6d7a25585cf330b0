//! Shared by the integration tests that need them.
#![allow(dead_code)]

/// Combined-format lines with personal data and secrets planted in every
/// place a URL carries them: path segments, query values under names no list
/// foresees, site-search terms, campaign values, referrer hosts (IPv4, IPv6,
/// no scheme), referrer user-info, paths and queries; plus the ident/user
/// field. [`PLANTED`] lists what was planted.
pub const PLANTED_LINES: &[&str] = &[
    r#"203.0.113.7 - frank [17/May/2015:10:05:03 +0000] "GET /users/jane.doe@example.org/orders?cronKey=6fd2a8c0b1e94f37&page=2 HTTP/1.1" 200 512 "http://84.203.1.217:80/admin?uid=30635594" "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0""#,
    r#"2001:db8:abcd:12::47 - - [17/May/2015:10:05:04 +0000] "GET /wp-login.php?wp_scrape_key=a1b2c3d4e5&wp_scrape_nonce=99887766 HTTP/2.0" 200 5 "www.google.com/search?q=jane.doe%40example.org" "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0""#,
    r#"198.51.100.23 - - [17/May/2015:10:05:05 +0000] "GET /api/session?sessionToken=Zx81kLq0Pw&q=call+%2B49+170+9876543 HTTP/1.1" 200 5 "https://user:hunter2@[2001:db8:abcd::99]:8443/x/3f2504e0-4f89-11d3-9a0c-0305e82c3301?email=jane.doe%40example.org&q=rust" "curl/8.5.0""#,
    r#"198.51.100.24 - - [17/May/2015:10:05:06 +0000] "GET /ip/84.203.1.217/fe80::1%25eth0/AKIAIOSFODNN7EXAMPLE?utm_source=news&utm_content=4111111111111111&s=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln HTTP/1.1" 200 5 "-" "curl/8.5.0""#,
    r#"198.51.100.25 - - [17/May/2015:10:05:07 +0000] "GET /contact/+44-20-7946-0958/::ffff:192.0.2.33 HTTP/1.1" 200 5 "http://\xe4\xe5.example/?token=t0k3n" "curl/8.5.0""#,
];

/// The values planted in [`PLANTED_LINES`]: none may leave the parser.
pub const PLANTED: &[&str] = &[
    "jane.doe@example.org",
    "jane.doe%40example.org",
    "6fd2a8c0b1e94f37",
    "84.203.1.217",
    "30635594",
    "a1b2c3d4e5",
    "99887766",
    "Zx81kLq0Pw",
    "9876543",
    "hunter2",
    "2001:db8:abcd::99",
    "2001:db8:abcd:12::47",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "fe80::1",
    "AKIAIOSFODNN7EXAMPLE",
    "4111111111111111",
    "eyJhbGciOiJIUzI1NiJ9",
    "7946-0958",
    "192.0.2.33",
    "t0k3n",
    "frank",
];
