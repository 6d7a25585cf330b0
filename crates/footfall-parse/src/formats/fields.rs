//! The two fields every format reads the same way: the HTTP status
//! ([`parse_status`]) and the request line `METHOD target PROTOCOL`
//! ([`split_request_line`], [`fill_request`]).
//!
//! One rule for each, so the CLF family, the AWS logs and the JSON logs
//! agree on what a status is and how a request line splits.

use std::borrow::Cow;

use footfall_event::RejectKind;

use crate::record::{dash_none, LineError, RawRecord};

/// Parse an HTTP status: surrounding whitespace ignored, a number in
/// `100..=999`. Empty and `-` are "no status"; both errors are `BadStatus`.
pub(crate) fn parse_status(s: &str) -> Result<u16, LineError> {
    let s = s.trim();
    if s.is_empty() || s == "-" {
        return Err(LineError::new(RejectKind::BadStatus, "no status"));
    }
    match s.parse::<u16>() {
        Ok(v) if (100..=999).contains(&v) => Ok(v),
        _ => Err(LineError::new(
            RejectKind::BadStatus,
            "status is not a number in 100..=999",
        )),
    }
}

/// Split an HTTP request line `METHOD target PROTOCOL` into its parts.
///
/// * The line is trimmed; its first word is the method. A line of one word
///   (`OPTIONS`, `GET`, garbage) is a method without a target.
/// * The protocol is the last word when it starts with `HTTP` (`HTTP/1.1`,
///   `HTTP/V1.0`) or is `-`; otherwise there is none and everything after
///   the method is the target, spaces included (a malformed request is kept
///   whole).
/// * Empty and `-` parts are `None`: `-` and `- - -` have no part at all.
#[inline]
pub(crate) fn split_request_line(line: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let line = line.trim();
    // Byte scans: the method is a few bytes from the start and the protocol a
    // few from the end, nearer than `str::find`'s memchr set-up pays off.
    let Some(space) = line.as_bytes().iter().position(|&b| b == b' ') else {
        return (dash_none(line), None, None);
    };
    let method = &line[..space];
    let rest = line[space + 1..].trim_start();
    let (target, protocol) = match rest.as_bytes().iter().rposition(|&b| b == b' ') {
        Some(i) if is_protocol(&rest[i + 1..]) => (rest[..i].trim_end(), Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    (
        dash_none(method),
        dash_none(target),
        protocol.and_then(dash_none),
    )
}

/// Whether the last word of a request line is its protocol.
#[inline]
fn is_protocol(word: &str) -> bool {
    word.starts_with("HTTP") || word == "-"
}

/// Set `rec`'s method, target and protocol from a request line (see
/// [`split_request_line`]); parts the line lacks are left as they were.
/// The parts borrow from the line when it is borrowed.
#[inline]
pub(crate) fn fill_request<'a>(req: Cow<'a, str>, rec: &mut RawRecord<'a>) {
    let (method, target, protocol) = split_request_line(&req);
    if let Some(m) = method {
        rec.method = Some(sub_cow(&req, m));
    }
    if let Some(t) = target {
        rec.target = Some(sub_cow(&req, t));
    }
    if let Some(p) = protocol {
        rec.protocol = Some(sub_cow(&req, p));
    }
}

/// `part`, a slice of `whole`, with `whole`'s lifetime when `whole` is
/// borrowed; a copy when it is owned.
#[inline]
fn sub_cow<'a>(whole: &Cow<'a, str>, part: &str) -> Cow<'a, str> {
    match whole {
        Cow::Borrowed(w) => {
            let start = part.as_ptr() as usize - w.as_ptr() as usize;
            Cow::Borrowed(&w[start..start + part.len()])
        }
        Cow::Owned(_) => Cow::Owned(part.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{preset, FormatState};

    #[test]
    fn request_line_parts() {
        assert_eq!(
            split_request_line("GET /a?b HTTP/1.1"),
            (Some("GET"), Some("/a?b"), Some("HTTP/1.1"))
        );
        assert_eq!(split_request_line("- - - "), (None, None, None));
        assert_eq!(
            split_request_line("GET /a b"),
            (Some("GET"), Some("/a b"), None)
        );
        assert_eq!(
            split_request_line("GET  /a   HTTP/V1.0 "),
            (Some("GET"), Some("/a"), Some("HTTP/V1.0"))
        );
        assert_eq!(split_request_line("OPTIONS"), (Some("OPTIONS"), None, None));
        assert_eq!(split_request_line(""), (None, None, None));
    }

    /// Where the AWS and the template readers used to disagree: a lone word
    /// was the method for one and the target for the other, `-` parts and a
    /// `-` protocol were values for the template reader, and only it took a
    /// last word `HTTP...` without a slash as the protocol.
    #[test]
    fn one_rule_where_the_readers_disagreed() {
        assert_eq!(split_request_line("GET"), (Some("GET"), None, None));
        assert_eq!(split_request_line(" - "), (None, None, None));
        assert_eq!(
            split_request_line("GET /a -"),
            (Some("GET"), Some("/a"), None)
        );
        assert_eq!(split_request_line("- /a HTTP/1.1").0, None);
        assert_eq!(
            split_request_line("GET /a HTTP"),
            (Some("GET"), Some("/a"), Some("HTTP"))
        );

        // The same through every reader of request lines.
        let clf = r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET" 400 0 "-" "-""#;
        let elb = r#"2015-05-13T23:39:43.945958Z my-elb 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 400 400 0 29 "GET" "curl/7.38.0" - -"#;
        let json =
            r#"{"time_local": "17/May/2015:10:05:03 +0000", "request": "GET", "status": 400}"#;
        for (format, line) in [("combined", clf), ("elb", elb), ("nginx-json", json)] {
            let f = preset(format).unwrap();
            let rec = f.parse(line, &mut FormatState::default()).unwrap();
            assert_eq!(
                (
                    rec.method.as_deref(),
                    rec.target.as_deref(),
                    rec.protocol.as_deref()
                ),
                (Some("GET"), None, None),
                "{format}"
            );
        }
    }

    #[test]
    fn filled_parts_borrow_from_a_borrowed_line() {
        let line = String::from("GET /x HTTP/1.0");
        let mut rec = RawRecord::default();
        fill_request(Cow::Borrowed(&line), &mut rec);
        assert!(matches!(rec.target, Some(Cow::Borrowed("/x"))));
        let mut rec = RawRecord {
            method: Some(Cow::Borrowed("POST")),
            ..RawRecord::default()
        };
        fill_request(Cow::Owned("-".into()), &mut rec);
        assert_eq!(rec.method.as_deref(), Some("POST"));
    }

    #[test]
    fn statuses() {
        assert_eq!(parse_status(" 200 "), Ok(200));
        for (s, reason) in [
            ("", "no status"),
            ("-", "no status"),
            ("99", "status is not a number in 100..=999"),
            ("1000", "status is not a number in 100..=999"),
            ("2OO", "status is not a number in 100..=999"),
        ] {
            let e = parse_status(s).unwrap_err();
            assert_eq!(
                (e.kind, &*e.reason),
                (RejectKind::BadStatus, reason),
                "{s:?}"
            );
        }
    }
}
