use super::*;

#[test]
fn name_eq_decodes_and_folds_case() {
    assert!(name_eq("pass%77ord", "password"));
    assert!(name_eq("PASS%57ORD", "password"));
    assert!(name_eq("api+key", "api key"));
    assert!(!name_eq("passwor", "password"));
    assert!(!name_eq("password1", "password"));
    assert!(!name_eq("pass%7", "pass%7x"));
    assert!(name_eq("%", "%"));
    assert!(!name_eq("%41", "%41"), "a valid escape decodes");
    assert!(name_eq("%41", "a"));
    assert!(name_eq("%4g", "%4G"));
    assert!(!name_eq("a+b", "a+b"));
    assert!(!name_eq("ab", "a"));
}

proptest::proptest! {
    /// The shortcuts of [`Names::contains`] change nothing.
    #[test]
    fn names_contains_is_name_in(raw in "(amp;)?[a-zA-Z_%+\\[\\];0-9]{0,12}") {
        let rules = UrlRules::default();
        for list in [&rules.secret_params, &rules.allowed_params, &rules.site_search_params] {
            proptest::prop_assert_eq!(Names::new(list).contains(&raw), name_in(&raw, list), "{}", raw);
        }
    }
}

#[test]
fn bracketed_names() {
    let rules = UrlRules::default();
    assert!(rules.is_secret_name("user[password]"));
    assert!(rules.is_secret_name("user%5Bpassword%5D"));
    assert!(rules.is_secret_name("a[b][Token]"));
    assert!(!rules.is_secret_name("user[name]"));
    assert!(!rules.is_secret_name("]"));
}

#[test]
fn clean_text_bounds_on_char_boundary() {
    let long = "é".repeat(500);
    let cleaned = clean_text(&long).unwrap();
    assert_eq!(cleaned.chars().count(), MAX_TEXT_CHARS);
    assert_eq!(clean_text("  %09\t+ ").as_deref(), None);
    assert_eq!(clean_text("a%00b").as_deref(), Some("a b"));
}

#[test]
fn offsets_of_subslices() {
    let s = "abc=def";
    assert_eq!(offset_in(s, &s[4..]), 4);
}

#[test]
fn percent_decoding_keeps_borrowed_and_owned_values_as_they_were() {
    assert!(matches!(
        percent_decode_cow(Cow::Borrowed("plain"), false),
        Cow::Borrowed("plain")
    ));
    assert_eq!(
        percent_decode_cow(Cow::Owned("a%20b+c".into()), false),
        "a b+c"
    );
    assert_eq!(percent_decode_cow(Cow::Owned("a+c".into()), true), "a c");
}
