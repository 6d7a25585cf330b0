//! Scrubbing the text of a rejected line before it becomes a dead letter
//! ([`scrub_rejected`], [`scrub_line`]): a dead letter carries no more than
//! an event would, and still parses once its format is fixed.
//!
//! The line did not parse, so the format can only say where its client,
//! user and cookie fields are as far as the line follows it
//! ([`crate::LineFormat::personal_spans`]). The other steps work on the text
//! alone: they find what is personal by its shape (a URL's user-info, a
//! query string, the identity fields of a CLF-shaped line, a `Cookie`
//! header, a `name=value` pair with a secret name) and by the content
//! detectors of [`crate::scrub`].

use std::borrow::Cow;
use std::ops::Range;

use footfall_event::REDACTED;

use crate::formats::Personal;
use crate::privacy::{ip_literal, network, truncate_client, PrivacyConfig};
use crate::scrub::{self, IpAs};
use crate::url::UrlRules;

/// Scrubs a rejected line before it is stored as a dead letter, so that it
/// holds no more than an event would, and still parses once its format is
/// fixed (the runbook has operators re-parse dead letters):
///
/// 1. URLs lose their user-info (`https://user:pass@host` → `https://host`),
///    and every query string (from a `?` to the next space, quote or
///    backslash) goes through the query policy and the detectors, as in
///    events ([`UrlRules::redact_query`]);
/// 2. in a line shaped like the CLF family (`… client ident user [dd/Mon/yyyy:…`)
///    the client is truncated (an address to the first address of its
///    network, a host name as in `client_net`: `*.example.net`) and ident and
///    user become `-`; in JSON, the values of the keys the JSON formats read
///    a user name from ([`USER_KEYS`]) become `-`;
/// 3. `name=value` pairs with a secret name, or the session cookie's, and
///    every pair of a cookie header lose their value (`sid=abc; theme=dark`
///    → `sid=REDACTED; theme=REDACTED`);
/// 4. then the whole line goes through the content detectors
///    ([`crate::scrub`], seeing through `%XX` escapes), with every IP address
///    in any textual form (compressed, IPv4-mapped, bracketed, with a zone,
///    inside JSON strings) replaced by the first address of its network
///    under `rules.privacy` (`203.0.113.77` → `203.0.113.0`; `:ip` when
///    networks are dropped).
///
/// Times are left as they are (`10:00:00`, `[17/May/2015:10:05:03 +0000]`,
/// ISO 8601). Borrowed when nothing changed.
pub fn scrub_line<'a>(
    line: &'a str,
    rules: &UrlRules,
    session_cookie: Option<&str>,
) -> Cow<'a, str> {
    // The detectors go last, as they must see what the steps before wrote (a
    // truncated client name can spell an address); and as what they write
    // can, in garbage, give a step something to do (`http://::1//x@`), the
    // steps run until they settle.
    scrub::until_settled(line, |line| {
        let s = then(Cow::Borrowed(line), strip_userinfo);
        let s = then(s, |t| redact_queries(t, rules));
        let s = then(s, |t| clf_identity(t, &rules.privacy));
        let s = then(s, json_users);
        let s = then(s, |t| pair_values(t, rules, session_cookie));
        then(s, |t| scrub::encoded_pass(t, IpAs::Network(&rules.privacy)))
    })
}

/// [`scrub_line`] after the spans the line's format knows to hold a client,
/// a user name or cookies ([`crate::LineFormat::personal_spans`]) have lost them:
/// a client is truncated as in `client_net` (an address to the first
/// address of its network), a user name and cookies become `-`. This finds
/// what content alone cannot, such as `user=jane` or a client host name in
/// a custom format.
pub fn scrub_rejected<'a>(
    line: &'a str,
    spans: &[(Range<usize>, Personal)],
    rules: &UrlRules,
    session_cookie: Option<&str>,
) -> Cow<'a, str> {
    let mut edits = Edits::new(line);
    for (span, personal) in spans {
        let field = &line[span.clone()];
        if field == "-" {
            continue;
        }
        let new = match personal {
            Personal::Client if could_be_client(field) => client(field, &rules.privacy),
            Personal::Client => continue,
            Personal::User | Personal::Cookie => Cow::Borrowed("-"),
        };
        if new != field {
            edits.replace(span.start, span.end, &new);
        }
    }
    match edits.finish() {
        Cow::Borrowed(line) => scrub_line(line, rules, session_cookie),
        Cow::Owned(line) => Cow::Owned(scrub_line(&line, rules, session_cookie).into_owned()),
    }
}

