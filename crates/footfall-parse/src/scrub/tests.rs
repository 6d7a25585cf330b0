use super::*;

fn kinds(text: &str) -> Vec<(&'static str, &str)> {
    find(text.as_bytes())
        .iter()
        .map(|f| (f.kind.placeholder(), &text[f.start..f.end]))
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, failure_persistence: None, ..Default::default() })]

    /// Short texts without a colon hold nothing ([`too_short`]).
    #[test]
    fn short_texts_hold_nothing(text in "[^:]{0,5}") {
        if too_short(&text) {
            proptest::prop_assert!(scan(text.as_bytes(), false).is_empty());
        }
    }

    /// The profile only skips detectors that could not match.
    #[test]
    fn profile_gate_changes_nothing(text in "[0-9a-fA-Z:.@%+_ -]{0,48}|\\PC{0,48}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        proptest::prop_assert_eq!(scan(text.as_bytes(), true), scan(text.as_bytes(), false));
        proptest::prop_assert_eq!(scan(&bytes, true), scan(&bytes, false));
    }
}

#[test]
fn profile_gate_changes_nothing_on_examples() {
    for text in [
        "jane@example.org",
        "2001:db8::47",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "+49 170 1234567",
        "4111 1111 1111 1111",
        "d41d8cd98f00b204e9800998ecf8427e",
        "plain/path/index.html",
    ] {
        assert_eq!(
            scan(text.as_bytes(), true),
            scan(text.as_bytes(), false),
            "{text}"
        );
    }
}

#[test]
fn a_network_address_is_already_scrubbed() {
    let cfg = PrivacyConfig::default();
    for text in ["203.0.113.0 - -", "[2001:db8::]:443"] {
        assert!(matches!(
            scrub_encoded(text, IpAs::Network(&cfg)),
            Cow::Borrowed(_)
        ));
    }
    assert_eq!(
        scrub_encoded("203.0.113.77 2001:db8::47", IpAs::Network(&cfg)),
        "203.0.113.0 2001:db8::"
    );
}

#[test]
fn luhn_and_offsets() {
    let digits = |s: &'static str| s.bytes().map(|c| c - b'0');
    assert!(luhn(digits("4111111111111111")));
    assert!(luhn(digits("79927398713")));
    assert!(!luhn(digits("4111111111111112")));
    assert!(!luhn(digits("79927398710")));
    assert!(looks_like_utc_offset(b"0200 404"));
    assert!(!looks_like_utc_offset(b"4930 1234567"));
    assert!(!looks_like_utc_offset(b"02001234567"));
}

#[test]
fn whole_segments() {
    assert_eq!(whole("jane@example.org"), Some(Kind::Email));
    assert_eq!(whole("jane%40example.co.uk"), Some(Kind::Email));
    assert_eq!(whole("to-jane@example.org"), Some(Kind::Email));
    assert_eq!(whole("mail:jane@example.org"), None);
    assert_eq!(whole("about"), None);
    assert!(kinds("a/b").is_empty());
}
