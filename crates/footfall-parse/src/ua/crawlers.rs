//! Bot names from the crawler-user-agents list: the compiled pattern set
//! with the built-in additions ([`EXTRA_TOOL_PATTERNS`]), and the readable
//! name each pattern gets from the example agents of its entry.

use std::sync::OnceLock;

use footfall_event::Shared;
use regex::Regex;
use serde::Deserialize;

use super::UaRulesError;

/// Longest bot name derived from a crawler-user-agents pattern.
pub(super) const MAX_BOT_NAME_LEN: usize = 48;

/// HTTP clients, scripts and scanners missing from crawler-user-agents,
/// checked after its patterns: `(pattern, example user agent)`. The example
/// names the tool the same way list entries are named (by the text the
/// pattern matches in it) and is checked by the unit tests.
pub(super) const EXTRA_TOOL_PATTERNS: &[(&str, &str)] = &[
    (r"^PostmanRuntime/", "PostmanRuntime/7.36.0"),
    (r"^insomnia/", "insomnia/2023.5.8"),
    (r"^node(?:-fetch)?(?:/|$)", "node"),
    (r"^undici", "undici"),
    (r"^got \(", "got (https://github.com/sindresorhus/got)"),
    (r"^Deno/", "Deno/1.38.0"),
    (r"^Bun/", "Bun/1.0.0"),
    (r"^Python/\d", "Python/3.10 websockets/10.4"),
    (r"^python-urllib3/", "python-urllib3/1.26.18"),
    (r"^Ruby$|^Ruby/", "Ruby"),
    (r"^rest-client/", "rest-client/2.1.0 (linux-gnu x86_64) ruby/3.0.2p107"),
    (r"^http\.rb/", "http.rb/5.1.1"),
    (r"^Faraday\b", "Faraday v2.7.11"),
    (r"^Typhoeus", "Typhoeus - https://github.com/typhoeus/typhoeus"),
    (r"^PHP/", "PHP/8.1.2"),
    (r"^GuzzleHttp/", "GuzzleHttp/7"),
    (r"^Dart/", "Dart/3.2 (dart:io)"),
    (r"^RestSharp/", "RestSharp/106.11.7.0"),
    (r"^Java-http-client/", "Java-http-client/17.0.9"),
    (r"^Jakarta Commons-HttpClient/", "Jakarta Commons-HttpClient/3.1"),
    (r"^Apache-CXF/", "Apache-CXF/3.5.5"),
    (r"WindowsPowerShell/", "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.3570"),
    (r"^WinHttp", "WinHttp.WinHttpRequest.5"),
    (r"^Microsoft-CryptoAPI/", "Microsoft-CryptoAPI/10.0"),
    (r"^HTTP_Request2?/", "HTTP_Request2/2.1.1 (http://pear.php.net/package/http_request2) PHP/5.3.2"),
    (r"\blibfetch/", "fetch libfetch/2.0"),
    (r"^lua-resty-http/", "lua-resty-http/0.16.1 (Lua) ngx_lua/10021"),
    (r"^aria2/", "aria2/1.36.0"),
    (r"^fasthttp", "fasthttp"),
    (r"^cpp-httplib/", "cpp-httplib/0.14.1"),
    (r"^reqwest/", "reqwest/0.11"),
    (r"^hyper/", "hyper/0.14"),
    (r"^ureq/", "ureq/2.9.1"),
    (r"^uclient-fetch", "uclient-fetch"),
    (r" Nuclei$|^Nuclei", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0.0.0 Safari/537.36 Nuclei"),
    (r" Lighthouse$", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/117.0.5938.132 Safari/537.36 Lighthouse"),
];

/// One entry of `crawler-user-agents.json` (other fields are ignored).
#[derive(Deserialize)]
struct CrawlerEntry {
    pattern: String,
    #[serde(default)]
    instances: Vec<String>,
}

/// Compiled crawler-user-agents patterns with one display name per pattern,
/// worked out from the entry's example agents when the pattern first matches.
pub(super) struct Crawlers {
    set: regex_filtered::Regexes,
    instances: Vec<Vec<String>>,
    names: Vec<OnceLock<Shared>>,
}

impl Crawlers {
    pub(super) fn compile(json: &str, lazy: bool) -> Result<Self, UaRulesError> {
        let mut entries: Vec<CrawlerEntry> =
            serde_json::from_str(json).map_err(UaRulesError::CrawlerJson)?;
        entries.extend(
            EXTRA_TOOL_PATTERNS
                .iter()
                .map(|&(pattern, example)| CrawlerEntry {
                    pattern: pattern.to_owned(),
                    instances: vec![example.to_owned()],
                }),
        );
        let mut builder = regex_filtered::Builder::new().lazy(lazy);
        for (index, entry) in entries.iter().enumerate() {
            builder =
                builder
                    .push(&entry.pattern)
                    .map_err(|source| UaRulesError::CrawlerPattern {
                        index,
                        pattern: entry.pattern.clone(),
                        source,
                    })?;
        }
        let set = builder.build().map_err(UaRulesError::CrawlerPrefilter)?;
        let names = entries.iter().map(|_| OnceLock::new()).collect();
        let instances = entries.into_iter().map(|e| e.instances).collect();
        Ok(Crawlers {
            set,
            instances,
            names,
        })
    }

    /// How many patterns the set holds (the list's and the built-in ones).
    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// Name of the first (in list order) pattern matching `ua`.
    pub(super) fn matching(&self, ua: &str) -> Option<&Shared> {
        let (index, re) = self.set.matching(ua).next()?;
        Some(self.names[index].get_or_init(|| {
            let pattern = self.set.regexes()[index].as_str();
            Shared::from(crawler_name(pattern, re, &self.instances[index]))
        }))
    }

    /// Compiles every pattern (see [`UaClassifier::compile_all`]).
    pub(super) fn compile_all(&self) -> Result<(), UaRulesError> {
        self.set
            .compile_all()
            .map_err(|(index, source)| UaRulesError::CrawlerPattern {
                index,
                pattern: self.set.regexes()[index].as_str().to_owned(),
                source,
            })
    }
}

/// A stable, readable name for a crawler pattern: the text it most often
/// matches in the example user agents of its entry, cut at the first
/// separator (`Googlebot\/` → `Googlebot`, `[wW]get` → `Wget`,
/// `(^| )sentry\/` → `sentry`); ties go to a spelling with capitals
/// (`ClaudeBot` over `claudebot`), then to the earlier example. When no
/// example matches, the longest literal run of the pattern itself.
pub(super) fn crawler_name(pattern: &str, re: &Regex, instances: &[String]) -> String {
    let mut candidates: Vec<(String, usize)> = Vec::new();
    for name in instances
        .iter()
        .filter_map(|i| re.find(i).and_then(|m| readable_name(m.as_str())))
    {
        match candidates.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, count)) => *count += 1,
            None => candidates.push((name, 1)),
        }
    }
    let mut best: Option<&(String, usize)> = None;
    for candidate in &candidates {
        let key = |(name, count): &(String, usize)| (*count, name.chars().any(char::is_uppercase));
        if best.is_none_or(|b| key(candidate) > key(b)) {
            best = Some(candidate);
        }
    }
    best.map(|(name, _)| name.clone())
        .or_else(|| literal_name(pattern))
        .unwrap_or_else(|| pattern.to_owned())
}