/// A client field as a dead letter keeps it: an address as the first
/// address of its network, a host name as in `client_net`; `-` when
/// networks are dropped.
fn client<'a>(field: &str, privacy: &PrivacyConfig) -> Cow<'a, str> {
    match ip_literal(field) {
        Some(ip) => {
            network(ip, privacy).map_or(Cow::Borrowed("-"), |(net, _)| Cow::Owned(net.to_string()))
        }
        None => truncate_client(field, privacy).map_or(Cow::Borrowed("-"), Cow::Owned),
    }
}

/// Whether a field can be a client: an address or a host name, nothing a
/// line in another format put there (quotes, braces, commas).
fn could_be_client(field: &str) -> bool {
    ip_literal(field).is_some()
        || field
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

/// `step` applied to `s`, keeping `s` when the step changes nothing.
fn then<'a>(s: Cow<'a, str>, step: impl FnOnce(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    let changed = match step(&s) {
        Cow::Owned(o) => Some(o),
        Cow::Borrowed(_) => None,
    };
    changed.map_or(s, Cow::Owned)
}

/// `user:pass@` removed from the authority of every `scheme://` URL.
fn strip_userinfo(line: &str) -> Cow<'_, str> {
    let mut edits = Edits::new(line);
    for at in memchr::memchr_iter(b':', line.as_bytes()) {
        if !line[at..].starts_with("://") {
            continue;
        }
        let start = at + 3;
        let len = line[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\\'))
            .unwrap_or(line.len() - start);
        if let Some(userinfo) = line[start..start + len].rfind('@') {
            edits.replace(start, start + userinfo + 1, "");
        }
    }
    edits.finish()
}

/// Query strings in a line through the query policy.
fn redact_queries<'a>(line: &'a str, rules: &UrlRules) -> Cow<'a, str> {
    let mut edits = Edits::new(line);
    for q in memchr::memchr_iter(b'?', line.as_bytes()) {
        let start = q + 1;
        let len = line[start..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\\')
            .unwrap_or(line.len() - start);
        if let Cow::Owned(r) = rules.redact_query(&line[start..start + len]) {
            edits.replace(start, start + len, &r);
        }
    }
    edits.finish()
}

/// In a CLF-shaped line, the client truncated (an address to its network's
/// first address, a host name as in `client_net`) and the ident and user
/// fields replaced by `-`: the last three fields before the
/// bracketed time are client, ident and user (two: client and user, as in a
/// line that lost a field; one: the client).
fn clf_identity<'a>(line: &'a str, privacy: &PrivacyConfig) -> Cow<'a, str> {
    let Some(bracket) = clf_time_at(line) else {
        return Cow::Borrowed(line);
    };
    let fields: Vec<(usize, &str)> = line[..bracket]
        .split(' ')
        .scan(0, |at, f| {
            let start = *at;
            *at += f.len() + 1;
            Some((start, f))
        })
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let n = fields.len();
    let client = n.saturating_sub(3).min(n.saturating_sub(1));
    let mut edits = Edits::new(line);
    for (i, &(at, field)) in fields.iter().enumerate().skip(client) {
        let new = if i > client {
            Cow::Borrowed("-")
        } else {
            self::client(field, privacy)
        };
        if field != "-" && new != field {
            edits.replace(at, at + field.len(), &new);
        }
    }
    edits.finish()
}

