//! Property: arbitrary bytes through every format's whole pipeline never panic,
//! and each line becomes exactly one event or one reject with a reason.

use std::sync::Arc;

use footfall_parse::{formats, FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};
use proptest::prelude::*;

fn pipelines() -> Vec<Arc<Pipeline>> {
    let tables = Tables::embedded();
    let keys = Arc::new(SecretKeys::from_secret(b"property test secret, 16+ bytes").unwrap());
    formats::PRESETS
        .iter()
        .map(|f| {
            let cfg = ParseConfig { format: f.to_string(), ..Default::default() };
            Arc::new(Pipeline::new(&cfg, &tables, keys.clone()).unwrap())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        thread_local!(static P: Vec<Arc<Pipeline>> = pipelines());
        P.with(|ps| {
            let src = SourceRef::from_first_line("prop", &data);
            for p in ps {
                let mut w = p.worker();
                match w.process(&src, &mut FormatState::default(), 7, &data) {
                    Outcome::Event(e) => { assert_eq!(e.offset, 7); assert_eq!(e.event_id.len(), 32); }
                    Outcome::Reject(r) => { assert!(!r.reason.is_empty()); assert_eq!(r.offset, 7); }
                }
            }
        });
    }
}
