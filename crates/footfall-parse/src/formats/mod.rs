//! Log formats: each turns one line into a [`RawRecord`](crate::RawRecord).
//!
//! Formats are named like GoAccess's presets (`combined`, `vcombined`, `common`,
//! `vcommon`, `w3c`, `cloudfront`, `elb`, `alb`, `s3`, `squid`, `caddy`,
//! `traefik`, `traefik-json`, `nginx-json`), or given as an nginx `log_format`
//! or Apache `LogFormat` string. `auto` picks one from the first lines.

use crate::record::LineResult;

/// Per-source parser state: formats whose layout is declared inside the log
/// (W3C `#Fields:` headers) keep it here, so one format value can serve many sources.
#[derive(Debug, Clone, Default)]
pub struct FormatState {
    /// Field names from the latest `#Fields:` header, for W3C-style formats.
    pub fields: Option<std::sync::Arc<[String]>>,
    /// The day of the last CLF time (see [`time::ClfDay`]).
    pub(crate) clf_day: time::ClfDay,
}

/// One log format. Implementations are pure and `Sync`; per-source state lives in [`FormatState`].
pub trait LineFormat: Send + Sync + std::fmt::Debug {
    /// Preset name (`combined`) or `custom`.
    fn name(&self) -> &str;
    /// Parse one line, without its line terminator. Header/comment lines are
    /// reported as `RejectKind::Header` errors after updating `state`.
    fn parse<'a>(&self, line: &'a str, state: &mut FormatState) -> LineResult<'a>;
    /// The spans of a rejected `line` that the format knows hold a client, a
    /// user name or cookies (as far as the line follows it; `state` as the
    /// source's lines before it left it), for its dead letter
    /// ([`crate::dead_letter::scrub_rejected`]). None by default: the
    /// dead-letter scrubber finds those of CLF-shaped and JSON lines itself.
    fn personal_spans(
        &self,
        _line: &str,
        _state: &FormatState,
    ) -> Vec<(std::ops::Range<usize>, Personal)> {
        Vec::new()
    }
}

/// Where `part`, a slice of `line`, stands in it.
pub(crate) fn span_in(line: &str, part: &str) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - line.as_ptr() as usize;
    debug_assert!(start + part.len() <= line.len(), "a slice of the line");
    start..start + part.len()
}

/// What a span of a rejected line holds, by the format's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personal {
    /// The client's address or host name: truncated as in `client_net`.
    Client,
    /// A user name: replaced by `-`.
    User,
    /// A `Cookie` header or one cookie's value: replaced by `-`.
    Cookie,
}

pub mod aws;
mod clf;
mod fields;
pub mod json;
pub mod squid;
pub mod template;
pub mod time;
pub mod w3c;

use std::sync::Arc;

pub use template::{TemplateError, TemplateFormat};

/// The preset names accepted by `--format`, in the order auto-detection tries them.
pub const PRESETS: &[&str] = &[
    "combined",
    "vcombined",
    "traefik",
    "common",
    "vcommon",
    "w3c",
    "cloudfront",
    "elb",
    "alb",
    "s3",
    "squid",
    "caddy",
    "traefik-json",
    "nginx-json",
];

/// A format could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// No preset has this name.
    #[error("unknown log format {0:?}; known: {known}", known = PRESETS.join(", "))]
    Unknown(String),
    /// A custom template does not compile.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Build a preset format by name.
pub fn preset(name: &str) -> Result<Arc<dyn LineFormat>, FormatError> {
    use template::*;
    let f: Arc<dyn LineFormat> = match name {
        "combined" => Arc::new(TemplateFormat::nginx("combined", COMBINED)?),
        "common" | "clf" => Arc::new(TemplateFormat::nginx("common", COMMON)?),
        "vcombined" => Arc::new(TemplateFormat::nginx("vcombined", VCOMBINED)?),
        "vcommon" => Arc::new(TemplateFormat::nginx("vcommon", VCOMMON)?),
        "traefik" => Arc::new(TemplateFormat::nginx("traefik", TRAEFIK_CLF)?),
        "w3c" => Arc::new(w3c::W3cFormat::w3c()),
        "cloudfront" => Arc::new(w3c::W3cFormat::cloudfront()),
        "elb" => Arc::new(aws::Elb),
        "alb" => Arc::new(aws::Alb),
        "s3" => Arc::new(aws::S3),
        "squid" => Arc::new(squid::Squid),
        "caddy" => Arc::new(json::JsonFormat::caddy()),
        "traefik-json" => Arc::new(json::JsonFormat::traefik()),
        "nginx-json" => Arc::new(json::JsonFormat::nginx(json::JsonMapping::default())),
        other => return Err(FormatError::Unknown(other.to_string())),
    };
    Ok(f)
}

/// Compile a custom template: an Apache `LogFormat` string when it contains `%`
/// directives, otherwise an nginx `log_format` string.
pub fn custom(template: &str) -> Result<Arc<dyn LineFormat>, FormatError> {
    let looks_apache = template.contains('%') && !template.contains('$');
    Ok(if looks_apache {
        Arc::new(TemplateFormat::apache("custom", template)?)
    } else {
        Arc::new(TemplateFormat::nginx("custom", template)?)
    })
}

/// How well one format reads a sample: lines parsed, and fields extracted
/// from them in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fit {
    /// Lines of the sample the format parses.
    pub lines: usize,
    /// Fields those lines yield (client, method, target, bytes, referrer,
    /// user agent, host, duration, upstream), summed.
    pub fields: usize,
}

/// How well `format` reads `sample` (non-blank lines, in order).
pub fn fit(format: &dyn LineFormat, sample: &[&str]) -> Fit {
    let mut state = FormatState::default();
    let mut fit = Fit {
        lines: 0,
        fields: 0,
    };
    for line in sample.iter().filter(|l| !l.trim().is_empty()) {
        if let Ok(r) = format.parse(line, &mut state) {
            fit.lines += 1;
            fit.fields += [
                r.client.is_some(),
                r.method.is_some(),
                r.target.is_some(),
                r.bytes.is_some(),
                r.referrer.is_some(),
                r.user_agent.is_some(),
                r.host.is_some(),
                r.duration_ms.is_some(),
                r.upstream.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
        }
    }
    fit
}

/// Whether a sample declares CloudFront's W3C fields (`x-edge-location`, ...):
/// CloudFront and W3C read the same lines, but CloudFront's `time-taken` is in
/// seconds and IIS's in milliseconds, so the header decides between them.
fn declares_cloudfront(sample: &[&str]) -> bool {
    sample
        .iter()
        .any(|l| l.starts_with("#Fields:") && l.contains(" x-edge-"))
}

/// Pick the preset that parses the most of `sample` (the first lines of a
/// source), preferring the one that extracts more fields on a tie. `None` when
/// no preset parses even one line. A W3C sample whose `#Fields:` name
/// CloudFront's fields is CloudFront, else plain W3C.
pub fn detect(sample: &[&str]) -> Option<&'static str> {
    let cloudfront = declares_cloudfront(sample);
    let mut best: Option<(&'static str, Fit)> = None;
    for &name in PRESETS {
        if (name == "cloudfront" && !cloudfront) || (name == "w3c" && cloudfront) {
            continue;
        }
        let Ok(f) = preset(name) else { continue };
        let fit = fit(&*f, sample);
        if fit.lines > 0 && best.is_none_or(|(_, b)| fit > b) {
            best = Some((name, fit));
        }
    }
    best.map(|(n, _)| n)
}