/// Where `[dd/Mon/yyyy:` starts, after a space.
fn clf_time_at(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    memchr::memchr_iter(b'[', b).find(|&i| {
        let t = &b[i + 1..];
        i > 0
            && b[i - 1] == b' '
            && t.len() >= 12
            && t[..2].iter().all(u8::is_ascii_digit)
            && t[2] == b'/'
            && t[3..6].iter().all(u8::is_ascii_alphabetic)
            && t[6] == b'/'
            && t[7..11].iter().all(u8::is_ascii_digit)
            && t[11] == b':'
    })
}

/// The JSON keys the JSON formats read a remote user from: nginx JSON's
/// `remote_user` (its default mapping), Caddy's `user_id`, Traefik's
/// `ClientUsername`.
pub const USER_KEYS: &[&str] = &["remote_user", "user_id", "ClientUsername"];

/// String values of [`USER_KEYS`] in a JSON line replaced by `-`.
fn json_users(line: &str) -> Cow<'_, str> {
    if memchr::memchr(b'{', line.as_bytes()).is_none() {
        return Cow::Borrowed(line);
    }
    let mut edits = Edits::new(line);
    for key in USER_KEYS {
        let quoted = format!("\"{key}\"");
        for at in memchr::memmem::find_iter(line.as_bytes(), quoted.as_bytes()) {
            let rest = &line[at + quoted.len()..];
            let Some(value) = rest.trim_start().strip_prefix(':') else {
                continue;
            };
            let Some(body) = value.trim_start().strip_prefix('"') else {
                continue;
            };
            let start = line.len() - body.len();
            let len = json_string_len(body);
            if &line[start..start + len] != "-" && len > 0 {
                edits.replace(start, start + len, "-");
            }
        }
    }
    edits.finish()
}

/// Bytes of a JSON string's body up to its closing quote (or the end).
fn json_string_len(body: &str) -> usize {
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    b.len()
}

/// `name=value` pairs lose their value when their name is a secret
/// parameter or the session cookie, or when they are a cookie header's:
/// two or more pairs joined by `;` (`sid=abc; _ga=GA1.2.3.4`, W3C's
/// `sid=abc;+_ga=…`), or a quoted string that is one pair (`"theme=dark"`).
/// Events never carry a cookie's value, whatever its name; logfmt-like
/// `status=200 path=/a` keeps its values.
fn pair_values<'a>(line: &'a str, rules: &UrlRules, session_cookie: Option<&str>) -> Cow<'a, str> {
    let pairs = Pair::all(line);
    let mut edits = Edits::new(line);
    for (i, p) in pairs.iter().enumerate() {
        let value = &line[p.eq + 1..p.end];
        if value.is_empty() || value == REDACTED {
            continue;
        }
        let name = &line[p.start..p.eq];
        let cookie = i.checked_sub(1).is_some_and(|j| pairs[j].joins(p, line))
            || pairs.get(i + 1).is_some_and(|next| p.joins(next, line))
            || p.is_quoted(line);
        if cookie || rules.is_secret_name(name) || session_cookie == Some(name) {
            edits.replace(p.eq + 1, p.end, REDACTED);
        }
    }
    edits.finish()
}

/// A `name=value` pair in a line: the byte offsets of its name's start, its
/// `=` and its value's end.
struct Pair {
    start: usize,
    eq: usize,
    end: usize,
}

impl Pair {
    /// Every pair with a name, in order. A value ends at white space or at
    /// one of `& ; " \ ,`.
    fn all(line: &str) -> Vec<Pair> {
        let b = line.as_bytes();
        let is_name = |c: &u8| {
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'[' | b']' | b'%' | b'$')
        };
        memchr::memchr_iter(b'=', b)
            .filter_map(|eq| {
                let start = eq - b[..eq].iter().rev().take_while(|c| is_name(c)).count();
                let end = eq
                    + 1
                    + line[eq + 1..]
                        .find(|c: char| {
                            c.is_whitespace() || matches!(c, '&' | ';' | '"' | '\\' | ',')
                        })
                        .unwrap_or(line.len() - eq - 1);
                (start < eq).then_some(Pair { start, eq, end })
            })
            .collect()
    }

    /// `next` follows this pair in a cookie header: only `;` and spaces
    /// (W3C's `+`, CloudFront's `%20`) stand between them.
    fn joins(&self, next: &Pair, line: &str) -> bool {
        self.end < next.start
            && line[self.end..next.start]
                .strip_prefix(';')
                .is_some_and(|gap| {
                    gap.replace("%20", " ")
                        .bytes()
                        .all(|c| matches!(c, b' ' | b'+' | b'\t'))
                })
    }

    /// The pair is a whole quoted string.
    fn is_quoted(&self, line: &str) -> bool {
        let b = line.as_bytes();
        self.start > 0 && b[self.start - 1] == b'"' && b.get(self.end) == Some(&b'"')
    }
}

