//! Names every producer and consumer of events agrees on: the Kafka headers
//! an event or dead letter carries, and the closed vocabularies of the
//! event fields `referrer_medium`, `device` and `kind`.
//!
//! `footfall ingest` writes the headers, `footfall tail` reads them and
//! validates its filters against the vocabularies. `docs/events.md`
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

/// Every value of [`crate::VisitEvent::kind`].
pub const KINDS: [&str; 5] = ["page", "static", "redirect", "error", "other"];