/// The leading name-like part of `text`: starts at the first alphanumeric
/// character, stops at the first separator, trailing spaces and punctuation
/// removed.
pub(super) fn readable_name(text: &str) -> Option<String> {
    let start = text.find(|c: char| c.is_alphanumeric())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || is_name_punctuation(c)))
        .unwrap_or(rest.len());
    let name = rest[..end].trim_end_matches(|c: char| !c.is_alphanumeric());
    let name = truncate_chars(name, MAX_BOT_NAME_LEN);
    (!name.is_empty()).then(|| name.to_owned())
}

/// The longest run of literal characters in a regex pattern (escapes
/// resolved, first alternative of a character class, metacharacters as
/// separators).
pub(super) fn literal_name(pattern: &str) -> Option<String> {
    let mut best = String::new();
    let mut current = String::new();
    let mut chars = pattern.chars();
    let mut flush = |current: &mut String| {
        if current.trim().len() > best.trim().len() {
            best = current.trim().to_owned();
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if is_name_punctuation(e) => current.push(e),
                Some(_) => flush(&mut current),
                None => {}
            },
            '[' => {
                // A class of plain letters and digits (`[wW]`) stands for its
                // capital member, or its first one; any other class
                // (ranges, negations, escapes) separates.
                let members: String = chars.by_ref().take_while(|&m| m != ']').collect();
                let pick = if members.chars().all(char::is_alphanumeric) {
                    members
                        .chars()
                        .find(|m| m.is_uppercase())
                        .or_else(|| members.chars().next())
                } else {
                    None
                };
                match pick {
                    Some(m) => current.push(m),
                    None => flush(&mut current),
                }
            }
            c if c.is_alphanumeric() || matches!(c, ' ' | '-' | '_') => current.push(c),
            _ => flush(&mut current),
        }
    }
    flush(&mut current);
    readable_name(&best)
}

/// Characters besides letters and digits that may appear inside a bot name.
fn is_name_punctuation(c: char) -> bool {
    matches!(c, ' ' | '-' | '_' | '.' | '@' | '&' | '!' | '\'')
}

/// Whether a crawler name is a domain (`yandex.com`, `pinterest.com`) rather
/// than the product name.
pub(super) fn looks_like_domain(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(head, tld)| {
        !head.is_empty()
            && (2..=6).contains(&tld.len())
            && tld.bytes().all(|b| b.is_ascii_lowercase())
    })
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => s[..idx].trim_end(),
        None => s,
    }
}