/// Non-overlapping replacements of byte ranges of a text, made in order.
struct Edits<'a> {
    text: &'a str,
    out: Option<String>,
    copied: usize,
}

impl<'a> Edits<'a> {
    fn new(text: &'a str) -> Self {
        Edits {
            text,
            out: None,
            copied: 0,
        }
    }

    /// Replaces `text[start..end]`; ignored when it overlaps an earlier edit.
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        if start < self.copied {
            return;
        }
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.text.len()));
        out.push_str(&self.text[self.copied..start]);
        out.push_str(with);
        self.copied = end;
    }

    fn finish(self) -> Cow<'a, str> {
        match self.out {
            Some(mut out) => {
                out.push_str(&self.text[self.copied..]);
                Cow::Owned(out)
            }
            None => Cow::Borrowed(self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_keep_their_shape_and_lose_what_is_personal() {
        let rules = UrlRules::default();
        let cases: &[(&str, &str, &str)] = &[
            (
                "combined, compressed IPv6 client, ident and user, e-mail, secret, IP referrer",
                r#"2001:db8::47 ident frank@example.org [17/May/2015:10:05:03 +0000] "GET /u/jane@example.org?cronKey=4f3a9c&page=2 HTTP/1.1" 200 512 "http://84.203.1.217:80/" "curl/8.0""#,
                r#"2001:db8:: - - [17/May/2015:10:05:03 +0000] "GET /u/:email?cronKey=REDACTED&page=2 HTTP/1.1" 200 512 "http://84.203.1.0:80/" "curl/8.0""#,
            ),
            (
                "link-local client with a zone",
                r#"fe80::1%eth0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
                r#"fe80:: - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
            ),
            (
                "IPv4-mapped client",
                r#"::ffff:198.51.100.9 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
                r#"198.51.100.0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
            ),
            (
                "bracketed with a port, full IPv6",
                "[2001:0db8:0000:0000:0000:0000:0000:0047]:443 x",
                "[2001:db8::]:443 x",
            ),
            (
                "virtual host first",
                r#"www.example.org:443 203.0.113.77 - bob [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
                r#"www.example.org:443 203.0.113.0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
            ),
            (
                "host name client",
                r#"pc7.dialup.example.net - - [01/Aug/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 5"#,
                r#"*.example.net - - [01/Aug/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 5"#,
            ),
            (
                "a line that lost its ident field",
                r#"192.168.202.254 [20/Jul/2009:22:59:29 +0000] "GET /x HTTP/1.0" 404 46210 "-" "gPXE/0.9.7""#,
                r#"192.168.202.0 [20/Jul/2009:22:59:29 +0000] "GET /x HTTP/1.0" 404 46210 "-" "gPXE/0.9.7""#,
            ),
            (
                "nginx JSON",
                r#"{"remote_addr":"2001:db8::47","remote_user":"jane","time_local":"17/May/2015:10:05:03 +0000","request":"GET /?sessionToken=abc&q=x HTTP/1.1","status":"200"}"#,
                r#"{"remote_addr":"2001:db8::","remote_user":"-","time_local":"17/May/2015:10:05:03 +0000","request":"GET /?sessionToken=REDACTED&q=x HTTP/1.1","status":"200"}"#,
            ),
            (
                "W3C times and addresses",
                "2015-05-17 10:05:03 203.0.113.7 GET /a - 443 - 198.51.100.9 Mozilla/5.0 200",
                "2015-05-17 10:05:03 203.0.113.0 GET /a - 443 - 198.51.100.0 Mozilla/5.0 200",
            ),
            (
                "ISO time with offset",
                "2015-05-17T10:05:03.123+02:00 host=10.1.2.3",
                "2015-05-17T10:05:03.123+02:00 host=10.1.2.0",
            ),
            (
                "cookies and secrets outside a query",
                r#"10.1.2.3 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "sid=abc123; theme=dark" token=xyz"#,
                r#"10.1.2.0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "sid=REDACTED; theme=REDACTED" token=REDACTED"#,
            ),
            (
                "a cookie header: every value, whatever its name",
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 2x0 5 "_ga=GA1.2.1234567890.1700000000; user=alice;theme=dark""#,
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 2x0 5 "_ga=REDACTED; user=REDACTED;theme=REDACTED""#,
            ),
            (
                "one cookie as a quoted field, and in a JSON array",
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 2x0 5 "uid=8f1e27" {"Cookie":["pref=en"]}"#,
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 2x0 5 "uid=REDACTED" {"Cookie":["pref=REDACTED"]}"#,
            ),
            (
                "W3C cookie field",
                "2015-05-17 10:05:03 GET /a - 443 uid=8f1e27;+pref=en x",
                "2015-05-17 10:05:03 GET /a - 443 uid=REDACTED;+pref=REDACTED x",
            ),
            (
                "CloudFront cookie field, percent-encoded",
                "2019-12-04\t21:02:31\tGET\t/a\t2x0\tsession-id=abc%3D%3D;%20theme=dark\tHit",
                "2019-12-04\t21:02:31\tGET\t/a\t2x0\tsession-id=REDACTED;%20theme=REDACTED\tHit",
            ),
            (
                "logfmt-like pairs keep their values",
                "level=warn status=2x0 path=/a bytes=5",
                "level=warn status=2x0 path=/a bytes=5",
            ),
            (
                "user-info in a referrer",
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "https://bob:hunter2@example.org/a" "x""#,
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "https://example.org/a" "x""#,
            ),
            (
                "nothing to scrub",
                r#"- - - [17/May/2015:10:05:03 +0000] "GET /about HTTP/1.1" 200 5"#,
                r#"- - - [17/May/2015:10:05:03 +0000] "GET /about HTTP/1.1" 200 5"#,
            ),
        ];
        for (name, line, want) in cases {
            let got = scrub_line(line, &rules, None);
            assert_eq!(got, *want, "{name}");
            assert_eq!(scrub_line(&got, &rules, None), got, "{name}: idempotent");
        }
    }

    #[test]
    fn what_the_format_knows_goes_too() {
        use crate::formats::TemplateFormat;
        let rules = UrlRules::default();
        let f = TemplateFormat::nginx(
            "custom",
            r#"ip=$remote_addr user=$remote_user t=[$time_local] "$request" $status uid=$cookie_uid"#,
        )
        .unwrap();
        for (line, want) in [
            (
                r#"ip=rs31.sfu.ca user=alice.smith t=[10/Oct/2024:13:55:36 +0000] "GET /p HTTP/1.1" 2x0 uid=8f1e"#,
                r#"ip=*.sfu.ca user=- t=[10/Oct/2024:13:55:36 +0000] "GET /p HTTP/1.1" 2x0 uid=-"#,
            ),
            (
                r#"ip=203.0.113.9 user=- t=[10/Oct/2024:13:55:36 +0000] "GET /p HTTP/1.1" 2x0 uid=-"#,
                r#"ip=203.0.113.0 user=- t=[10/Oct/2024:13:55:36 +0000] "GET /p HTTP/1.1" 2x0 uid=-"#,
            ),
        ] {
            let got = scrub_rejected(line, &f.personal_spans(line), &rules, None);
            assert_eq!(got, want);
            assert_eq!(
                scrub_rejected(&got, &f.personal_spans(&got), &rules, None),
                got
            );
        }
        // Content alone keeps the user name: the format is what finds it.
        let line = r#"ip=198.51.100.7 user=alice.smith t=[10/Oct/2024:13:55:36 +0000] "GET /p HTTP/1.1" 2x0 uid=-"#;
        assert!(scrub_line(line, &rules, None).contains("alice.smith"));
        assert!(!scrub_rejected(line, &f.personal_spans(line), &rules, None).contains("alice"));
    }

    #[test]
    fn a_w3c_line_loses_what_its_fields_directive_names() {
        use crate::formats::{w3c::W3cFormat, FormatState, LineFormat};
        let f = W3cFormat::w3c();
        let mut state = FormatState::default();
        let fields =
            "#Fields: date time c-ip cs-username cs-method cs-uri-stem sc-status cs(Cookie)";
        assert!(
            f.parse(fields, &mut state).is_err(),
            "a directive is a header"
        );
        let kept = f.personal_spans(fields, &state);
        assert!(
            kept.is_empty(),
            "the directive itself keeps its names: {kept:?}"
        );
        let line = "2024-03-01 12:00:00 192.0.2.1 alice GET /a 2x0 sid=abc;+theme=dark";
        let spans = f.personal_spans(line, &state);
        let got = scrub_rejected(line, &spans, &UrlRules::default(), None);
        assert_eq!(got, "2024-03-01 12:00:00 192.0.2.0 - GET /a 2x0 -");
        // Without the directive (the default layout has no such fields here).
        assert!(!scrub_rejected(
            line,
            &f.personal_spans(line, &FormatState::default()),
            &UrlRules::default(),
            None
        )
        .contains("192.0.2.1"));
    }

    #[test]
    fn an_s3_line_loses_its_requester() {
        use crate::formats::{aws::S3, FormatState, LineFormat};
        let line = r#"79a5 bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 arn:aws:iam::123456789012:user/alice 3E57 REST.GET.OBJECT k "GET /k HTTP/1.1" OK - 113 - 7 - "-" "curl/8""#;
        let spans = S3.personal_spans(line, &FormatState::default());
        let got = scrub_rejected(line, &spans, &UrlRules::default(), None);
        assert!(got.contains("] 192.0.2.0 - 3E57 REST.GET.OBJECT"), "{got}");
        assert!(
            !got.contains("alice") && !got.contains("192.0.2.3"),
            "{got}"
        );
        // Content alone kept the requester.
        assert!(scrub_line(line, &UrlRules::default(), None).contains("user/alice"));
    }

    #[test]
    fn a_squid_line_loses_its_client_host_and_user() {
        use crate::formats::{squid::Squid, FormatState, LineFormat};
        let line = "1286536309.450 3 ws7.corp.example TCP_MISS/2x0 1457 GET http://example.com/ alice.corp DIRECT/203.0.113.5 text/html";
        let spans = Squid.personal_spans(line, &FormatState::default());
        let got = scrub_rejected(line, &spans, &UrlRules::default(), None);
        assert_eq!(
            got,
            "1286536309.450 3 *.corp.example TCP_MISS/2x0 1457 GET http://example.com/ - DIRECT/203.0.113.0 text/html"
        );
    }

    #[test]
    fn dead_letters_follow_the_privacy_settings() {
        let line = r#"203.0.113.77 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "sess=s3cr3t""#;
        let drop = UrlRules {
            privacy: PrivacyConfig {
                drop_network: true,
                ..Default::default()
            },
            ..UrlRules::default()
        };
        assert_eq!(
            scrub_line(line, &drop, Some("sess")),
            r#"- - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "sess=REDACTED""#
        );
        let p16 = UrlRules {
            privacy: PrivacyConfig {
                ipv4_prefix: 16,
                ..Default::default()
            },
            ..UrlRules::default()
        };
        assert!(scrub_line(line, &p16, None).starts_with("203.0.0.0 - - "));
    }
}
