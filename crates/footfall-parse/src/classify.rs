//! Request classification: the kind of resource a path names ([`Kind`]:
//! page, asset, api, feed, download or other), and whether a request is a
//! page view ([`is_pageview`]).
//!
//! The kind depends on the path alone (never on the status, the method or
//! the user agent), so it is cached with the rest of what a request target
//! yields. Operators put their own rules ([`KindRuleConfig`], the
//! `kind_rules` setting) before the defaults ([`default_kind`]).

use std::borrow::Cow;

use footfall_event::Label;
use serde::{Deserialize, Serialize};

use crate::privacy::InvalidSetting;

/// The kind of resource a request asks for: the event's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A document a person reads: whatever no other rule claims.
    Page,
    /// A sub-resource a page loads: style sheets, scripts, images, fonts, media.
    Asset,
    /// A programmatic endpoint: `/api/`, `/graphql`, `/wp-json/`, `.json`, ...
    Api,
    /// A syndication feed: RSS or Atom.
    Feed,
    /// A file fetched to keep: documents, archives, binaries, logs.
    Download,
    /// No path (an empty or unparseable request line), a target that is not
    /// a path (`*`, `host:443`), or `/robots.txt`.
    Other,
}

impl Kind {
    /// Every kind, in the order of [`footfall_event::KINDS`].
    pub const ALL: [Kind; 6] = [
        Kind::Page,
        Kind::Asset,
        Kind::Api,
        Kind::Feed,
        Kind::Download,
        Kind::Other,
    ];

    /// The value of the event's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::Asset => "asset",
            Kind::Api => "api",
            Kind::Feed => "feed",
            Kind::Download => "download",
            Kind::Other => "other",
        }
    }

    /// The kind named `name` (as [`Kind::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The event label of this kind.
    pub fn label(self) -> Label {
        Cow::Borrowed(self.as_str())
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extensions of assets: GoAccess's static-file list without its documents
/// and archives, plus modern formats (webp, avif, woff2, wasm, HLS, ...).
pub const ASSET_EXTENSIONS: &[&str] = &[
    "css",
    "js",
    "mjs",
    "cjs",
    "map",
    "jpg",
    "jpeg",
    "png",
    "gif",
    "ico",
    "cur",
    "svg",
    "svgz",
    "webp",
    "avif",
    "apng",
    "bmp",
    "tif",
    "tiff",
    "heic",
    "jxl",
    "woff",
    "woff2",
    "ttf",
    "otf",
    "eot",
    "mp3",
    "mp4",
    "m4a",
    "m4v",
    "ogg",
    "oga",
    "ogv",
    "opus",
    "wav",
    "flac",
    "aac",
    "webm",
    "mpeg",
    "mpg",
    "avi",
    "flv",
    "mov",
    "mkv",
    "m3u8",
    "ts",
    "vtt",
    "swf",
    "wasm",
    "webmanifest",
    "xml",
];

/// Extensions of downloads: documents, spreadsheets, archives, installers, logs and text.
pub const DOWNLOAD_EXTENSIONS: &[&str] = &[
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf", "epub", "csv",
    "zip", "gz", "tgz", "bz2", "xz", "zst", "tar", "rar", "7z", "iso", "exe", "msi", "dmg", "pkg",
    "deb", "rpm", "apk", "jar", "bin", "log", "txt",
];

/// Extensions of feeds. (`.xml` is a feed when its name is one of
/// [`FEED_SEGMENTS`] or `index`, an asset otherwise.)
pub const FEED_EXTENSIONS: &[&str] = &["rss", "atom"];

/// Last path segments that name a feed (WordPress `/feed/`, `/comments/feed/`,
/// `/feed/rss2/`, `/feed/atom/`).
pub const FEED_SEGMENTS: &[&str] = &["feed", "rss", "atom", "rss2"];

/// Path prefixes of directories whose files are assets, with or without an
/// extension (`/image/60844/productModel/200x200`).
pub const ASSET_PREFIXES: &[&str] = &[
    "/image/", "/images/", "/img/", "/static/", "/assets/", "/media/", "/_next/", "/favicon",
];

/// WordPress asset directories, anywhere in the path (WordPress is often
/// installed below the root: `/blog/wp-content/uploads/`).
pub const ASSET_DIRECTORIES: &[&str] = &[
    "/wp-content/uploads/",
    "/wp-content/themes/",
    "/wp-includes/",
];

/// The kind of `path` by the built-in rules (case-insensitive). In order:
///
/// 1. an empty path, one that does not start with `/`, and `/robots.txt`: `other`;
/// 2. API locations: `/api` and `/api/…`, `/graphql` and `/graphql/…`,
///    `/socket.io/…`, `/wp-json` and `…/wp-json/…` anywhere, a last segment
///    `admin-ajax.php`, `xmlrpc.php` or `wp-cron.php`: `api`;
/// 3. the extension of the last segment (path parameters after `;` left
///    out): [`ASSET_EXTENSIONS`] `asset` (but `feed.xml`, `rss.xml`,
///    `atom.xml`, `index.xml` are `feed`), [`DOWNLOAD_EXTENSIONS`]
///    `download`, [`FEED_EXTENSIONS`] `feed`;
/// 4. asset directories ([`ASSET_PREFIXES`] at the start, [`ASSET_DIRECTORIES`]
///    anywhere): `asset`;
/// 5. a `.json` extension: `api`;
/// 6. a last non-empty segment in [`FEED_SEGMENTS`], or a path under `/feeds/`: `feed`;
/// 7. anything else: `page`.
pub fn default_kind(path: &str) -> Kind {
    default_kind_lower(&ascii_lower(path))
}

/// [`default_kind`] of a path already ASCII-lower-cased.
fn default_kind_lower(p: &str) -> Kind {
    if !p.starts_with('/') || p == "/robots.txt" {
        return Kind::Other;
    }
    let last = p.rsplit('/').next().unwrap_or(p);
    let last = last.split(';').next().unwrap_or(last);
    if is_api_location(p, last) {
        return Kind::Api;
    }
    let ext = match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some((stem, ext)),
        _ => None,
    };
    if let Some((stem, ext)) = ext {
        if ext == "xml" && (FEED_SEGMENTS.contains(&stem) || stem == "index") {
            return Kind::Feed;
        }
        if ASSET_EXTENSIONS.contains(&ext) {
            return Kind::Asset;
        }
        if DOWNLOAD_EXTENSIONS.contains(&ext) {
            return Kind::Download;
        }
        if FEED_EXTENSIONS.contains(&ext) {
            return Kind::Feed;
        }
    }
    if ASSET_PREFIXES.iter().any(|d| p.starts_with(d))
        || ASSET_DIRECTORIES.iter().any(|d| p.contains(d))
    {
        return Kind::Asset;
    }
    if matches!(ext, Some((_, "json"))) {
        return Kind::Api;
    }
    let last_named = p.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if FEED_SEGMENTS.contains(&last_named) || p.starts_with("/feeds/") {
        return Kind::Feed;
    }
    Kind::Page
}

