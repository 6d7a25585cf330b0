//! Catching a wrong format early: what the first lines of a source say about
//! the format chosen for it. Pure: the caller (parse, ingest) decides what to
//! do with the verdict (exit 65, warn).
//!
//! * [`check_sample`]: when [`MISTAKE_SHARE`] or more of a source's first
//!   [`SAMPLE_LINES`] lines (headers and blank lines aside) are rejected for
//!   their shape, the format is wrong: the verdict gives the top reason and
//!   what `auto` detects on those lines.
//! * [`ignored_fields`]: a format that parses the lines but ignores fields
//!   they carry (`common` on a `combined` log loses the referrer and user
//!   agent): the preset that reads more of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use footfall_event::RejectKind;

use crate::formats::{self, FormatState};
use crate::pipeline::{trim_eol, Pipeline, SourceRef};

/// How many of a source's first lines are checked.
pub const SAMPLE_LINES: usize = 1000;
/// The share of shape rejects (in percent) that marks a wrong format.
pub const MISTAKE_SHARE: usize = 90;

/// A format that does not fit a source's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatMistake {
    /// Lines considered (headers and blank lines aside).
    pub lines: usize,
    /// Of them, rejected for their shape.
    pub rejected: usize,
    /// The most frequent reject kind, its count and one reason given for it.
    pub top: (RejectKind, usize, String),
    /// What `auto` picks on the same lines, if anything.
    pub detected: Option<&'static str>,
}

impl std::fmt::Display for FormatMistake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, n, reason) = &self.top;
        write!(
            f,
            "{} of the first {} lines are rejected (top reason: {kind}, {n} lines, e.g. \"{reason}\"); on these lines --format auto detects {}",
            self.rejected,
            self.lines,
            self.detected.unwrap_or("no known format")
        )
    }
}

/// Whether a reject says the line does not have the format's shape (not a
/// header, a blank, an over-long line or a destroyed key).
fn is_shape(kind: RejectKind) -> bool {
    matches!(
        kind,
        RejectKind::Malformed
            | RejectKind::BadTimestamp
            | RejectKind::BadStatus
            | RejectKind::BadNumber
            | RejectKind::BadJson
    )
}

/// Check a source's first lines (`sample`, in order, without terminators)
/// against `pipeline`'s format; `Some` when the format is evidently wrong.
pub fn check_sample(
    pipeline: &Arc<Pipeline>,
    src: &SourceRef,
    sample: &[&[u8]],
) -> Option<FormatMistake> {
    let mut worker = pipeline.worker();
    let mut state = FormatState::default();
    let (mut lines, mut rejected) = (0usize, 0usize);
    let mut kinds: BTreeMap<RejectKind, (usize, String)> = BTreeMap::new();
    for line in sample.iter().take(SAMPLE_LINES) {
        match worker.process_with(src, &mut state, 0, line, |_| ()) {
            Ok(()) => lines += 1,
            Err(r) if r.kind == RejectKind::Empty || r.kind == RejectKind::Header => {}
            Err(r) => {
                lines += 1;
                if is_shape(r.kind) {
                    rejected += 1;
                    kinds
                        .entry(r.kind)
                        .or_insert_with(|| (0, r.reason.clone()))
                        .0 += 1;
                }
            }
        }
    }
    if lines == 0 || rejected * 100 < lines * MISTAKE_SHARE {
        return None;
    }
    let (kind, (n, reason)) = kinds.into_iter().max_by_key(|(_, (n, _))| *n)?;
    Some(FormatMistake {
        lines,
        rejected,
        top: (kind, n, reason),
        detected: Pipeline::detect_format(sample),
    })
}

/// When `format` (a preset name) parses `sample` but another preset reads as
/// many lines with more fields, that preset and how many more fields it reads.
pub fn ignored_fields(format: &str, sample: &[&[u8]]) -> Option<(&'static str, usize)> {
    let text: Vec<std::borrow::Cow<'_, str>> = sample
        .iter()
        .take(50)
        .map(|l| String::from_utf8_lossy(trim_eol(l)))
        .collect();
    let refs: Vec<&str> = text.iter().map(|c| c.as_ref()).collect();
    let chosen = formats::fit(&*formats::preset(format).ok()?, &refs);
    let best = formats::detect(&refs)?;
    let fit = formats::fit(&*formats::preset(best).ok()?, &refs);
    (best != format && chosen.lines > 0 && fit.lines >= chosen.lines && fit.fields > chosen.fields)
        .then(|| {
            (
                best,
                (fit.fields - chosen.fields).div_ceil(fit.lines.max(1)),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParseConfig, SecretKeys, Tables};

    const COMBINED: &[u8] = br#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "http://r.example/" "UA/1.0""#;
    const COMMON: &[u8] =
        br#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5"#;

    fn pipeline(format: &str) -> Arc<Pipeline> {
        let cfg = ParseConfig {
            format: format.into(),
            ..Default::default()
        };
        let keys = Arc::new(SecretKeys::from_secret(b"check test secret, long enough").unwrap());
        Arc::new(Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap())
    }

    #[test]
    fn a_wrong_format_is_caught_with_what_auto_sees() {
        let src = SourceRef::from_first_line("t", COMMON);
        let lines = vec![COMMON; 40];
        let m = check_sample(&pipeline("combined"), &src, &lines)
            .expect("combined does not read common lines");
        assert_eq!((m.lines, m.rejected), (40, 40));
        assert_eq!(m.detected, Some("common"));
        assert!(m.to_string().contains("auto detects common"), "{m}");
        let binary: Vec<&[u8]> = vec![b"\x00\x01\x02garbage\xff"; 40];
        assert_eq!(
            check_sample(&pipeline("combined"), &src, &binary)
                .unwrap()
                .detected,
            None
        );
    }

    #[test]
    fn a_few_bad_lines_are_not_a_wrong_format() {
        let src = SourceRef::from_first_line("t", COMBINED);
        let mut lines = vec![COMBINED; 15];
        lines.extend(vec![&b"garbage"[..]; 85]);
        assert!(
            check_sample(&pipeline("combined"), &src, &lines).is_none(),
            "85 % is under the line"
        );
        lines.extend(vec![&b"garbage"[..]; 100]);
        assert!(
            check_sample(&pipeline("combined"), &src, &lines).is_some(),
            "185 of 200"
        );
    }

    #[test]
    fn a_narrower_format_is_named() {
        let lines = vec![COMBINED; 10];
        assert_eq!(ignored_fields("common", &lines), Some(("combined", 2)));
        assert_eq!(ignored_fields("combined", &lines), None);
        assert_eq!(ignored_fields("common", &[COMMON]), None);
    }
}
