//! The keyring in the parse pipeline: visitor ids are keyed by the ratchet's
//! day key, event ids by the installation secret, and a line whose day key is
//! destroyed becomes a `key_destroyed` reject, not an event.

use std::sync::Arc;

use chrono::NaiveDate;
use footfall_event::RejectKind;
use footfall_keys::Keyring;
use footfall_parse::privacy::{visitor_id, VisitorBasis};
use footfall_parse::{FormatState, KeyProvider, Outcome, ParseConfig, Pipeline, SourceRef, Tables};

const OLD: &[u8] =
    br#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "-" "UA/1.0""#;
const NEW: &[u8] =
    br#"203.0.113.7 - - [20/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "-" "UA/1.0""#;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2015, 5, d).unwrap()
}

fn process(keys: Arc<Keyring>, line: &[u8]) -> Outcome {
    let cfg = ParseConfig {
        format: "combined".into(),
        site: Some("example.org".into()),
        ..Default::default()
    };
    let p = Arc::new(Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap());
    let src = SourceRef::from_first_line("t", OLD);
    p.worker()
        .process(&src, &mut FormatState::default(), 0, line)
}

#[test]
fn visitor_ids_follow_the_ratchet_and_destroyed_days_are_rejected() {
    let keys = Arc::new(Keyring::in_memory(&[9; 32]));
    let Outcome::Event(ev) = process(keys.clone(), OLD) else {
        panic!("an event")
    };
    let want = visitor_id(
        &keys.day_key(day(17)).unwrap(),
        "example.org",
        VisitorBasis::ClientAgent("203.0.113.7", "UA/1.0"),
    );
    assert_eq!(ev.visitor_id, want);
    let before = ev.event_id.clone();

    assert!(keys.advance_to(day(18)).unwrap());
    match process(keys.clone(), OLD) {
        Outcome::Reject(r) => {
            assert_eq!(r.kind, RejectKind::KeyDestroyed);
            assert_eq!(
                r.event_id, before,
                "the event id does not depend on the day key"
            );
        }
        Outcome::Event(_) => panic!("a destroyed day's line must not become an event"),
    }
    let Outcome::Event(later) = process(keys, NEW) else {
        panic!("days after the ratchet still have keys")
    };
    assert_ne!(later.visitor_id, want, "ids do not link across days");
}

#[test]
fn another_installation_gives_other_ids() {
    let (a, b) = (
        Arc::new(Keyring::in_memory(&[1; 32])),
        Arc::new(Keyring::in_memory(&[2; 32])),
    );
    let (Outcome::Event(x), Outcome::Event(y)) = (process(a, OLD), process(b, OLD)) else {
        panic!("events")
    };
    assert_ne!(x.event_id, y.event_id);
    assert_ne!(x.visitor_id, y.visitor_id);
}