/// Step 2 of [`default_kind`]: `p` lower-cased, `last` its last segment.
fn is_api_location(p: &str, last: &str) -> bool {
    let under = |prefix: &str| {
        p.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under("/api")
        || under("/graphql")
        || p.starts_with("/socket.io/")
        || p.contains("/wp-json/")
        || p.ends_with("/wp-json")
        || matches!(last, "admin-ajax.php" | "xmlrpc.php" | "wp-cron.php")
}

/// ASCII lower case, borrowed when already lower case.
fn ascii_lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Whether a request is a page view: kind `page`, answered 2xx or 304, to a
/// GET or HEAD (or a log without methods). Independent of the bot flag.
pub fn is_pageview(kind: Kind, method: Option<&str>, status: u16) -> bool {
    kind == Kind::Page
        && matches!(status, 200..=299 | 304)
        && matches!(method, Some("GET") | Some("HEAD") | None)
}

/// One operator rule of the `kind_rules` setting: paths that match get
/// `kind`. Exactly one of `path_prefix`, `path_contains` and `path_suffix`;
/// matching is ASCII case-insensitive, on the path as the event shows it
/// (percent-encoding kept, without the query).
///
/// ```toml
/// kind_rules = [
///   { path_prefix = "/cdn/", kind = "asset" },
///   { path_contains = "/poll", kind = "api" },
/// ]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindRuleConfig {
    /// Paths starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Paths containing this anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Paths ending with this (`.php5`, `/status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_suffix: Option<String>,
    /// The kind they get: `page`, `asset`, `api`, `feed`, `download` or `other`.
    pub kind: String,
}

/// How a compiled rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    Prefix(String),
    Contains(String),
    Suffix(String),
}

