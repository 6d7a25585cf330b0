#![warn(missing_docs)]
//! Access-log parsing, enrichment and pseudonymisation: pure functions from
//! bytes to visit events, with no I/O and no async.
//!
//! * [`Pipeline`] compiles a [`ParseConfig`] (format, site, rules) with the
//!   shared rule [`Tables`] and a [`KeyProvider`]; [`Worker`] adds per-thread
//!   caches and turns each line into an [`Outcome`]: a
//!   [`VisitEvent`](footfall_event::VisitEvent) or a [`Reject`](footfall_event::Reject).
//! * [`formats`] holds the log formats ([`LineFormat`]), each producing a
//!   [`RawRecord`]; [`ua`], [`referrer`], [`url`], [`route`], [`classify`]
//!   (the kind of resource) and [`search`] (search terms in one spelling) do
//!   the enrichment; [`privacy`] the pseudonyms and truncation;
//!   [`dead_letter`] the scrubbing of rejected lines; [`scrub`] the content detectors that every URL piece leaving
//!   the parser goes through (the query policy is in [`url`]); [`self_host`]
//!   infers the site's own host from its referrers.
//!
//! ```
//! use std::sync::Arc;
//! use footfall_parse::{FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};
//!
//! let cfg = ParseConfig { format: "combined".into(), site: Some("example.org".into()), ..Default::default() };
//! let keys = Arc::new(SecretKeys::from_secret(b"a secret of at least sixteen bytes").unwrap());
//! let pipeline = Arc::new(Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap());
//! let mut worker = pipeline.worker();
//! let line = br#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /search?q=shoes&token=s3cr3t HTTP/1.1" 200 512 "-" "curl/8.0""#;
//! let src = SourceRef::from_first_line("access.log", line);
//! let Outcome::Event(ev) = worker.process(&src, &mut FormatState::default(), 0, line) else { panic!() };
//! assert_eq!(ev.client_net.as_deref(), Some("203.0.113.0/24"));
//! assert_eq!(ev.query.as_deref(), Some("q=shoes&token=REDACTED"));
//! assert_eq!(ev.site_search.as_deref(), Some("shoes"));
//! ```

pub mod check;
pub mod classify;
pub mod dead_letter;
pub mod formats;
pub mod lineage;
mod memo;
pub mod pipeline;
pub mod privacy;
pub mod record;
pub mod referrer;
pub mod route;
pub mod scrub;
pub mod search;
pub mod self_host;
pub mod ua;
pub mod url;
mod visitors;

pub use check::{check_sample, ignored_fields, FormatMistake};
pub use classify::{Kind, KindRuleConfig};
pub use formats::{FormatError, FormatState, LineFormat};
pub use pipeline::{ConfigError, Outcome, ParseConfig, Pipeline, SourceRef, Tables, Worker};
pub use privacy::{InvalidSetting, KeyError, KeyProvider, PrivacyConfig, SecretKeys};
pub use record::{LineError, RawRecord};
pub use route::RouteRuleConfig;
pub use self_host::{InferredHost, SiteHostSample};
