//! What readers hand to the parse stage.

use std::sync::Arc;

use footfall_parse::SourceRef;

use crate::lines::LineBuf;
use crate::track::Track;

/// Lines read from one stream, in stream order.
#[derive(Debug)]
pub struct RawBatch {
    /// Progress of the stream the lines come from.
    pub track: Arc<Track>,
    /// Identity used for `event_id` and the events' `source`.
    pub src: SourceRef,
    /// Header lines (`#Fields:` of W3C logs) from before the resume offset:
    /// parsed only to restore the format state, never emitted.
    pub prime: LineBuf,
    /// Complete lines.
    pub lines: LineBuf,
    /// Stream offset after the last line of this batch.
    pub end: u64,
}

/// The first line of a stream as [`SourceRef::from_first_line`] wants it:
/// without terminator, at most 1 KiB.
pub fn first_line(head: &[u8]) -> &[u8] {
    let line = match memchr::memchr(b'\n', head) {
        Some(i) => head[..i].strip_suffix(b"\r").unwrap_or(&head[..i]),
        None => head,
    };
    &line[..line.len().min(1024)]
}

/// Display name of a stream, shown in events' `source`.
pub fn source_ref(name: impl Into<Arc<str>>, first: &[u8]) -> SourceRef {
    SourceRef::from_first_line(name, first_line(first))
}
