use std::io::Read;

use super::{clf, find_byte, TemplateFormat};
use super::{COMBINED, COMMON, VCOMBINED, VCOMMON};

fn fixture_lines() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");
    let mut lines = Vec::new();
    for f in [
        "elastic-apache-logs/apache_logs.gz",
        "secrepo-selflogs/access-2018-12-15.log.gz",
        "secrepo-selflogs/access.log.2022-12-22.gz",
    ] {
        let mut data = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(format!("{dir}/{f}")).unwrap())
            .read_to_end(&mut data)
            .unwrap();
        lines.extend(String::from_utf8_lossy(&data).lines().map(str::to_string));
    }
    lines
}

/// Variants a fast path could get wrong: padding, escapes, stray quotes
/// and brackets, dashes, cut-off lines, a trailing field.
fn variants(line: &str, seed: usize) -> Vec<String> {
    let b = line.as_bytes();
    let mut out = vec![line.to_string(), format!("{line} extra \"x\"")];
    for k in 0..12 {
        let at = (seed * 7919 + k * 104_729) % b.len().max(1);
        let mut v = b.to_vec();
        v.insert(at, [b' ', b'"', b'\\', b'[', b']', b'-'][k % 6]);
        out.push(String::from_utf8_lossy(&v).into_owned());
        out.push(String::from_utf8_lossy(&b[..at]).into_owned());
    }
    out
}