impl PathMatch {
    fn matches(&self, lower_path: &str) -> bool {
        match self {
            PathMatch::Prefix(s) => lower_path.starts_with(s.as_str()),
            PathMatch::Contains(s) => lower_path.contains(s.as_str()),
            PathMatch::Suffix(s) => lower_path.ends_with(s.as_str()),
        }
    }
}

/// The operator's kind rules, compiled, before the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindRules {
    rules: Vec<(PathMatch, Kind)>,
}

impl KindRules {
    /// Compile the `kind_rules` setting; an unknown kind, a rule with no
    /// matcher or more than one, or an empty one is an [`InvalidSetting`].
    pub fn new(rules: &[KindRuleConfig]) -> Result<KindRules, InvalidSetting> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let n = i + 1;
            let kind = Kind::from_name(&r.kind).ok_or_else(|| {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                InvalidSetting::new(
                    "kind_rules",
                    format!(
                        "rule {n}: {:?} is not a kind (one of: {})",
                        r.kind,
                        all.join(", ")
                    ),
                )
            })?;
            let matchers = [
                r.path_prefix
                    .as_deref()
                    .map(|s| PathMatch::Prefix(s.to_ascii_lowercase())),
                r.path_contains
                    .as_deref()
                    .map(|s| PathMatch::Contains(s.to_ascii_lowercase())),
                r.path_suffix
                    .as_deref()
                    .map(|s| PathMatch::Suffix(s.to_ascii_lowercase())),
            ];
            let mut given = matchers.into_iter().flatten();
            let (Some(m), None) = (given.next(), given.next()) else {
                return Err(InvalidSetting::new(
                    "kind_rules",
                    format!(
                        "rule {n}: give exactly one of path_prefix, path_contains, path_suffix"
                    ),
                ));
            };
            let (PathMatch::Prefix(s) | PathMatch::Contains(s) | PathMatch::Suffix(s)) = &m;
            if s.is_empty() {
                return Err(InvalidSetting::new(
                    "kind_rules",
                    format!("rule {n}: the path pattern is empty"),
                ));
            }
            out.push((m, kind));
        }
        Ok(KindRules { rules: out })
    }

    /// The kind of `path`: the first operator rule that matches, else
    /// [`default_kind`]. An empty path is `other` whatever the rules say.
    pub fn kind(&self, path: &str) -> Kind {
        if path.is_empty() {
            return Kind::Other;
        }
        let lower = ascii_lower(path);
        self.rules
            .iter()
            .find(|(m, _)| m.matches(&lower))
            .map_or_else(|| default_kind_lower(&lower), |&(_, k)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_are_the_event_vocabulary() {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, footfall_event::KINDS);
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(Kind::from_name("static"), None);
    }

    #[test]
    fn default_rules() {
        use Kind::*;
        let cases = [
            // other
            ("", Other),
            ("*", Other),
            ("example.com:443", Other),
            ("/robots.txt", Other),
            ("/ROBOTS.TXT", Other),
            // pages
            ("/", Page),
            ("/about", Page),
            ("/index.php", Page),
            ("/blog/post.html", Page),
            ("/.env", Page),
            ("/apiary", Page),
            ("/images", Page),
            ("/news/feedback", Page),
            ("/filter/27|13%20x,p53", Page),
            // assets
            ("/css/site.CSS", Asset),
            ("/a.png", Asset),
            ("/app.mjs.map", Asset),
            ("/fonts/x.woff2", Asset),
            ("/a.wasm", Asset),
            ("/a.css;jsessionid=REDACTED", Asset),
            ("/image/60844/productModel/200x200", Asset),
            ("/Images/logo", Asset),
            ("/img/x", Asset),
            ("/static/bundle", Asset),
            ("/assets/x", Asset),
            ("/media/clip", Asset),
            ("/_next/static/chunks/x", Asset),
            ("/wp-content/uploads/2020/01/photo", Asset),
            ("/blog/wp-content/themes/t/style", Asset),
            ("/wp-includes/js/x", Asset),
            ("/favicon.ico", Asset),
            ("/favicon", Asset),
            ("/sitemap.xml", Asset),
            ("/static/manifest.json", Asset),
            // api
            ("/api", Api),
            ("/api/", Api),
            ("/API/dashboard/x/ping", Api),
            ("/api/export.csv", Api),
            ("/graphql", Api),
            ("/graphql/batch", Api),
            ("/socket.io/1/xhr-polling/abc", Api),
            ("/wp-json/wp/v2/posts", Api),
            ("/blog/wp-json/", Api),
            ("/wp-json", Api),
            ("/wp-admin/admin-ajax.php", Api),
            ("/xmlrpc.php", Api),
            ("/wp-cron.php", Api),
            ("/data.json", Api),
            // feeds
            ("/feed/", Feed),
            ("/feed", Feed),
            ("/comments/feed/", Feed),
            ("/feed/rss2/", Feed),
            ("/feed/atom", Feed),
            ("/news/atom.xml", Feed),
            ("/index.xml", Feed),
            ("/blog.rss", Feed),
            ("/x.atom", Feed),
            ("/feeds/posts/default", Feed),
            // downloads
            ("/files/report.PDF", Download),
            ("/wp-content/uploads/2020/report.pdf", Download),
            ("/a.docx", Download),
            ("/data.csv", Download),
            ("/release.tar.gz", Download),
            ("/setup.exe", Download),
            ("/x.7z", Download),
            ("/logs/access.log", Download),
            ("/ads.txt", Download),
            ("/app.apk", Download),
        ];
        for (path, want) in cases {
            assert_eq!(default_kind(path), want, "{path:?}");
            assert_eq!(KindRules::default().kind(path), want, "{path:?}");
        }
    }

    #[test]
    fn operator_rules_come_first_in_their_order() {
        let rule = |prefix: Option<&str>, contains: Option<&str>, kind: &str| KindRuleConfig {
            path_prefix: prefix.map(Into::into),
            path_contains: contains.map(Into::into),
            kind: kind.into(),
            ..Default::default()
        };
        let rules = KindRules::new(&[
            rule(Some("/CDN/"), None, "asset"),
            rule(None, Some("/poll"), "api"),
            rule(None, Some("/"), "page"),
        ])
        .unwrap();
        assert_eq!(rules.kind("/cdn/x"), Kind::Asset);
        assert_eq!(rules.kind("/Cdn/poll"), Kind::Asset, "first rule wins");
        assert_eq!(rules.kind("/live/Poll/7"), Kind::Api);
        assert_eq!(rules.kind("/a.png"), Kind::Page, "before the defaults");
        assert_eq!(rules.kind(""), Kind::Other);
        let suffix = KindRules::new(&[KindRuleConfig {
            path_suffix: Some("/status".into()),
            kind: "other".into(),
            ..Default::default()
        }])
        .unwrap();
        assert_eq!(suffix.kind("/health/status"), Kind::Other);
        assert_eq!(suffix.kind("/status/page"), Kind::Page);
    }

    #[test]
    fn bad_rules_name_the_setting() {
        let bad = [
            (rule_with("/x", "static"), "\"static\" is not a kind"),
            (
                KindRuleConfig {
                    kind: "api".into(),
                    ..Default::default()
                },
                "exactly one",
            ),
            (
                KindRuleConfig {
                    path_prefix: Some("/a".into()),
                    path_suffix: Some("/b".into()),
                    kind: "api".into(),
                    ..Default::default()
                },
                "exactly one",
            ),
            (rule_with("", "api"), "empty"),
        ];
        for (r, want) in bad {
            let e = KindRules::new(&[r]).unwrap_err();
            assert_eq!(e.key, "kind_rules");
            assert!(e.reason.contains(want), "{}", e.reason);
        }
    }

    fn rule_with(prefix: &str, kind: &str) -> KindRuleConfig {
        KindRuleConfig {
            path_prefix: Some(prefix.into()),
            kind: kind.into(),
            ..Default::default()
        }
    }

    #[test]
    fn page_views() {
        let cases = [
            (Kind::Page, Some("GET"), 200, true),
            (Kind::Page, Some("HEAD"), 204, true),
            (Kind::Page, None, 304, true),
            (Kind::Page, Some("GET"), 301, false),
            (Kind::Page, Some("GET"), 404, false),
            (Kind::Page, Some("POST"), 200, false),
            (Kind::Page, Some("OPTIONS"), 200, false),
            (Kind::Asset, Some("GET"), 200, false),
            (Kind::Api, Some("GET"), 200, false),
            (Kind::Other, None, 200, false),
        ];
        for (kind, method, status, want) in cases {
            assert_eq!(
                is_pageview(kind, method, status),
                want,
                "{kind} {method:?} {status}"
            );
        }
    }
}
