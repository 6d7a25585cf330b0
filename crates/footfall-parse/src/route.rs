//! Route templates: ids, hashes, tokens, dates and e-mail addresses in a path
//! are collapsed to placeholders, so that page tables have bounded
//! cardinality and carry no personal data.
//!
//! The path is split on `/` and each segment is looked at on its own:
//!
//! | segment | template |
//! |---|---|
//! | `123` (ASCII digits only) | `:id` |
//! | `2024-05-01`, `2024-05-01T10:00:00Z` | `:date` |
//! | one finding of the content detectors ([`crate::scrub`]) that covers the whole segment, seen through `%XX` escapes: `3f2504e0-4f89-11d3-9a0c-0305e82c3301`, `d41d8cd98f00b204e9800998ecf8427e`, `jane%40example.org`, `84.203.1.217`, a JWT | its placeholder: `:uuid`, `:hex`, `:email`, `:ip`, `:jwt`, ... |
//! | 24+ characters of `[A-Za-z0-9_.~+=-]` with letters and digits that look random (base64 ids, session ids) | `:token` |
//! | any of the above plus a file extension: `123.jpg`, `2024-05-01.pdf` | `:id.jpg`, `:date.pdf` |
//! | a dotted name with a hash part: `main.3f9a8b7c6d5e4f3a2b1c.js` | `main.:hex.js` |
//!
//! The pipeline templates paths the detectors have already scrubbed, so
//! routes hold no more than paths do; the rows above make a route a
//! template on its own too (for callers with a raw path).
//!
//! Everything else (words, slugs, short codes, `v2`, percent-encoded text) is
//! kept byte-for-byte. The query and fragment are dropped, and so are path
//! parameters (`;jsessionid=...`). Empty segments (`//`) and a trailing `/`
//! are kept.
//!
//! The built-in rules are plain byte scans (no regular expressions). Sites can
//! add their own rules (a regular expression matched against a whole segment
//! and the placeholder that replaces it), which are tried before the built-in
//! ones, and can list path prefixes whose paths are kept as they are.

use std::borrow::Cow;

use memchr::{memchr, memchr2};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::scrub::{self, is_long_hex, is_uuid, Kind};

/// A site's route configuration, as read from the configuration file.
///
/// ```
/// use footfall_parse::route::{RouteConfig, RouteRules};
/// let config: RouteConfig = serde_json::from_str(r#"{
///     "rules": [{"segment": "[a-z]{2}-[A-Z]{2}", "placeholder": ":locale"}],
///     "keep_prefixes": ["/blog/"]
/// }"#).unwrap();
/// let rules = RouteRules::from_config(&config).unwrap();
/// assert_eq!(rules.template("/en-GB/users/42"), "/:locale/users/:id");
/// assert_eq!(rules.template("/blog/2015/05/17/hello"), "/blog/2015/05/17/hello");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Extra rules, tried in order before the built-in ones.
    pub rules: Vec<RouteRuleConfig>,
    /// Paths equal to, or below, one of these prefixes are kept unchanged
    /// (apart from dropping the query).
    pub keep_prefixes: Vec<String>,
    /// Whether the built-in rules apply (default `true`).
    pub builtin: bool,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            rules: Vec::new(),
            keep_prefixes: Vec::new(),
            builtin: true,
        }
    }
}

/// One configured rule: a regular expression matched against a whole path
/// segment, and the placeholder that replaces a matching segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRuleConfig {
    /// Regular expression (Rust `regex` syntax) matched against a whole path
    /// segment: implicitly anchored at both ends. The segment is as logged
    /// (still percent-encoded), without path parameters.
    pub segment: String,
    /// Literal placeholder that replaces a matching segment, such as `:slug`.
    /// Non-empty, without `/`.
    pub placeholder: String,
}

