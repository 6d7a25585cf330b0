//! Named cases for the content detectors (`footfall_parse::scrub`): for each
//! kind, what is found and what must be left alone, then properties over
//! arbitrary input.

use std::borrow::Cow;

use footfall_parse::dead_letter::scrub_line;
use footfall_parse::scrub::{find, scrub_component, scrub_text, whole, Kind};
use footfall_parse::url::UrlRules;
use proptest::prelude::*;

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

/// (case, input, what [`scrub_text`] makes of it). An unchanged input must
/// come back borrowed.
const TEXT_CASES: &[(&str, &str, &str)] = &[
    // e-mail
    ("email", "jane.doe@example.org", ":email"),
    (
        "email in a path",
        "/u/jane.doe@example.org/edit",
        "/u/:email/edit",
    ),
    (
        "email with tag",
        "write to jane+news@example.co.uk now",
        "write to :email now",
    ),
    (
        "email after mailto",
        "mailto:jane@example.org",
        "mailto::email",
    ),
    ("email at a numeric domain", "li@163.com", ":email"),
    ("email with idn", "jürgen@bücher.de", ":email"),
    ("email cut short", "arobin@shaw.c", ":email"),
    ("retina asset", "/img/logo@2x.png", "/img/logo@2x.png"),
    ("retina asset, fractional", "icon@1.5x.jpg", "icon@1.5x.jpg"),
    (
        "npm version",
        "/npm/vue@2.6.14/dist/vue.js",
        "/npm/vue@2.6.14/dist/vue.js",
    ),
    ("npm range", "/npm/vue@2.x/dist", "/npm/vue@2.x/dist"),
    (
        "npm prerelease",
        "/npm/pkg@1.0.0-beta.js",
        "/npm/pkg@1.0.0-beta.js",
    ),
    ("handle", "/@jane", "/@jane"),
    ("local host", "jane@localhost", "jane@localhost"),
    ("digit in tld", "jane@example.c0m", "jane@example.c0m"),
    // IPv4
    ("ipv4", "84.203.1.217", ":ip"),
    ("ipv4 in a path", "/ip/10.0.0.1/info", "/ip/:ip/info"),
    ("ipv4 with port", "host=192.168.1.1:8080", "host=:ip:8080"),
    ("ipv4 quoted", "\"203.0.113.7\"", "\":ip\""),
    ("ipv4 at a sentence end", "from 198.51.100.4.", "from :ip."),
    (
        "three-part version",
        "/jquery-1.11.2.min.js",
        "/jquery-1.11.2.min.js",
    ),
    ("five parts", "1.2.3.4.5", "1.2.3.4.5"),
    (
        "single-digit version after a name",
        "/plugins/ckeditor-3.6.2.2/ckeditor.js",
        "/plugins/ckeditor-3.6.2.2/ckeditor.js",
    ),
    ("version glued to a letter", "v1.2.3.4", "v1.2.3.4"),
    ("octet over 255", "256.1.1.1", "256.1.1.1"),
    ("decimal", "/price/12.50", "/price/12.50"),
    // IPv6
    ("ipv6 compressed", "2001:db8::47", ":ip"),
    (
        "ipv6 full",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        ":ip",
    ),
    ("ipv6 link-local with zone", "fe80::1%eth0 up", ":ip up"),
    ("ipv6 mapped ipv4", "::ffff:1.2.3.4", ":ip"),
    (
        "ipv6 bracketed with port",
        "http://[2001:db8::1]:443/",
        "http://[:ip]:443/",
    ),
    ("ipv6 loopback", "::1", ":ip"),
    (
        "ipv6 in json",
        r#"{"remote_addr":"2001:db8::47"}"#,
        r#"{"remote_addr":":ip"}"#,
    ),
    ("time", "10:00:00", "10:00:00"),
    (
        "clf time",
        "[17/May/2015:10:05:03 +0000]",
        "[17/May/2015:10:05:03 +0000]",
    ),
    (
        "iso time",
        "2015-05-17T10:05:03.123+00:00",
        "2015-05-17T10:05:03.123+00:00",
    ),
    ("c++ path", "/doc/std::vector", "/doc/std::vector"),
    ("ruby constant", "Foo::Bar", "Foo::Bar"),
    ("mac address", "00:1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:5e"),
    ("unspecified", "a :: b", "a :: b"),
    // UUID
    (
        "uuid",
        "/u/3f2504e0-4f89-11d3-9a0c-0305e82c3301/edit",
        "/u/:uuid/edit",
    ),
    (
        "uuid upper case",
        "3F2504E0-4F89-11D3-9A0C-0305E82C3301",
        ":uuid",
    ),
    (
        "uuid with extension",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301.png",
        ":uuid.png",
    ),
    (
        "uuid glued",
        "x3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "x3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    ),
    // JWT
    ("jwt", JWT, ":jwt"),
    (
        "jwt without signature",
        "eyJhbGciOiJub25lIn0xx.eyJzdWIiOiIxIn0.",
        ":jwt",
    ),
    ("short eyJ", "eyJ.x.y", "eyJ.x.y"),
    // cloud key ids
    ("aws key id", "AKIAIOSFODNN7EXAMPLE", ":key"),
    ("aws temporary key id", "k=ASIAY34FZKBOKMUTVV7A", "k=:key"),
    (
        "google api key",
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
        ":key",
    ),
    (
        "github token",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        ":key",
    ),
    ("slack token", "xoxb-1234567890-abcdefghij", ":key"),
    ("stripe key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", ":key"),
    (
        "aws prefix, too long",
        "AKIAIOSFODNN7EXAMPLEX",
        "AKIAIOSFODNN7EXAMPLEX",
    ),
    ("aws prefix, too short", "AKIAIOSFODNN7", "AKIAIOSFODNN7"),
    // hex
    (
        "md5",
        "/blob/d41d8cd98f00b204e9800998ecf8427e",
        "/blob/:hex",
    ),
    ("16 hex", "0123456789abcdef", ":hex"),
    (
        "hashed asset",
        "/static/main.3f9a8b7c6d5e4f3a2b1c.js",
        "/static/main.:hex.js",
    ),
    (
        "hex after a name",
        "cache-d41d8cd98f00b204e9800998ecf8427e",
        "cache-:hex",
    ),
    ("short hash", "/app.3f2a9c1b.js", "/app.3f2a9c1b.js"),
    ("15 hex", "0123456789abcde", "0123456789abcde"),
    (
        "hex letters only",
        "deadbeefdeadbeefcafe",
        "deadbeefdeadbeefcafe",
    ),
    ("long number", "1234567890123456", "1234567890123456"),
    // opaque tokens
    ("token 20", "u8jzPde0IgxLd6GncfBA", ":token"),
    (
        "token 43 with _",
        "cJZKeOuBrn4kERxqtaUH3aCWcynf_cDxXwCLxiixG1c",
        ":token",
    ),
    (
        "token with padding",
        "t=DL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7FAc9QeWJKY4=",
        "t=:token",
    ),
    (
        "token in a file name",
        "/fonts/xjAJXh38I15wypJXxuGMBp0EAVxt0G0biEntp43Qt6E.ttf",
        "/fonts/:token.ttf",
    ),
    (
        "camel case with a date",
        "/view/TWiki/TWikiUpgradeTo01May2000",
        "/view/TWiki/TWikiUpgradeTo01May2000",
    ),
    (
        "camel case with a year",
        "WordPressPlugin2024Update",
        "WordPressPlugin2024Update",
    ),
    (
        "model-number slug",
        "/p/LG-K8-2017-Dual-16GB-4G",
        "/p/LG-K8-2017-Dual-16GB-4G",
    ),
    (
        "model-number slug 2",
        "Huawei-p10-Dual-64GB-4G-VTR-L29",
        "Huawei-p10-Dual-64GB-4G-VTR-L29",
    ),
    (
        "slug",
        "/blog/how-to-install-rust-1-88-on-linux",
        "/blog/how-to-install-rust-1-88-on-linux",
    ),
    (
        "title slug",
        "Top-10-Reasons-To-Visit-Paris-In-2024",
        "Top-10-Reasons-To-Visit-Paris-In-2024",
    ),
    (
        "lower case and digits only",
        "k3j4h5g6f7d8s9a0z1x2c3v4",
        "k3j4h5g6f7d8s9a0z1x2c3v4",
    ),
    (
        "19 characters",
        "u8jzPde0IgxLd6GncfB",
        "u8jzPde0IgxLd6GncfB",
    ),
    // phones
    ("phone", "+49 170 1234567", ":phone"),
    (
        "phone, us style",
        "call +1 (555) 123-4567 now",
        "call :phone now",
    ),
    ("phone with dashes", "+44-20-7946-0958", ":phone"),
    ("phone compact", "tel:+491701234567", "tel::phone"),
    (
        "utc offset then numbers",
        "+0200 404 123456",
        "+0200 404 123456",
    ),
    ("eight digits", "+12345678", "+12345678"),
    ("c++", "C++ 2024 1234567890", "C++ 2024 1234567890"),
    ("plus glued to a word", "a+491701234567", "a+491701234567"),
    // cards
    ("visa", "4111111111111111", ":card"),
    ("visa grouped", "4111 1111 1111 1111", ":card"),
    ("visa dashed", "n=4111-1111-1111-1111&x", "n=:card&x"),
    ("amex", "378282246310005", ":card"),
    ("amex grouped", "3782 822463 10005", ":card"),
    ("mastercard", "5555555555554444", ":card"),
    ("card then a year", "4111 1111 1111 1111 2024", ":card 2024"),
    ("luhn fails", "4111111111111112", "4111111111111112"),
    ("timestamp in ms", "_=1431856443123", "_=1431856443123"),
    ("status and bytes", "\" 200 2326 \"", "\" 200 2326 \""),
    (
        "19-digit id",
        "/status/1234567890123456789",
        "/status/1234567890123456789",
    ),
    // ordinary text
    (
        "plain path",
        "/presentations/logstash-monitorama-2013/images/kibana-search.png",
        "/presentations/logstash-monitorama-2013/images/kibana-search.png",
    ),
    (
        "wordpress date archive",
        "/2015/05/17/hello-world/",
        "/2015/05/17/hello-world/",
    ),
    ("date", "2024-05-01", "2024-05-01"),
    ("empty", "", ""),
];

