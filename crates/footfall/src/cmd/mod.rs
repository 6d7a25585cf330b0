//! The subcommands.

pub mod aggregate;
pub mod demo;
pub mod ingest;
pub mod keys;
pub mod parse;
pub mod person;
pub mod report;
pub mod tail;
pub mod topics;

use std::path::PathBuf;
use std::sync::Arc;

use footfall_event::RejectKind;
use footfall_keys::{ErrorKind as KeyErrorKind, Keyring, KeyringError, KeysConfig};

use crate::exit::{Failure, CANT_CREATE, CONFIG};

/// `--keyring DIR` (or `FOOTFALL_KEYRING`): shared by every command that
/// uses keys.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KeyringArg {
    /// The keyring directory (default: the config's [keys] dir, else .state/keyring).
    #[arg(long, env = "FOOTFALL_KEYRING", value_name = "DIR", global = true)]
    pub keyring: Option<PathBuf>,
}

/// Open the keyring, creating it on first use and saying so on stderr.
pub fn open_or_create_keyring(
    keys: &KeysConfig,
    arg: &KeyringArg,
    command: &str,
) -> anyhow::Result<Arc<Keyring>> {
    let dir = keys.dir_or(arg.keyring.clone());
    let (keyring, created) = Keyring::open_or_create(&dir).map_err(keyring_failure)?;
    if created {
        eprintln!(
            "footfall {command}: created a new keyring in {} (fingerprint {}). Keep it: event and visitor ids depend on it; \
             `footfall keys export` copies it to another host.",
            dir.display(),
            keyring.status().fingerprint
        );
    }
    Ok(Arc::new(keyring))
}

/// Open an existing keyring (a missing one is an error, exit 78).
pub fn open_keyring(keys: &KeysConfig, arg: &KeyringArg) -> anyhow::Result<Keyring> {
    Keyring::open(keys.dir_or(arg.keyring.clone())).map_err(|e| keyring_failure(e).into())
}

/// A keyring error with its exit code and hint.
pub fn keyring_failure(e: KeyringError) -> Failure {
    match e.kind() {
        KeyErrorKind::Missing => Failure::new(CONFIG, e.to_string())
            .with_hint("pass --keyring DIR (or FOOTFALL_KEYRING) where the keyring is, or [keys] dir in the config"),
        KeyErrorKind::Invalid | KeyErrorKind::Exists => Failure::new(CONFIG, e.to_string()),
        KeyErrorKind::Io => Failure::new(CANT_CREATE, e.to_string()),
    }
}

/// The `[keys]` table of `--config FILE` (the whole file is validated), or the defaults.
pub fn keys_config(config: Option<&std::path::Path>) -> anyhow::Result<KeysConfig> {
    match config {
        Some(path) => footfall_ingest::IngestConfig::from_toml_file(path)
            .map(|c| c.keys)
            .map_err(|e| Failure::new(CONFIG, e.to_string()).into()),
        None => Ok(KeysConfig::default()),
    }
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
        let i = RejectKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is listed");
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
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE, e.g. -X security.protocol=ssl".to_string())?;
    if k.trim().is_empty() {
        return Err("empty property name".into());
    }
    Ok((k.trim().to_string(), v.to_string()))
}

/// Add `-X` properties to a Kafka config (validated: typed settings must use their own flags).
pub fn apply_options(
    cfg: &mut footfall_kafka::KafkaConfig,
    opts: &[(String, String)],
) -> anyhow::Result<()> {
    for (k, v) in opts {
        cfg.set_property(k, v)
            .map_err(|e| Failure::new(CONFIG, format!("-X {k}: {e}")))?;
    }
    cfg.validate()
        .map_err(|e| Failure::new(CONFIG, e.to_string()))?;
    Ok(())
}