/// A route configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RouteRuleError {
    /// The pattern is not a valid regular expression.
    #[error("route rule pattern {pattern:?} is not a valid regular expression: {source}")]
    Pattern {
        /// The pattern as configured.
        pattern: String,
        /// Why it does not compile.
        #[source]
        source: regex::Error,
    },
    /// The replacement is empty or contains `/`.
    #[error("route rule replacement {0:?} must be non-empty and must not contain '/'")]
    Replacement(String),
    /// A keep prefix does not start with `/`.
    #[error("route keep prefix {0:?} must start with '/'")]
    Prefix(String),
}

#[derive(Debug, Clone)]
struct CustomRule {
    regex: Regex,
    replacement: String,
}

/// Turns paths into route templates; see the [module documentation](self).
///
/// `Default` has the built-in rules only.
#[derive(Debug, Clone)]
pub struct RouteRules {
    custom: Vec<CustomRule>,
    keep_prefixes: Vec<String>,
    builtin: bool,
}

impl Default for RouteRules {
    fn default() -> Self {
        RouteRules {
            custom: Vec::new(),
            keep_prefixes: Vec::new(),
            builtin: true,
        }
    }
}

impl RouteRules {
    /// The built-in rules only (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the rules of one site from its configuration.
    pub fn from_config(config: &RouteConfig) -> Result<Self, RouteRuleError> {
        let mut rules = RouteRules {
            builtin: config.builtin,
            ..RouteRules::default()
        };
        for rule in &config.rules {
            rules.push_rule(&rule.segment, &rule.placeholder)?;
        }
        for prefix in &config.keep_prefixes {
            rules.add_keep_prefix(prefix)?;
        }
        Ok(rules)
    }

    /// Adds a rule after the existing custom rules (custom rules are tried
    /// before the built-in ones; the first match wins).
    ///
    /// ```
    /// use footfall_parse::route::RouteRules;
    /// let mut rules = RouteRules::new();
    /// rules.add_rule(r"[A-Z]{3}-\d{4}", ":ticket").unwrap();
    /// assert_eq!(rules.template("/issues/ABC-1234/comments"), "/issues/:ticket/comments");
    /// assert!(rules.add_rule("(", ":x").is_err());
    /// ```
    pub fn add_rule(
        &mut self,
        pattern: &str,
        replacement: &str,
    ) -> Result<&mut Self, RouteRuleError> {
        self.push_rule(pattern, replacement)?;
        Ok(self)
    }

    /// Keeps every path equal to `prefix` or below it unchanged. A prefix
    /// ending in `/` matches paths starting with it; otherwise the prefix must
    /// end at a segment boundary (`/blog` matches `/blog` and `/blog/x`, not `/blogger`).
    pub fn add_keep_prefix(&mut self, prefix: &str) -> Result<&mut Self, RouteRuleError> {
        if !prefix.starts_with('/') {
            return Err(RouteRuleError::Prefix(prefix.to_string()));
        }
        self.keep_prefixes.push(prefix.to_string());
        Ok(self)
    }

    /// Turns the built-in rules on or off (custom rules and prefixes still apply).
    pub fn set_builtin(&mut self, enabled: bool) -> &mut Self {
        self.builtin = enabled;
        self
    }

