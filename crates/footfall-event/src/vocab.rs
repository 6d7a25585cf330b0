//! Names every producer and consumer of events agrees on: the Kafka headers
//! an event or dead letter carries, and the closed vocabularies of the
//! event fields `referrer_medium`, `device` and `kind`.
//!
//! `footfall ingest` writes the headers, `footfall tail` reads them and
//! validates its filters against the vocabularies; [`legacy_kind`] reads the
//! `kind` of events older than schema version 2. `docs/events.md`
//! describes the same values.

/// Kafka header carrying the event schema version ([`crate::SCHEMA_VERSION`]).
pub const SCHEMA_HEADER: &str = "footfall-schema";
/// Kafka header carrying the name of the source an event or dead letter was read from.
pub const SOURCE_HEADER: &str = "footfall-source";

/// Every value of [`crate::VisitEvent::referrer_medium`].
pub const REFERRER_MEDIA: [&str; 8] = [
    "direct",
    "internal",
    "search",
    "social",
    "email",
    "paid",
    "ai-assistant",
    "external",
];

/// Every value of [`crate::VisitEvent::device`].
pub const DEVICES: [&str; 5] = ["desktop", "mobile", "tablet", "bot", "other"];

/// Every value of [`crate::VisitEvent::kind`] (schema version 2 on): the
/// kind of resource the path names, whatever the status.
pub const KINDS: [&str; 6] = ["page", "asset", "api", "feed", "download", "other"];

/// The `kind` of schema version 1 events (`page`, `static`, `redirect`,
/// `error`, `other`), which mixed the resource with the response.
pub const LEGACY_KINDS: [&str; 5] = ["page", "static", "redirect", "error", "other"];

/// The kind in today's vocabulary ([`KINDS`]) of a `kind` read from an event
/// older than schema version 2 ([`LEGACY_KINDS`]): `static` is `asset`,
/// `page` stays `page`, and `redirect`, `error` and `other` (and anything
/// unknown) become `other`, since version 1 did not say what resource a
/// redirected, failed or non-GET request named.
///
/// Use it on events whose `v` is below 2; newer events carry the new values.
///
/// ```
/// use footfall_event::{legacy_kind, VisitEvent};
/// fn kind_of(ev: &VisitEvent) -> &str {
///     if ev.v < 2 { legacy_kind(&ev.kind) } else { &*ev.kind }
/// }
/// assert_eq!(legacy_kind("static"), "asset");
/// assert_eq!(legacy_kind("error"), "other");
/// ```
pub fn legacy_kind(old: &str) -> &'static str {
    match old {
        "page" => "page",
        "static" => "asset",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_legacy_kind_maps_into_the_vocabulary() {
        for old in LEGACY_KINDS {
            assert!(KINDS.contains(&legacy_kind(old)), "{old}");
        }
        assert_eq!(
            LEGACY_KINDS.map(legacy_kind),
            ["page", "asset", "other", "other", "other"]
        );
        assert_eq!(legacy_kind("something new"), "other");
    }
}
