//! The subcommands.

pub mod aggregate;
pub mod check;
pub mod demo;
pub mod docs;
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
use footfall_kafka::{KafkaConfig, OptionValue};
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
    let (keyring, created) =
        Keyring::open_or_create_with(&dir, keys.epoch).map_err(keyring_failure)?;
    if created {
        eprintln!(
            "footfall {command}: created a new keyring in {} (fingerprint {}, epoch {}). Keep it: event and visitor ids depend on it; \
             `footfall keys export` copies it to another host.",
            dir.display(),
            keyring.status().fingerprint,
            keyring.epoch()
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

/// A `-X KEY=VALUE` librdkafka property; the value of a secret-looking key
/// redacts itself (`OptionValue`).
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaOption {
    pub key: String,
    pub value: OptionValue,
}

/// Parse `-X KEY=VALUE` (only the first `=` separates). A secret is kept
/// redacted here and refused by [`apply_kafka_overrides`], which names the key
/// but not the value (a parse error here would echo the value).
pub fn parse_kafka_option(s: &str) -> Result<KafkaOption, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE, e.g. -X security.protocol=ssl".to_string())?;
    let key = key.trim();
    if key.is_empty() {
        return Err("the property name is empty: expected KEY=VALUE".into());
    }
    if matches!(key, "bootstrap.servers" | "metadata.broker.list") {
        return Err(format!("set {key} with --brokers"));
    }
    Ok(KafkaOption {
        key: key.to_string(),
        value: OptionValue::for_key(key, value),
    })
}

/// The names of the visits and dead-letter topics, over the config's
/// `[kafka.topics]` (`ingest`, `topics`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TopicArgs {
    /// Topic for visit events [default: the config's kafka.topics.visits.name, else footfall.visits].
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// Topic for rejected lines [default: the config's kafka.topics.dead_letter.name, else the
    /// visits topic followed by .dlq].
    #[arg(long, value_name = "NAME")]
    pub dlq_topic: Option<String>,
}

/// How every command that talks to Kafka is told where it is and how to log
/// in: the config file's `[kafka]` table, then the environment, then flags
/// (a flag beats the environment, which beats the file).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaArgs {
    /// TOML config file (docs/configuration.md): its [kafka] table is shared by every command.
    #[arg(long, short = 'c', env = "FOOTFALL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers, host:port[,host:port...] [default: the config's kafka.brokers, else 127.0.0.1:9092].
    #[arg(long, env = "FOOTFALL_KAFKA_BROKERS", value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// A librdkafka property, passed through (repeatable): `-X security.protocol=ssl`.
    #[arg(short = 'X', value_parser = parse_kafka_option, value_name = "KEY=VALUE")]
    pub options: Vec<KafkaOption>,
}

/// The environment variable a SASL password may come from (beside `sasl_password_file`).
pub const SASL_PASSWORD_ENV: &str = "FOOTFALL_KAFKA_SASL_PASSWORD";

impl KafkaArgs {
    /// The whole config file, validated (unknown keys are errors), if one was given.
    pub fn file(&self) -> anyhow::Result<Option<footfall_ingest::IngestConfig>> {
        self.config
            .as_deref()
            .map(|p| {
                footfall_ingest::IngestConfig::from_toml_file(p)
                    .map_err(|e| Failure::new(CONFIG, e.to_string()).into())
            })
            .transpose()
    }

    /// The Kafka settings: file, then environment, then flags; validated.
    pub fn resolve(&self) -> anyhow::Result<KafkaConfig> {
        self.resolve_in(self.file()?.as_ref())
    }

    /// [`KafkaArgs::resolve`] over a config file already read with [`KafkaArgs::file`].
    pub fn resolve_in(
        &self,
        file: Option<&footfall_ingest::IngestConfig>,
    ) -> anyhow::Result<KafkaConfig> {
        let mut cfg = file.map(|c| c.kafka.clone()).unwrap_or_default();
        self.apply(&mut cfg)?;
        Ok(cfg)
    }

    /// Put the environment and these flags over `cfg` ([`apply_kafka_overrides`]).
    pub fn apply(&self, cfg: &mut KafkaConfig) -> anyhow::Result<()> {
        apply_kafka_overrides(cfg, self.brokers.as_deref(), &self.options)
    }
}

/// Put the environment and the flags over a config file's `[kafka]` table.
pub fn apply_kafka_overrides(
    cfg: &mut KafkaConfig,
    brokers: Option<&str>,
    options: &[KafkaOption],
) -> anyhow::Result<()> {
    if let Some(b) = brokers {
        cfg.brokers = b.trim().to_string();
    }
    if let Ok(p) = std::env::var(SASL_PASSWORD_ENV) {
        cfg.sasl_password = Some(footfall_kafka::Secret::new(p));
        cfg.sasl_password_file = None;
    }
    for o in options {
        if footfall_kafka::is_sensitive_key(&o.key) {
            return Err(Failure::new(CONFIG, format!("-X {}: a secret must not be on the command line, which every user can read (ps)", o.key))
                .with_hint(format!("put it in the config file's [kafka] table (sasl_password_file, ssl_key_password), or the SASL password in {SASL_PASSWORD_ENV}"))
                .into());
        }
        cfg.set_property(&o.key, o.value.expose())
            .map_err(|e| Failure::new(CONFIG, format!("-X {}: {e}", o.key)))?;
    }
    cfg.validate()
        .map_err(|e| Failure::new(CONFIG, e.to_string()))?;
    Ok(())
}