#[test]
fn fast_path_agrees_with_the_template_parser() {
    let lines = fixture_lines();
    assert!(lines.len() > 10_000);
    for (name, template, prefix) in [
        ("combined", COMBINED, ""),
        ("common", COMMON, ""),
        ("vcombined", VCOMBINED, "www.example.org:443 "),
        ("vcommon", VCOMMON, "-:80 "),
    ] {
        let f = TemplateFormat::nginx(name, template).unwrap();
        let shape = f.clf.expect("a CLF layout");
        let (mut taken, mut total) = (0usize, 0usize);
        let mut day = super::super::time::ClfDay::default();
        for (i, line) in lines.iter().enumerate() {
            for v in variants(&format!("{prefix}{line}"), i) {
                total += 1;
                if let Some(fast) = clf::parse(shape, &v, &mut day) {
                    taken += 1;
                    assert_eq!(Ok(fast), f.parse_template(&v), "{name}: {v:?}");
                }
            }
        }
        // Most variants are still well-formed: the comparison is not vacuous.
        assert!(
            taken * 4 > total,
            "{name}: fast path took {taken} of {total}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
    /// Generated lines with quotes, backslashes, brackets and padding in
    /// every field: wherever the direct parser gives a record, it is the
    /// template parser's.
    #[test]
    fn fast_path_agrees_on_generated_lines(
        client in "[0-9a-z.:-]{0,12}",
        user in "[a-z -]{0,5}",
        day in 1u8..33,
        mon in proptest::sample::select(vec!["Jan", "Feb", "Mar", "Dec", "Xyz"]),
        hour in 0u8..25,
        min in 0u8..61,
        off in proptest::sample::select(vec!["+0000", "+0000", "-0700", "+0530", "+1400", "+00x0"]),
        request in proptest::prop_oneof![
            3 => "[A-Z]{1,6} /[a-z0-9/?=&%.-]{0,20} HTTP/1\\.[01]",
            1 => "[ -~]{0,30}",
        ],
        status in proptest::sample::select(vec!["200", "200", "404", "304", "99", "20 0"]),
        bytes in proptest::prop_oneof![3 => "[0-9]{1,6}", 1 => "-|[0-9 -]{0,6}"],
        referrer in proptest::prop_oneof![
            2 => "-",
            2 => "https://[a-z.]{1,12}/[a-z/?=&]{0,12}",
            1 => "[ -~]{0,20}",
        ],
        agent in proptest::prop_oneof![
            3 => "Mozilla/5\\.0 \\([A-Za-z0-9; ]{0,20}\\) [A-Za-z/.0-9 ]{0,20}",
            1 => "[ -~]{0,30}",
        ],
        tail in "|[ -~]{0,10}",
        cut in 0usize..40,
    ) {
        let line = format!(
            "{client} - {user} [{day:02}/{mon}/2024:{hour:02}:{min:02}:07 {off}] \"{request}\" {status} {bytes} \"{referrer}\" \"{agent}\"{tail}"
        );
        // A quarter of the lines are cut off, some inside the last quoted field.
        let mut end = line.len().saturating_sub(cut.saturating_sub(30) * 7);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        for (template, prefix) in [(COMBINED, ""), (COMMON, ""), (VCOMBINED, "h.example:80 ")] {
            let f = TemplateFormat::nginx("t", template).unwrap();
            let v = format!("{prefix}{}", &line[..end]);
            let mut day = super::super::time::ClfDay::default();
            if let Some(fast) = clf::parse(f.clf.unwrap(), &v, &mut day) {
                proptest::prop_assert_eq!(Ok(fast), f.parse_template(&v), "{:?}", v);
            }
        }
    }
}

#[test]
fn clf_layouts_are_recognised() {
    let shape = |t: &str| TemplateFormat::nginx("t", t).unwrap().clf;
    assert_eq!(
        shape(COMBINED),
        Some(clf::Shape {
            vhost: false,
            combined: true
        })
    );
    assert_eq!(
        shape(VCOMMON),
        Some(clf::Shape {
            vhost: true,
            combined: false
        })
    );
    let apache = r#"%h - %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
    let apache = TemplateFormat::apache("a", apache).unwrap();
    assert_eq!(
        apache.clf,
        Some(clf::Shape {
            vhost: false,
            combined: true
        })
    );
    assert_eq!(
        shape(super::TRAEFIK_CLF),
        None,
        "fields after the user agent"
    );
    assert_eq!(
        shape(r#"$remote_addr [$time_local] "$request" $status"#),
        None
    );
}

#[test]
fn find_byte_finds_the_first_match_at_every_position() {
    for len in 0..40 {
        for at in 0..=len {
            let mut hay = vec![b'a'; len];
            if at < len {
                hay[at] = b' ';
                // A later match must not be reported instead of the first.
                hay[len - 1] = b' ';
            }
            for from in 0..=len {
                let want = hay[from..]
                    .iter()
                    .position(|&c| c == b' ')
                    .map(|i| from + i);
                assert_eq!(
                    find_byte(b' ', &hay, from),
                    want,
                    "len {len} at {at} from {from}"
                );
            }
        }
    }
    // Bytes next to the needle's value (0x1f, 0x21) and above 0x80 are not matches.
    let hay = [0x1fu8, 0x21, 0xa0, 0x21, 0x1f, 0xff, 0x21, 0x1f, 0x21, 0x20];
    assert_eq!(find_byte(b' ', &hay, 0), Some(9));
    assert_eq!(find_byte(b' ', &hay[..9], 0), None);
}

#[test]
fn personal_spans_follow_the_template_as_far_as_the_line_does() {
    use super::super::Personal;
    let f = TemplateFormat::nginx(
        "custom",
        r#"ip=$remote_addr user=$remote_user t=[$time_local] "$request" $status uid=$cookie_uid "$http_cookie""#,
    )
    .unwrap();
    let line = r#"ip=rs31.sfu.ca user=alice.smith t=[10/Oct/2024:13:55:36 +0000] "GET /p HTTP/1.1" 2x0 uid=8f1e "a=1; b=2""#;
    let got: Vec<(&str, Personal)> = f
        .personal_spans(line)
        .into_iter()
        .map(|(span, p)| (&line[span], p))
        .collect();
    assert_eq!(
        got,
        [
            ("rs31.sfu.ca", Personal::Client),
            ("alice.smith", Personal::User),
            ("8f1e", Personal::Cookie),
            ("a=1; b=2", Personal::Cookie),
        ]
    );
    // Cut short after the user: the spans before stay.
    let cut = "ip=203.0.113.9 user=bob t=[garbage";
    let spans = f.personal_spans(cut);
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(&cut[spans[1].0.clone()], "bob");
    // Not the format at all: nothing.
    assert!(f.personal_spans("something else entirely").is_empty());
}
