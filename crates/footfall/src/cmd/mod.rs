//! The subcommands.

pub mod aggregate;
pub mod demo;
pub mod ingest;
pub mod parse;
pub mod report;
pub mod topics;
pub mod tail;

use std::path::Path;
use std::sync::Arc;

use footfall_event::RejectKind;
use footfall_parse::{KeyProvider, SecretKeys};

use crate::exit::{Failure, CONFIG};

/// Keys from `--key-file`, else `FOOTFALL_KEY` in the environment, else ephemeral.
pub fn load_keys(key_file: Option<&Path>) -> anyhow::Result<Arc<dyn KeyProvider>> {
    let keys = match key_file {
        Some(p) => SecretKeys::from_file(p).map_err(|e| Failure::new(CONFIG, e.to_string()))?,
        None if std::env::var_os("FOOTFALL_KEY").is_some() => {
            SecretKeys::from_env("FOOTFALL_KEY").map_err(|e| Failure::new(CONFIG, e.to_string()))?
        }
        None => SecretKeys::ephemeral(),
    };
    Ok(Arc::new(keys))
}

/// Line accounting: lines = events + rejects, always.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub lines: u64,
    pub events: u64,
    pub rejects: [u64; RejectKind::ALL.len()],
}

impl Counts {
    pub fn count_reject(&mut self, kind: RejectKind) {
        let i = RejectKind::ALL.iter().position(|k| *k == kind).expect("every kind is listed");
        self.rejects[i] += 1;
    }
    pub fn rejects(&self) -> u64 {
        self.rejects.iter().sum()
    }
    pub fn add(&mut self, o: &Counts) {
        self.lines += o.lines;
        self.events += o.events;
        for (a, b) in self.rejects.iter_mut().zip(o.rejects.iter()) {
            *a += b;
        }
    }
    /// `malformed 3, bad_status 1`
    pub fn rejects_by_kind(&self) -> String {
        RejectKind::ALL
            .iter()
            .zip(self.rejects.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parse a `-X key=value` librdkafka property.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| "expected KEY=VALUE, e.g. -X security.protocol=ssl".to_string())?;
    if k.trim().is_empty() {
        return Err("empty property name".into());
    }
    Ok((k.trim().to_string(), v.to_string()))
}

/// Add `-X` properties to a Kafka config (validated: typed settings must use their own flags).
pub fn apply_options(cfg: &mut footfall_kafka::KafkaConfig, opts: &[(String, String)]) -> anyhow::Result<()> {
    for (k, v) in opts {
        cfg.set_property(k, v).map_err(|e| Failure::new(CONFIG, format!("-X {k}: {e}")))?;
    }
    cfg.validate().map_err(|e| Failure::new(CONFIG, e.to_string()))?;
    Ok(())
}
