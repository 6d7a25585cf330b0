//! Lines timed too far from the clock become `time_out_of_range` rejects:
//! more than `max_future_hours` after it, or `max_past_days` before it.

use std::sync::Arc;

use chrono::{Duration, Utc};
use footfall_event::RejectKind;
use footfall_parse::{FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};

fn line_at(t: chrono::DateTime<Utc>) -> Vec<u8> {
    format!(
        r#"203.0.113.7 - - [{}] "GET / HTTP/1.1" 200 5 "-" "UA/1.0""#,
        t.format("%d/%b/%Y:%H:%M:%S +0000")
    )
    .into_bytes()
}

fn outcome(cfg: &ParseConfig, line: &[u8]) -> Outcome {
    let keys = Arc::new(SecretKeys::from_secret(b"time window test secret").unwrap());
    let p = Arc::new(Pipeline::new(cfg, &Tables::embedded(), keys).unwrap());
    p.worker().process(
        &SourceRef::from_first_line("stdin", line),
        &mut FormatState::default(),
        0,
        line,
    )
}

fn kind(cfg: &ParseConfig, line: &[u8]) -> Option<RejectKind> {
    match outcome(cfg, line) {
        Outcome::Event(_) => None,
        Outcome::Reject(r) => Some(r.kind),
    }
}

#[test]
fn the_default_window_is_a_day_ahead_and_twenty_years_back() {
    let cfg = ParseConfig {
        format: "combined".into(),
        ..Default::default()
    };
    let now = Utc::now();
    assert_eq!(kind(&cfg, &line_at(now)), None);
    assert_eq!(kind(&cfg, &line_at(now + Duration::hours(23))), None);
    assert_eq!(kind(&cfg, &line_at(now - Duration::days(19 * 365))), None);
    assert_eq!(
        kind(&cfg, &line_at(now + Duration::hours(26))),
        Some(RejectKind::TimeOutOfRange)
    );
    assert_eq!(
        kind(&cfg, &line_at(now - Duration::days(21 * 366))),
        Some(RejectKind::TimeOutOfRange)
    );
    let far =
        b"203.0.113.7 - - [01/Jan/9999:00:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"UA/1.0\"";
    match outcome(&cfg, far) {
        Outcome::Reject(r) => assert!(r.reason.contains("max_future_hours"), "{}", r.reason),
        Outcome::Event(_) => panic!("a line dated 9999 is not an event"),
    }
}

#[test]
fn the_window_is_configurable_for_backfills() {
    let cfg = ParseConfig {
        format: "combined".into(),
        max_past_days: 40 * 366,
        ..Default::default()
    };
    assert_eq!(
        kind(&cfg, &line_at(Utc::now() - Duration::days(31 * 365))),
        None
    );
}
