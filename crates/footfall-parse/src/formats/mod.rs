//! Log formats: each turns one line into a [`RawRecord`].
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
}

pub mod aws;
mod clf;
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
    #[error("unknown log format {0:?}; known: {known}", known = PRESETS.join(", "))]
    Unknown(String),
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

/// Pick the preset that parses the most of `sample` (the first lines of a
/// source), preferring the one that extracts more fields on a tie. `None` when
/// no preset parses even one line.
pub fn detect(sample: &[&str]) -> Option<&'static str> {
    let mut best: Option<(&'static str, usize, usize)> = None;
    for &name in PRESETS {
        let Ok(f) = preset(name) else { continue };
        let mut state = FormatState::default();
        let (mut ok, mut fields) = (0usize, 0usize);
        for line in sample.iter().filter(|l| !l.trim().is_empty()) {
            if let Ok(r) = f.parse(line, &mut state) {
                ok += 1;
                fields += [
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
        if ok == 0 {
            continue;
        }
        if best.is_none_or(|(_, bo, bf)| (ok, fields) > (bo, bf)) {
            best = Some((name, ok, fields));
        }
    }
    best.map(|(n, _, _)| n)
}
