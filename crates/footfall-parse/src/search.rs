//! Search terms in one spelling: what a visitor typed, folded so that the
//! same search counts as one term however it was typed.

use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// `terms` case-folded (Unicode lower case), in Unicode NFC, with every run of
/// whitespace made one space and none at either end: `"Google  Homepage "`
/// and `"google homepage"` are one term, and so are a decomposed and a
/// composed `é`. `None` when nothing but whitespace is left.
///
/// Applied to the event's `search_terms` and `site_search` after the content
/// detectors (whose placeholders, such as `:email`, are lower case already).
pub fn normalize_terms(terms: &str) -> Option<Cow<'_, str>> {
    let normal = if is_plain(terms) {
        Cow::Borrowed(terms)
    } else {
        let lower = terms.to_lowercase();
        let nfc: String = match is_nfc_quick(lower.chars()) {
            IsNormalized::Yes => lower,
            _ => lower.nfc().collect(),
        };
        let mut out = String::with_capacity(nfc.len());
        for word in nfc.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
        Cow::Owned(out)
    };
    (!normal.is_empty()).then_some(normal)
}

/// [`normalize_terms`] of an owned string, reusing it when it is already normal.
pub fn normalized_terms(terms: String) -> Option<String> {
    let changed = match normalize_terms(&terms)? {
        Cow::Borrowed(_) => None,
        Cow::Owned(s) => Some(s),
    };
    Some(changed.unwrap_or(terms))
}

/// Already normal, by a cheap test: ASCII without upper case, with single
/// spaces between words and none at either end.
fn is_plain(s: &str) -> bool {
    let b = s.as_bytes();
    b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
        && !b.windows(2).any(|w| w == b"  ")
        && b.iter().all(|&c| {
            c.is_ascii() && !c.is_ascii_uppercase() && (c == b' ' || !c.is_ascii_whitespace())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_search() {
        let same = [
            "google homepage",
            "Google Homepage",
            "google  homepage",
            "  GOOGLE\thomepage\n",
            "google\u{a0}homepage",
        ];
        for s in same {
            assert_eq!(
                normalize_terms(s).as_deref(),
                Some("google homepage"),
                "{s:?}"
            );
        }
        let composed = "caf\u{e9}";
        let decomposed = "cafe\u{301}";
        assert_eq!(normalize_terms(decomposed).as_deref(), Some(composed));
        assert_eq!(normalize_terms("CAF\u{c9}").as_deref(), Some(composed));
        assert_eq!(normalize_terms("CAFE\u{301}").as_deref(), Some(composed));
        assert_eq!(normalize_terms("Straße").as_deref(), Some("straße"));
        assert_eq!(normalize_terms("ΣΟΦΊΑ").as_deref(), Some("σοφία"));
    }

    #[test]
    fn plain_terms_are_borrowed_and_blank_ones_dropped() {
        assert!(matches!(
            normalize_terms("shoes size 42"),
            Some(Cow::Borrowed(_))
        ));
        assert!(matches!(normalize_terms(":email"), Some(Cow::Borrowed(_))));
        assert_eq!(normalize_terms(""), None);
        assert_eq!(normalize_terms(" \t "), None);
    }
}
