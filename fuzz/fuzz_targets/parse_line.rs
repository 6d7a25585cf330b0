//! Arbitrary bytes through every format and the whole pipeline: must never panic,
//! and every line must come out as exactly one event or one reject.
#![no_main]

use std::sync::{Arc, OnceLock};

use footfall_parse::{formats, FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};
use libfuzzer_sys::fuzz_target;

fn pipelines() -> &'static Vec<Arc<Pipeline>> {
    static P: OnceLock<Vec<Arc<Pipeline>>> = OnceLock::new();
    P.get_or_init(|| {
        let tables = Tables::embedded();
        let keys = Arc::new(SecretKeys::from_secret(b"fuzzing secret, sixteen+ bytes").unwrap());
        formats::PRESETS
            .iter()
            .map(|f| {
                let cfg = ParseConfig { format: f.to_string(), ..Default::default() };
                Arc::new(Pipeline::new(&cfg, &tables, keys.clone()).unwrap())
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let src = SourceRef::from_first_line("fuzz", data);
    for p in pipelines() {
        let mut w = p.worker();
        let mut state = FormatState::default();
        match w.process(&src, &mut state, 0, data) {
            Outcome::Event(e) => assert!(!e.event_id.is_empty()),
            Outcome::Reject(r) => assert!(!r.reason.is_empty()),
        }
    }
});
