//! Inferring the site's own host from its referrers (`parse.infer_site_host`).
//!
//! A log without a virtual host does not say which host it is the log of, so
//! without `site_hosts` the site's links to itself look like links from
//! another site (`external`). Yet the site's own pages are in the log as
//! requests, and the browser names them in the `Referer` of the requests
//! they lead to. So, from the first lines of a source (a sample):
//!
//! 1. the **own paths** are the request paths of the sample (without query);
//! 2. a **referral considered** is a line whose referrer is an `http`,
//!    `https` or scheme-less URL with a host, whose path (without query or
//!    fragment; empty is `/`) is one of the own paths, and whose host is
//!    neither an IP address nor a known source of the referrer tables
//!    (search engines, social networks, webmail, ad networks, ...: a search
//!    engine is never the site);
//! 3. referrals are counted per host, lower-cased, without port or trailing
//!    dot, a leading `www.` ignored (`www.example.org` and `example.org` are
//!    one host, as they are for `site_hosts`);
//! 4. the most referring host is the site's own when it is clearly so: at
//!    least [`MIN_REFERRALS`] referrals, at least [`MIN_SHARE_PERCENT`] % of
//!    the referrals considered, and at least twice as many as the next host
//!    (so a tie infers nothing). It is named in its most frequent spelling.
//!
//! Nothing is inferred when the pipeline already counts that host as the
//! site's (it is the `site`), and lines that log their virtual host are left
//! out: the request's own host already makes their self-referrals `internal`,
//! and in a log of several virtual hosts one site's links to another must
//! stay what they are.
//!
//! [`SiteHostSample`] gathers the sample line by line, so a caller that sees
//! the first lines in batches (ingest) can decide as soon as it can;
//! [`Pipeline::infer_site_host`] does it for a sample at hand.

use std::collections::{HashMap, HashSet};

use crate::formats::FormatState;
use crate::pipeline::{trim_eol, ParseConfig, Pipeline};
use crate::record::LineResult;
use crate::referrer::{Medium, ReferrerClassifier};
use crate::url::{split_target, UrlParts};

/// Lines of a source looked at, at most, to infer its host.
pub const SAMPLE_LINES: usize = 5000;
/// Referrals the inferred host needs at least: a handful of lines never decide.
pub const MIN_REFERRALS: usize = 10;
/// The share of the referrals considered (in percent) the inferred host needs at least.
pub const MIN_SHARE_PERCENT: usize = 20;

/// The host inferred as the site's own, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferredHost {
    /// The host name, lower-case, in its most frequent spelling.
    pub host: String,
    /// Referrals from it (any spelling, with or without `www.`) to the site's own paths.
    pub referrals: usize,
    /// Referrals to the site's own paths considered, from every host.
    pub considered: usize,
}

impl std::fmt::Display for InferredHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} of {} referrals to the site's own paths)",
            self.host, self.referrals, self.considered
        )
    }
}

/// The first lines of a source, as far as inferring its host needs them;
/// see the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct SiteHostSample {
    lines: usize,
    /// Request paths seen.
    paths: HashSet<String>,
    /// Referrals by (host, referrer path), known sources left out.
    referrals: HashMap<(String, String), usize>,
    /// Whether each referrer host seen is a known source.
    known: HashMap<String, bool>,
}

impl SiteHostSample {
    /// An empty sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lines added so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Whether the sample holds [`SAMPLE_LINES`] lines: more are not looked at.
    pub fn is_full(&self) -> bool {
        self.lines >= SAMPLE_LINES
    }