    /// The route template of `path`. Anything from the first `?` or `#` on is
    /// dropped. Borrowed when nothing else changed.
    ///
    /// ```
    /// use footfall_parse::route::RouteRules;
    /// let rules = RouteRules::default();
    /// assert_eq!(rules.template("/users/123/orders?page=2"), "/users/:id/orders");
    /// assert_eq!(rules.template("/img/123.jpg"), "/img/:id.jpg");
    /// assert!(matches!(rules.template("/about/team"), std::borrow::Cow::Borrowed(_)));
    /// ```
    pub fn template<'a>(&self, path: &'a str) -> Cow<'a, str> {
        self.template_with(path, Detectors::Run)
    }

    /// [`template`](Self::template) of a path the content detectors have
    /// already scrubbed ([`crate::url::UrlRules::redact_path`]), without running them
    /// again on each segment: what they would find is a placeholder already
    /// (`scrubbed_paths_template_alike` checks it).
    pub(crate) fn template_scrubbed<'a>(&self, path: &'a str) -> Cow<'a, str> {
        self.template_with(path, Detectors::Done)
    }

    fn template_with<'a>(&self, path: &'a str, detectors: Detectors) -> Cow<'a, str> {
        let path = match memchr2(b'?', b'#', path.as_bytes()) {
            Some(n) => &path[..n],
            None => path,
        };
        if self.keep_prefixes.iter().any(|p| prefix_matches(path, p)) {
            return Cow::Borrowed(path);
        }
        let bytes = path.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut start = 0;
        loop {
            let end = memchr(b'/', &bytes[start..]).map_or(bytes.len(), |n| start + n);
            if end > start {
                let full = &path[start..end];
                let segment = match memchr(b';', full.as_bytes()) {
                    Some(n) => &full[..n],
                    None => full,
                };
                let replacement = self.segment(segment, detectors);
                if replacement.is_some() || segment.len() != full.len() {
                    let buf = out.get_or_insert_with(|| String::with_capacity(path.len()));
                    buf.push_str(&path[copied..start]);
                    match replacement {
                        Some(r) => r.write(buf),
                        None => buf.push_str(segment),
                    }
                    copied = end;
                }
            }
            if end == bytes.len() {
                break;
            }
            start = end + 1;
        }
        match out {
            Some(mut buf) => {
                buf.push_str(&path[copied..]);
                Cow::Owned(buf)
            }
            None => Cow::Borrowed(path),
        }
    }

    fn segment<'s>(&'s self, segment: &'s str, detectors: Detectors) -> Option<Segment<'s>> {
        if segment.is_empty() {
            return None;
        }
        if let Some(rule) = self.custom.iter().find(|r| r.regex.is_match(segment)) {
            return Some(Segment::Custom(&rule.replacement));
        }
        if self.builtin {
            builtin_segment(segment, detectors)
        } else {
            None
        }
    }

    fn push_rule(&mut self, pattern: &str, replacement: &str) -> Result<(), RouteRuleError> {
        if replacement.is_empty() || replacement.contains('/') {
            return Err(RouteRuleError::Replacement(replacement.to_string()));
        }
        let regex = Regex::new(&anchored(pattern)).map_err(|source| RouteRuleError::Pattern {
            pattern: pattern.to_string(),
            source,
        })?;
        self.custom.push(CustomRule {
            regex,
            replacement: replacement.to_string(),
        });
        Ok(())
    }
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn prefix_matches(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
}

/// What a segment becomes.
#[derive(Debug, PartialEq)]
enum Segment<'s> {
    /// A configured replacement.
    Custom(&'s str),
    /// A built-in placeholder, optionally followed by `.ext`.
    Placeholder(&'static str, Option<&'s str>),
    /// A dotted name with some parts replaced.
    Dotted(String),
}

impl Segment<'_> {
    fn write(&self, out: &mut String) {
        match self {
            Segment::Custom(r) => out.push_str(r),
            Segment::Placeholder(p, ext) => {
                out.push_str(p);
                if let Some(ext) = ext {
                    out.push('.');
                    out.push_str(ext);
                }
            }
            Segment::Dotted(s) => out.push_str(s),
        }
    }
}

