//! URL pieces: query parameters, percent-decoding, secret redaction, on-site search, UTM.
//! (stub: being implemented)
use std::borrow::Cow;

/// Which query parameters are secrets and which carry on-site search terms.
#[derive(Debug, Clone)]
pub struct UrlRules {
    pub secret_params: Vec<String>,
    pub site_search_params: Vec<String>,
}

impl Default for UrlRules {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        UrlRules {
            secret_params: s(&["password", "passwd", "pwd", "token", "access_token", "api_key", "apikey", "key", "secret", "session", "sessionid", "sid", "jsessionid", "phpsessid", "auth", "code", "signature"]),
            site_search_params: s(&["q", "s", "search", "query", "keyword"]),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
}

impl UrlRules {
    pub fn redact_query<'a>(&self, query: &'a str) -> Cow<'a, str> { Cow::Borrowed(query) }
    pub fn redact_path<'a>(&self, path: &'a str) -> Cow<'a, str> { Cow::Borrowed(path) }
    pub fn redact_url<'a>(&self, url: &'a str) -> Cow<'a, str> { Cow::Borrowed(url) }
    pub fn site_search(&self, _query: &str) -> Option<String> { None }
}

pub fn utm(_query: &str) -> Utm { Utm::default() }
pub fn percent_decode_lossy(s: &str, _plus_as_space: bool) -> Cow<'_, str> { Cow::Borrowed(s) }