#[test]
fn text_cases() {
    for (name, input, want) in TEXT_CASES {
        let got = scrub_text(input);
        assert_eq!(got, *want, "case {name:?}: {input:?}");
        assert_eq!(
            matches!(got, Cow::Borrowed(_)),
            input == want,
            "case {name:?}: borrowed exactly when unchanged"
        );
    }
}

/// URL pieces as logged: escapes are seen through, the rest keeps its encoding.
#[test]
fn component_cases() {
    let cases: &[(&str, &str, &str)] = &[
        ("encoded @", "/u/jane%40example.org/x", "/u/:email/x"),
        ("encoded @, upper case", "JANE%40EXAMPLE.ORG", ":email"),
        (
            "cut-short mailman address",
            "/mailman/options/cnc_notice/arobin%40shaw.c",
            "/mailman/options/cnc_notice/:email",
        ),
        ("encoded colons", "ip=2001%3Adb8%3A%3A1", "ip=:ip"),
        ("encoded zone", "fe80::1%25eth0", ":ip"),
        ("encoded plus", "tel=%2B49%20170%201234567", "tel=:phone"),
        ("plus as space", "%2B49+170+1234567", ":phone"),
        (
            "encoding around kept",
            "caf%C3%A9/jane%40example.org/%D8%B3",
            "caf%C3%A9/:email/%D8%B3",
        ),
        (
            "escapes only",
            "/%D8%B3%D9%84%D8%A7%D9%85/12",
            "/%D8%B3%D9%84%D8%A7%D9%85/12",
        ),
        ("malformed escape", "/a%zz/jane@example.org", "/a%zz/:email"),
        ("invalid utf-8 escapes", "%FF%FE@%FF", "%FF%FE@%FF"),
    ];
    for (name, input, want) in cases {
        let got = scrub_component(input);
        assert_eq!(got, *want, "case {name:?}: {input:?}");
        assert_eq!(
            matches!(got, Cow::Borrowed(_)),
            input == want,
            "case {name:?}"
        );
    }
}