/// The built-in template of one non-empty segment, if it changes.
fn builtin_segment(segment: &str, detectors: Detectors) -> Option<Segment<'_>> {
    let bytes = segment.as_bytes();
    // Every built-in rule needs a digit (ids, dates, hashes, tokens) or an
    // `@` / `%40` (e-mail addresses): plain words are done in one scan.
    if !bytes
        .iter()
        .any(|&c| c.is_ascii_digit() || c == b'@' || c == b'%')
    {
        return None;
    }
    if let Some(p) = classify_exact(bytes, segment, detectors) {
        return Some(Segment::Placeholder(p, None));
    }
    if memchr(b'.', bytes).is_some() {
        // `<id>.jpg`, `<uuid>.png`, `2024-05-01.pdf`.
        let dot = memchr::memrchr(b'.', bytes).unwrap_or(0);
        let (stem, ext) = (&segment[..dot], &segment[dot + 1..]);
        if is_extension(ext.as_bytes()) {
            if let Some(p) = classify_exact(stem.as_bytes(), stem, detectors) {
                return Some(Segment::Placeholder(p, Some(ext)));
            }
        }
        // Hashed names (`main.<hash>.js`, `<token>.zip`): replace the hash-like
        // parts, unless every part is one (a JWT is a single token).
        if let Some(dotted) = dotted_parts(segment) {
            return Some(Segment::Dotted(dotted));
        }
    }
    is_token(bytes).then_some(Segment::Placeholder(":token", None))
}

/// `segment` with its hash-like dot-separated parts replaced, when some but
/// not all parts are hash-like.
fn dotted_parts(segment: &str) -> Option<String> {
    let placeholder = |part: &str| match part.as_bytes() {
        b if is_uuid(b) => Some(":uuid"),
        b if is_long_hex(b) => Some(":hex"),
        b if is_token(b) => Some(":token"),
        _ => None,
    };
    let (mut replaced, mut kept) = (false, false);
    for part in segment.split('.') {
        if placeholder(part).is_some() {
            replaced = true;
        } else {
            kept = true;
        }
    }
    if !(replaced && kept) {
        return None;
    }
    let mut out = String::with_capacity(segment.len());
    for (i, part) in segment.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(placeholder(part).unwrap_or(part));
    }
    Some(out)
}

/// The placeholder for a whole segment (or a file stem) by every rule but
/// the token heuristic.
fn classify_exact(b: &[u8], s: &str, detectors: Detectors) -> Option<&'static str> {
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some(":id");
    }
    if is_date(b) {
        return Some(":date");
    }
    // The commonest findings in a segment, without running every detector
    // (`shapes_are_what_the_detectors_find` checks they agree).
    if is_uuid(b) {
        return Some(Kind::Uuid.placeholder());
    }
    if is_long_hex(b) {
        return Some(Kind::Hex.placeholder());
    }
    match detectors {
        Detectors::Run => scrub::whole(s).map(Kind::placeholder),
        Detectors::Done => None,
    }
}

/// Whether a path's segments still need the content detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detectors {
    Run,
    /// The path was scrubbed whole: a finding is a placeholder already.
    Done,
}

/// 1 to 5 ASCII letters/digits with at least one letter (`jpg`, `mp4`, `html`).
fn is_extension(b: &[u8]) -> bool {
    (1..=5).contains(&b.len())
        && b.iter().all(u8::is_ascii_alphanumeric)
        && b.iter().any(u8::is_ascii_alphabetic)
}

/// `YYYY-MM-DD` with a plausible month and day, optionally followed by a
/// time part `T...` made of digits, `:`, `.`, `Z`, `+`, `-` and `%3A`.
fn is_date(b: &[u8]) -> bool {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    match b.get(10) {
        None => true,
        Some(b'T' | b't') => {
            b.len() > 11
                && b[11..].iter().all(|c| {
                    c.is_ascii_digit()
                        || matches!(
                            c,
                            b':' | b'.' | b'Z' | b'z' | b'+' | b'-' | b'%' | b'A' | b'a'
                        )
                })
        }
        Some(_) => false,
    }
}