    /// Add one line (a trailing `\n` or `\r\n` is ignored), parsed with
    /// `pipeline`'s format; `state` is the source's format state (W3C
    /// headers). Lines past [`SAMPLE_LINES`] and lines that do not parse are
    /// counted and otherwise ignored.
    pub fn add(&mut self, pipeline: &Pipeline, state: &mut FormatState, line: &[u8]) {
        if self.is_full() {
            return;
        }
        self.lines += 1;
        let text = String::from_utf8_lossy(trim_eol(line));
        let Ok(rec) = pipeline.parse_record(&text, state) else {
            return;
        };
        if rec.host.is_some() {
            return;
        }
        if let Some(target) = rec.target.as_deref() {
            let (path, _) = split_target(target);
            if !self.paths.contains(path) {
                self.paths.insert(path.to_string());
            }
        }
        let Some(referrer) = rec
            .referrer
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty() && *r != "-")
        else {
            return;
        };
        let parts = UrlParts::split_lenient(referrer);
        let web = parts
            .scheme
            .is_none_or(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
        let Some(host) = parts.host.filter(|_| web) else {
            return;
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() || host.starts_with('[') || crate::privacy::ip_literal(&host).is_some() {
            return;
        }
        let known = match self.known.get(&host) {
            Some(&k) => k,
            None => {
                let info = pipeline
                    .referrer_classifier()
                    .classify_source(Some(&format!("http://{host}/")), &[]);
                let k = info.source.is_some() || info.medium != Medium::External.as_str();
                self.known.insert(host.clone(), k);
                k
            }
        };
        if known {
            return;
        }
        let path = if parts.path.is_empty() {
            "/"
        } else {
            parts.path
        };
        *self.referrals.entry((host, path.to_string())).or_default() += 1;
    }

    /// The site's own host, if the sample shows one clearly (see the
    /// [module documentation](self)); `pipeline` gives the referrer tables
    /// and the hosts it already counts as the site's.
    pub fn infer(&self, pipeline: &Pipeline) -> Option<InferredHost> {
        // Per host without `www.`: referrals, and referrals per spelling.
        let mut hosts: HashMap<&str, (usize, HashMap<&str, usize>)> = HashMap::new();
        let mut considered = 0usize;
        for ((host, path), &n) in &self.referrals {
            if !self.paths.contains(path) {
                continue;
            }
            considered += n;
            let entry = hosts.entry(strip_www(host)).or_default();
            entry.0 += n;
            *entry.1.entry(host).or_default() += n;
        }
        let mut ranked: Vec<(&str, usize)> = hosts.iter().map(|(h, (n, _))| (*h, *n)).collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let (top, referrals) = *ranked.first()?;
        let next = ranked.get(1).map_or(0, |r| r.1);
        let clear = referrals >= MIN_REFERRALS
            && referrals * 100 >= considered * MIN_SHARE_PERCENT
            && referrals >= 2 * next;
        if !clear {
            return None;
        }
        let spelling = hosts[top]
            .1
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(h, _)| *h)?;
        let already = pipeline
            .referrer_classifier()
            .classify_source(
                Some(&format!("http://{spelling}/")),
                pipeline.site_host_names(),
            )
            .medium
            == Medium::Internal.as_str();
        (!already).then(|| InferredHost {
            host: spelling.to_string(),
            referrals,
            considered,
        })
    }
}

fn strip_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

impl ParseConfig {
    /// Whether the site's host is to be inferred from a source's first
    /// lines ([`Pipeline::infer_site_host`]): `infer_site_host` is on and no
    /// `site_hosts` are configured.
    pub fn infers_site_host(&self) -> bool {
        self.infer_site_host && self.site_hosts.is_empty()
    }
}

impl Pipeline {
    /// This pipeline with `host` among the site's own hosts (referrers from
    /// it are `internal`): how an [inferred](Pipeline::infer_site_host) host
    /// is applied.
    pub fn with_site_host(&self, host: &str) -> Pipeline {
        let mut p = self.clone();
        p.site_hosts.push(host.trim().to_ascii_lowercase());
        p
    }

    /// The site's own host names (lower-case): the configured ones, the site
    /// name and hosts added with [`Pipeline::with_site_host`].
    pub fn site_host_names(&self) -> &[String] {
        &self.site_hosts
    }