#[test]
fn findings_name_the_address() {
    let f = find(b"from 2001:db8::47 and 84.203.1.217");
    let ips: Vec<String> = f
        .iter()
        .filter_map(|f| match f.kind {
            Kind::Ip(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ips, ["2001:db8::47", "84.203.1.217"]);
    assert_eq!(
        whole("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        Some(Kind::Uuid)
    );
    assert_eq!(whole("jane%40example.org"), Some(Kind::Email));
    assert_eq!(whole("a-jane@example.org-b"), None);
}

/// Text made mostly of what the detectors look at, so that properties meet
/// near-misses and not only noise.
fn detector_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[0-9]{1,4}",
        "[0-9a-f]{1,20}",
        "[A-Za-z0-9]{1,24}",
        Just(".".to_string()),
        Just(":".to_string()),
        Just("::".to_string()),
        Just("@".to_string()),
        Just("%40".to_string()),
        Just("%3A".to_string()),
        Just("+".to_string()),
        Just("-".to_string()),
        Just(" ".to_string()),
        Just("/".to_string()),
        Just("eyJ".to_string()),
        Just("AKIA".to_string()),
        Just("é".to_string()),
        Just("%".to_string()),
        Just("=".to_string()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scrubbing_is_idempotent_and_total(text in prop_oneof![detector_soup(), "\\PC{0,60}", any::<String>()]) {
        let once = scrub_text(&text).into_owned();
        let twice = scrub_text(&once);
        prop_assert_eq!(&once, &twice);
        prop_assert!(matches!(twice, Cow::Borrowed(_)), "a scrubbed text has nothing left to find: {:?}", once);
        let once = scrub_component(&text).into_owned();
        prop_assert_eq!(&once, &scrub_component(&once));
        // Findings are ordered, disjoint and on character boundaries.
        let findings = find(text.as_bytes());
        for pair in findings.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start);
        }
        for f in &findings {
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end) && f.start < f.end);
        }
    }
}

/// A CLF-like line with soup in its fields.
fn soup_line() -> impl Strategy<Value = String> {
    (detector_soup(), detector_soup(), detector_soup(), detector_soup()).prop_map(|(c, u, t, r)| {
        format!(r#"{c} - {u} [17/May/2015:10:05:03 +0000] "GET /{t}?a={r}&q={u} HTTP/1.1" 200 5 "http://{u}@{c}/{r}" "{t}""#)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dead_letter_scrubbing_is_idempotent_and_total(line in prop_oneof![soup_line(), detector_soup(), any::<String>()]) {
        let rules = UrlRules::default();
        let once = scrub_line(&line, &rules, Some("sid")).into_owned();
        prop_assert_eq!(&once, &scrub_line(&once, &rules, Some("sid")));
        if line.contains("[17/May/2015:10:05:03 +0000]") {
            prop_assert!(once.contains("[17/May/2015:10:05:03 +0000]"), "the time is intact: {}", once);
        }
    }
}