/// An opaque identifier: at least 24 characters from the base64/base64url
/// alphabet (plus `.` and `~`), with both letters and digits, that looks random
/// rather than like a slug. "Random" means either a separator-free run of 16+
/// characters mixing letters and digits, or frequent switches between
/// lower-case, upper-case and digits (at least one per four characters).
/// Hyphenated slugs (`how-to-install-rust-1-88-on-linux`) have neither.
fn is_token(b: &[u8]) -> bool {
    if b.len() < 24 {
        return false;
    }
    let (mut any_digit, mut any_letter) = (false, false);
    let (mut run, mut run_digit, mut run_letter) = (0usize, false, false);
    let mut long_mixed_run = false;
    let mut switches = 0usize;
    let mut prev = 0u8;
    for &c in b {
        let class = match c {
            b'0'..=b'9' => 1,
            b'a'..=b'z' => 2,
            b'A'..=b'Z' => 3,
            b'-' | b'_' | b'.' | b'~' | b'+' | b'=' => 0,
            _ => return false,
        };
        if class == 0 {
            long_mixed_run |= run >= 16 && run_digit && run_letter;
            (run, run_digit, run_letter, prev) = (0, false, false, 0);
            continue;
        }
        run += 1;
        if class == 1 {
            (any_digit, run_digit) = (true, true);
        } else {
            (any_letter, run_letter) = (true, true);
        }
        if prev != 0 && prev != class {
            switches += 1;
        }
        prev = class;
    }
    long_mixed_run |= run >= 16 && run_digit && run_letter;
    any_digit && any_letter && (long_mixed_run || switches * 4 >= b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The shortcuts of [`classify_exact`] name a segment as the
        /// detectors do.
        #[test]
        fn shapes_are_what_the_detectors_find(s in "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{14,40}|[0-9a-zA-Z:@._-]{1,40}") {
            let b = s.as_bytes();
            if is_uuid(b) {
                proptest::prop_assert_eq!(scrub::whole(&s), Some(Kind::Uuid));
            }
            if is_long_hex(b) {
                proptest::prop_assert_eq!(scrub::whole(&s), Some(Kind::Hex));
            }
        }
    }

    proptest::proptest! {
        /// Templating a scrubbed path without the detectors gives what
        /// templating it with them gives.
        #[test]
        fn scrubbed_paths_template_alike(
            segments in proptest::collection::vec(
                "[0-9a-fA-Z.@%:+_-]{0,24}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z]{1,6}@[a-z]{2,6}\\.[a-z]{2,3}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                0..6,
            )
        ) {
            let path = format!("/{}", segments.join("/"));
            let scrubbed = crate::url::UrlRules::default().redact_path(&path).into_owned();
            let rules = RouteRules::default();
            proptest::prop_assert_eq!(rules.template_scrubbed(&scrubbed), rules.template(&scrubbed));
        }
    }

    #[test]
    fn token_heuristic() {
        assert!(is_token(b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"));
        assert!(is_token(b"k3j4h5g6f7d8s9a0z1x2c3v4"));
        assert!(is_token(b"AbCdEf-GhIjKl_MnOpQr-StUvWx1"));
        assert!(!is_token(b"how-to-install-rust-1-88-on-linux"));
        assert!(!is_token(b"Top-10-Reasons-To-Visit-Paris-In-2024"));
        assert!(!is_token(b"internationalization-guide"));
        assert!(!is_token(b"abcdefghijklmnopqrstuvwxyz"));
        assert!(!is_token(b"k3j4h5g6f7d8s9a0z1x2c3v"));
        assert!(!is_token(b"k3j4h5g6f7d8s9a0z1x2c3v4/"));
    }

    #[test]
    fn dates() {
        assert!(is_date(b"2024-05-01"));
        assert!(is_date(b"2024-05-01T10:00:00Z"));
        assert!(is_date(b"2024-05-01T10%3A00%3A00.123+02:00"));
        assert!(!is_date(b"2024-13-01"));
        assert!(!is_date(b"2024-05-00"));
        assert!(!is_date(b"2024-05-01T"));
        assert!(!is_date(b"2024-05-01-slug"));
        assert!(!is_date(b"2024/05/01"));
    }
}