    /// The line's fields, as the format reads them (no enrichment).
    fn parse_record<'a>(&self, line: &'a str, state: &mut FormatState) -> LineResult<'a> {
        self.format.parse(line, state)
    }

    /// The referrer tables.
    fn referrer_classifier(&self) -> &ReferrerClassifier {
        &self.tables.referrers
    }

    /// The site's own host as the referrers of `sample_lines` (a source's
    /// first lines, at most [`SAMPLE_LINES`] of them looked at) show it; see
    /// [`self_host`](crate::self_host). Whether to ask is the caller's
    /// decision ([`ParseConfig::infers_site_host`](crate::ParseConfig::infers_site_host));
    /// the host found is added with [`Pipeline::with_site_host`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use footfall_parse::{ParseConfig, Pipeline, SecretKeys, Tables};
    ///
    /// let cfg = ParseConfig { format: "combined".into(), ..Default::default() };
    /// let keys = Arc::new(SecretKeys::from_secret(b"a secret of at least sixteen bytes").unwrap());
    /// let pipeline = Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap();
    /// let lines: Vec<String> = (0..12).map(|i| format!(
    ///     r#"203.0.113.{i} - - [17/May/2015:10:05:03 +0000] "GET /a/{i} HTTP/1.1" 200 5 "https://www.example.org/a/{}" "UA/1.0""#,
    ///     (i + 1) % 12,
    /// )).collect();
    /// let sample: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    /// let found = pipeline.infer_site_host(&sample).unwrap();
    /// assert_eq!((found.host.as_str(), found.referrals), ("www.example.org", 12));
    /// ```
    pub fn infer_site_host(&self, sample_lines: &[&[u8]]) -> Option<InferredHost> {
        let mut sample = SiteHostSample::new();
        let mut state = FormatState::default();
        for line in sample_lines.iter().take(SAMPLE_LINES) {
            sample.add(self, &mut state, line);
        }
        sample.infer(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{ParseConfig, SecretKeys, Tables};

    fn pipeline(cfg: ParseConfig) -> Pipeline {
        let keys =
            Arc::new(SecretKeys::from_secret(b"self host test secret, long enough").unwrap());
        Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap()
    }

    fn combined() -> Pipeline {
        pipeline(ParseConfig {
            format: "combined".into(),
            ..Default::default()
        })
    }

    /// A combined line requesting `target` with `referrer` (`-` for none).
    fn line(target: &str, referrer: &str) -> String {
        format!(
            r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET {target} HTTP/1.1" 200 5 "{referrer}" "UA/1.0""#
        )
    }

    fn infer(p: &Pipeline, lines: &[String]) -> Option<InferredHost> {
        let sample: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        p.infer_site_host(&sample)
    }

    /// `n` requests of `/page/i`, each referred by `host`'s `/page/(i+1)`.
    fn self_links(host: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                line(
                    &format!("/page/{i}?x=1"),
                    &format!("https://{host}/page/{}?from=nav#top", (i + 1) % n),
                )
            })
            .collect()
    }

    #[test]
    fn the_host_referring_most_to_the_own_paths_wins() {
        let mut lines = self_links("www.example.org", 30);
        lines.extend(self_links("example.org:8080", 10));
        // Another site linking to the same pages, less often.
        lines.extend((0..8).map(|i| line(&format!("/page/{i}"), "http://blog.example.net/page/1")));
        let found = infer(&combined(), &lines).expect("inferred");
        assert_eq!(found.host, "www.example.org");
        // Both spellings of example.org count; the blog's eight too, as considered.
        assert_eq!((found.referrals, found.considered), (40, 48));
        assert_eq!(
            found.to_string(),
            "www.example.org (40 of 48 referrals to the site's own paths)"
        );
    }

    #[test]
    fn a_search_engine_is_never_the_site() {
        // Google referrers to the home page far outnumber the site's own.
        let mut lines: Vec<String> = (0..200)
            .map(|_| line("/", "https://www.google.com/"))
            .collect();
        lines.extend((0..50).map(|_| line("/", "https://duckduckgo.com/")));
        lines.extend((0..50).map(|_| line("/", "https://m.facebook.com/")));
        assert_eq!(infer(&combined(), &lines), None);
        lines.extend(self_links("example.org", 12));
        let found = infer(&combined(), &lines).expect("inferred");
        assert_eq!((found.host.as_str(), found.referrals), ("example.org", 12));
        assert_eq!(found.considered, 12, "known sources are not considered");
    }

    #[test]
    fn too_few_referrals_infer_nothing() {
        assert_eq!(infer(&combined(), &self_links("example.org", 2)), None);
        assert_eq!(infer(&combined(), &self_links("example.org", 9)), None);
        assert!(infer(&combined(), &self_links("example.org", 10)).is_some());
        assert_eq!(infer(&combined(), &[]), None);
    }

    #[test]
    fn ties_and_close_seconds_infer_nothing_whatever_the_order() {
        let mut lines = self_links("a.example", 20);
        lines.extend(self_links("b.example", 20));
        assert_eq!(infer(&combined(), &lines), None);
        lines.reverse();
        assert_eq!(infer(&combined(), &lines), None);
        // Twice as many as the next: the first wins, in either order.
        let mut lines = self_links("a.example", 20);
        lines.extend(self_links("b.example", 10));
        let forward = infer(&combined(), &lines).map(|f| f.host);
        lines.reverse();
        assert_eq!(forward, infer(&combined(), &lines).map(|f| f.host));
        assert_eq!(forward.as_deref(), Some("a.example"));
    }

    #[test]
    fn referrers_to_paths_never_requested_do_not_count() {
        // Pages of www.example.org link to an asset host's files: the asset
        // host's log names www.example.org, whose pages it never served.
        let lines: Vec<String> = (0..40)
            .map(|i| {
                line(
                    &format!("/img/{i}.png"),
                    &format!("https://www.example.org/article/{i}"),
                )
            })
            .collect();
        assert_eq!(infer(&combined(), &lines), None);
    }

    #[test]
    fn the_share_of_the_referrals_considered_is_required() {
        // The site's 12 referrals among 100 from 50 other sites, two each.
        let mut lines = self_links("example.org", 12);
        for s in 0..50 {
            for _ in 0..2 {
                lines.push(line(
                    "/page/0",
                    &format!("https://site{s}.example.net/page/1"),
                ));
            }
        }
        assert_eq!(
            infer(&combined(), &lines),
            None,
            "12 of 112 is under a fifth"
        );
        lines.truncate(12 + 2 * 20);
        let found = infer(&combined(), &lines).expect("12 of 52 is over a fifth");
        assert_eq!(found.considered, 52);
    }

    #[test]
    fn addresses_other_schemes_and_the_configured_site_are_left_out() {
        let ip: Vec<String> = (0..20).map(|_| line("/", "http://192.0.2.1/")).collect();
        assert_eq!(infer(&combined(), &ip), None);
        let app: Vec<String> = (0..20)
            .map(|_| line("/", "android-app://org.example.app/"))
            .collect();
        assert_eq!(infer(&combined(), &app), None);
        // The site is already example.org (its www. spelling included).
        let site = pipeline(ParseConfig {
            format: "combined".into(),
            site: Some("example.org".into()),
            ..Default::default()
        });
        assert_eq!(infer(&site, &self_links("www.example.org", 20)), None);
    }

    #[test]
    fn lines_with_a_virtual_host_are_left_out() {
        let p = pipeline(ParseConfig {
            format: "vcombined".into(),
            ..Default::default()
        });
        let lines: Vec<String> = self_links("www.example.org", 20)
            .into_iter()
            .map(|l| format!("shop.example.org:443 {l}"))
            .collect();
        let record = |l: &String| {
            p.parse_record(l, &mut FormatState::default())
                .map(|r| r.host.map(|h| h.into_owned()))
        };
        assert_eq!(record(&lines[0]), Ok(Some("shop.example.org".to_string())));
        assert_eq!(infer(&p, &lines), None);
    }

    #[test]
    fn the_sample_is_bounded() {
        let p = combined();
        let mut sample = SiteHostSample::new();
        let mut state = FormatState::default();
        let filler = line("/", "-");
        for _ in 0..SAMPLE_LINES {
            sample.add(&p, &mut state, filler.as_bytes());
        }
        assert!(sample.is_full());
        for l in self_links("example.org", 20) {
            sample.add(&p, &mut state, l.as_bytes());
        }
        assert_eq!(sample.lines(), SAMPLE_LINES);
        assert_eq!(sample.infer(&p), None, "lines past the sample are not read");
    }

    #[test]
    fn an_inferred_host_makes_self_referrals_internal() {
        let p = Arc::new(combined().with_site_host("www.example.org"));
        let mut worker = p.worker();
        let src = crate::SourceRef::from_first_line("access.log", b"x");
        let l = line("/page/1", "http://example.org/page/2");
        let crate::Outcome::Event(ev) =
            worker.process(&src, &mut FormatState::default(), 0, l.as_bytes())
        else {
            panic!("not an event")
        };
        assert_eq!(ev.referrer_medium, "internal");
    }
}
