//! Client configuration: the `[kafka]` table of footfall's TOML config.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rdkafka::ClientConfig;
use serde::{Deserialize, Deserializer};

use crate::error::{ErrorKind, KafkaError};
use crate::secret::Secret;
use crate::topics::TopicsConfig;

/// Default bootstrap servers: the broker started by `deploy/kafka/local-kafka.sh`.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
/// Default `client.id`.
pub const DEFAULT_CLIENT_ID: &str = "footfall";
/// Default producer `linger.ms`.
pub const DEFAULT_LINGER_MS: u32 = 20;

/// Connection and client settings for Kafka.
///
/// Every field has a default, so an empty `[kafka]` table talks to a local
/// plaintext broker at [`DEFAULT_BROKERS`]. Unknown keys are rejected.
///
/// ```toml
/// [kafka]
/// brokers = "kafka-1.example:9093,kafka-2.example:9093"
/// client_id = "footfall-ingest"
/// security_protocol = "sasl_ssl"
/// sasl_mechanism = "SCRAM-SHA-512"
/// sasl_username = "footfall"
/// sasl_password_file = "/run/credentials/footfall-ingest.service/kafka-password"
/// ssl_ca_location = "/etc/footfall/kafka-ca.pem"
///
/// [kafka.options]            # raw librdkafka properties, applied last
/// "socket.keepalive.enable" = true
///
/// [kafka.topics.visits]
/// partitions = 12
/// ```
///
/// Values under `options` whose key contains `password`, `secret`, `token`,
/// `key` or `credential` are held as [`Secret`]s and never printed; `Display`
/// and `Debug` of this type are safe to log.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap servers (`bootstrap.servers`).
    /// Default `127.0.0.1:9092`.
    pub brokers: String,
    /// `client.id` reported to the brokers (shows up in broker logs and quotas).
    /// Default `footfall`.
    pub client_id: String,
    /// `security.protocol`: `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// `sasl.mechanism`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `GSSAPI` or
    /// `OAUTHBEARER`. Required when the protocol uses SASL. Default unset.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// `sasl.username` (PLAIN and SCRAM). Default unset.
    pub sasl_username: Option<String>,
    /// `sasl.password` (PLAIN and SCRAM). Prefer `sasl_password_file`. Default unset.
    pub sasl_password: Option<Secret>,
    /// A file whose content (trailing newline removed) is the SASL password, read
    /// each time a client config is built; suits systemd's `LoadCredential=`.
    /// Mutually exclusive with `sasl_password`. Default unset.
    pub sasl_password_file: Option<PathBuf>,
    /// `ssl.ca.location`: CA bundle used to verify the brokers. Default unset
    /// (librdkafka then uses the system trust store).
    pub ssl_ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`: client certificate for mutual TLS. Default unset.
    pub ssl_certificate_location: Option<PathBuf>,
    /// `ssl.key.location`: private key of the client certificate. Default unset.
    pub ssl_key_location: Option<PathBuf>,
    /// `ssl.key.password`: passphrase of `ssl_key_location`. Default unset.
    pub ssl_key_password: Option<Secret>,
    /// Producer `compression.type`: `zstd` (default), `lz4` or `none`.
    pub compression: Compression,
    /// Producer `linger.ms`: how long to wait to fill a batch. Default 20.
    pub linger_ms: u32,
    /// Topic names and their expected layout (`[kafka.topics.visits]`,
    /// `[kafka.topics.dead_letter]`).
    pub topics: TopicsConfig,
    /// Raw librdkafka properties (see librdkafka's CONFIGURATION.md), applied
    /// after everything above, so they override the producer and consumer
    /// defaults. Keys that have a typed field above are rejected. Values may be
    /// strings, integers, floats or booleans. Default empty.
    #[serde(deserialize_with = "deserialize_options")]
    pub options: BTreeMap<String, OptionValue>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: DEFAULT_BROKERS.to_owned(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            security_protocol: SecurityProtocol::default(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            sasl_password_file: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_key_password: None,
            compression: Compression::default(),
            linger_ms: DEFAULT_LINGER_MS,
            topics: TopicsConfig::default(),
            options: BTreeMap::new(),
        }
    }
}

/// `security.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS; optionally mutual TLS with a client certificate.
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// `sasl.mechanism`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// Username and password sent as is (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Kerberos; configure `sasl.kerberos.*` under `options`.
    #[serde(rename = "GSSAPI")]
    Gssapi,
    /// OAuth bearer tokens; configure `sasl.oauthbearer.*` under `options`.
    #[serde(rename = "OAUTHBEARER")]
    OauthBearer,
}

impl SaslMechanism {
    /// The librdkafka value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::Gssapi => "GSSAPI",
            SaslMechanism::OauthBearer => "OAUTHBEARER",
        }
    }

    fn uses_password(self) -> bool {
        matches!(
            self,
            SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512
        )
    }
}

/// Producer `compression.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Best ratio for repetitive JSON events; the default.
    #[default]
    Zstd,
    /// Cheaper on CPU, larger on disk.
    Lz4,
    /// No compression.
    None,
}

impl Compression {
    /// The librdkafka value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }
}

/// A value under `[kafka.options]`: plain, or secret when its key looks
/// sensitive (see [`is_sensitive_key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionValue {
    /// Printed as is.
    Plain(String),
    /// Printed as `***`.
    Secret(Secret),
}

impl OptionValue {
    /// Classifies `value` by the key it is stored under.
    pub fn for_key(key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if is_sensitive_key(key) {
            OptionValue::Secret(Secret::new(value))
        } else {
            OptionValue::Plain(value)
        }
    }

    /// The raw value, for handing to librdkafka.
    pub fn expose(&self) -> &str {
        match self {
            OptionValue::Plain(value) => value,
            OptionValue::Secret(secret) => secret.expose(),
        }
    }
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Plain(value) => f.write_str(value),
            OptionValue::Secret(secret) => secret.fmt(f),
        }
    }
}

/// Whether a librdkafka property name is treated as holding a secret: its name
/// contains `password`, `secret`, `token`, `key`, `credential` or is
/// `sasl.oauthbearer.config`. Errs on the side of redacting (`ssl.key.location`
/// is a path, and is still redacted).
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "key", "credential"]
        .iter()
        .any(|word| key.contains(word))
        || key == "sasl.oauthbearer.config"
}

fn deserialize_options<'de, D>(deserializer: D) -> Result<BTreeMap<String, OptionValue>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        String(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }

    let raw = BTreeMap::<String, Raw>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                Raw::String(s) => s,
                Raw::Integer(i) => i.to_string(),
                Raw::Float(f) => f.to_string(),
                Raw::Bool(b) => b.to_string(),
            };
            let value = OptionValue::for_key(&key, value);
            (key, value)
        })
        .collect())
}

/// librdkafka properties owned by typed fields, with the field to use instead.
const TYPED_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "brokers"),
    ("metadata.broker.list", "brokers"),
    ("client.id", "client_id"),
    ("security.protocol", "security_protocol"),
    ("sasl.mechanism", "sasl_mechanism"),
    ("sasl.mechanisms", "sasl_mechanism"),
    ("sasl.username", "sasl_username"),
    ("sasl.password", "sasl_password"),
    ("ssl.ca.location", "ssl_ca_location"),
    ("ssl.certificate.location", "ssl_certificate_location"),
    ("ssl.key.location", "ssl_key_location"),
    ("ssl.key.password", "ssl_key_password"),
    ("compression.type", "compression"),
    ("compression.codec", "compression"),
    ("linger.ms", "linger_ms"),
    ("queue.buffering.max.ms", "linger_ms"),
];

impl KafkaConfig {
    /// A config for the given bootstrap servers with every other setting at its default.
    pub fn for_brokers(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            ..KafkaConfig::default()
        }
    }

    /// Applies one librdkafka-style property, as given on a command line
    /// (`-X key=value`): keys that have a typed field (`bootstrap.servers`,
    /// `security.protocol`, `sasl.password`, `compression.type`, ...) set that
    /// field, anything else goes to [`KafkaConfig::options`]. Values of
    /// sensitive keys are kept as [`Secret`]s either way.
    pub fn set_property(&mut self, key: &str, value: &str) -> Result<(), KafkaError> {
        let bad = |expected: &str| {
            KafkaError::new(
                ErrorKind::Config,
                format!("{key}: expected {expected}, got {value:?}"),
            )
        };
        match key {
            "bootstrap.servers" | "metadata.broker.list" => self.brokers = value.to_owned(),
            "client.id" => self.client_id = value.to_owned(),
            "security.protocol" => {
                self.security_protocol = match value.to_ascii_lowercase().as_str() {
                    "plaintext" => SecurityProtocol::Plaintext,
                    "ssl" => SecurityProtocol::Ssl,
                    "sasl_plaintext" => SecurityProtocol::SaslPlaintext,
                    "sasl_ssl" => SecurityProtocol::SaslSsl,
                    _ => return Err(bad("plaintext, ssl, sasl_plaintext or sasl_ssl")),
                }
            }
            "sasl.mechanism" | "sasl.mechanisms" => {
                self.sasl_mechanism = Some(match value.to_ascii_uppercase().as_str() {
                    "PLAIN" => SaslMechanism::Plain,
                    "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                    "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                    "GSSAPI" => SaslMechanism::Gssapi,
                    "OAUTHBEARER" => SaslMechanism::OauthBearer,
                    _ => {
                        return Err(bad(
                            "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, GSSAPI or OAUTHBEARER",
                        ))
                    }
                })
            }
            "sasl.username" => self.sasl_username = Some(value.to_owned()),
            "sasl.password" => self.sasl_password = Some(Secret::new(value)),
            "ssl.ca.location" => self.ssl_ca_location = Some(value.into()),
            "ssl.certificate.location" => self.ssl_certificate_location = Some(value.into()),
            "ssl.key.location" => self.ssl_key_location = Some(value.into()),
            "ssl.key.password" => self.ssl_key_password = Some(Secret::new(value)),
            "compression.type" | "compression.codec" => {
                self.compression = match value.to_ascii_lowercase().as_str() {
                    "zstd" => Compression::Zstd,
                    "lz4" => Compression::Lz4,
                    "none" => Compression::None,
                    _ => return Err(bad("zstd, lz4 or none")),
                }
            }
            "linger.ms" | "queue.buffering.max.ms" => {
                self.linger_ms = value.parse().map_err(|_| bad("milliseconds"))?
            }
            _ => {
                self.options
                    .insert(key.to_owned(), OptionValue::for_key(key, value));
            }
        }
        Ok(())
    }

    /// Checks the settings for contradictions. The client-config builders call
    /// this; call it directly to fail early at startup.
    pub fn validate(&self) -> Result<(), KafkaError> {
        let invalid = |msg: String| Err(KafkaError::new(ErrorKind::Config, msg));
        if self.brokers.split(',').all(|b| b.trim().is_empty()) {
            return invalid("kafka.brokers is empty".into());
        }
        if self.client_id.trim().is_empty() {
            return invalid("kafka.client_id is empty".into());
        }
        for (key, field) in TYPED_KEYS {
            if self.options.contains_key(*key) {
                return invalid(format!(
                    "kafka.options.\"{key}\" is not allowed: set kafka.{field} instead"
                ));
            }
        }
        let protocol = self.security_protocol;
        let sasl_fields_set = self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some()
            || self.sasl_password_file.is_some();
        if !protocol.uses_sasl() && sasl_fields_set {
            return invalid(format!(
                "kafka.sasl_* settings need security_protocol sasl_plaintext or sasl_ssl (it is {})",
                protocol.as_str()
            ));
        }
        if self.sasl_password.is_some() && self.sasl_password_file.is_some() {
            return invalid("set one of kafka.sasl_password and kafka.sasl_password_file".into());
        }
        if protocol.uses_sasl() {
            let Some(mechanism) = self.sasl_mechanism else {
                return invalid(format!(
                    "kafka.security_protocol {} needs kafka.sasl_mechanism",
                    protocol.as_str()
                ));
            };
            if mechanism.uses_password() {
                if self.sasl_username.is_none() {
                    return invalid(format!(
                        "kafka.sasl_mechanism {} needs kafka.sasl_username",
                        mechanism.as_str()
                    ));
                }
                if self.sasl_password.is_none() && self.sasl_password_file.is_none() {
                    return invalid(format!(
                        "kafka.sasl_mechanism {} needs kafka.sasl_password or kafka.sasl_password_file",
                        mechanism.as_str()
                    ));
                }
            }
        }
        let tls_fields_set = self.ssl_ca_location.is_some()
            || self.ssl_certificate_location.is_some()
            || self.ssl_key_location.is_some()
            || self.ssl_key_password.is_some();
        if !protocol.uses_tls() && tls_fields_set {
            return invalid(format!(
                "kafka.ssl_* settings need security_protocol ssl or sasl_ssl (it is {})",
                protocol.as_str()
            ));
        }
        if self.ssl_certificate_location.is_some() != self.ssl_key_location.is_some() {
            return invalid(
                "kafka.ssl_certificate_location and kafka.ssl_key_location go together".into(),
            );
        }
        self.check_options()
    }

    /// Hands every raw option to librdkafka's own checks (unknown or misspelt
    /// names, values it cannot take, features missing from this build) without
    /// creating a client. The error names the option, never its value.
    fn check_options(&self) -> Result<(), KafkaError> {
        let mut config = ClientConfig::new();
        for (key, value) in &self.options {
            config.set(key, value.expose());
        }
        config
            .create_native_config()
            .map(drop)
            .map_err(|e| KafkaError::with_kind(ErrorKind::Config, "kafka.options", e))
    }

    /// Settings shared by every client: brokers, client id, security, then the
    /// role-specific `defaults`, then `options`.
    fn client_config(&self, defaults: &[(&str, &str)]) -> Result<ClientConfig, KafkaError> {
        self.validate()?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers.trim())
            .set("client.id", &self.client_id)
            .set("security.protocol", self.security_protocol.as_str());
        if let Some(mechanism) = self.sasl_mechanism {
            config.set("sasl.mechanism", mechanism.as_str());
        }
        if let Some(username) = &self.sasl_username {
            config.set("sasl.username", username);
        }
        if let Some(password) = &self.sasl_password {
            config.set("sasl.password", password.expose());
        }
        if let Some(path) = &self.sasl_password_file {
            let password = read_secret_file(path)?;
            config.set("sasl.password", password.expose());
        }
        let paths = [
            ("ssl.ca.location", &self.ssl_ca_location),
            ("ssl.certificate.location", &self.ssl_certificate_location),
            ("ssl.key.location", &self.ssl_key_location),
        ];
        for (key, path) in paths {
            if let Some(path) = path {
                let path = path.to_str().ok_or_else(|| {
                    KafkaError::new(
                        ErrorKind::Config,
                        format!("kafka {key} is not valid UTF-8: {}", path.display()),
                    )
                })?;
                config.set(key, path);
            }
        }
        if let Some(password) = &self.ssl_key_password {
            config.set("ssl.key.password", password.expose());
        }
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.options {
            config.set(key, value.expose());
        }
        Ok(config)
    }

    /// A producer config: idempotent, `acks=all`, compressed, lingering
    /// [`KafkaConfig::linger_ms`] to batch. With idempotence librdkafka keeps
    /// per-partition order across retries and never writes duplicates.
    pub fn producer_config(&self) -> Result<ClientConfig, KafkaError> {
        let linger = self.linger_ms.to_string();
        self.client_config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.type", self.compression.as_str()),
            ("linger.ms", &linger),
        ])
    }

    /// A consumer config for `group_id`: offsets are committed explicitly by the
    /// caller after its output is durable (`enable.auto.commit=false`), and a
    /// new group starts from the earliest retained message.
    pub fn consumer_config(&self, group_id: &str) -> Result<ClientConfig, KafkaError> {
        if group_id.trim().is_empty() {
            return Err(KafkaError::new(
                ErrorKind::Config,
                "consumer group id is empty",
            ));
        }
        self.client_config(&[
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
        ])
    }

    /// An admin-client config (topic creation and inspection).
    pub fn admin_config(&self) -> Result<ClientConfig, KafkaError> {
        self.client_config(&[])
    }
}

fn read_secret_file(path: &std::path::Path) -> Result<Secret, KafkaError> {
    let content = std::fs::read_to_string(path).map_err(|err| {
        KafkaError::new(
            ErrorKind::Config,
            format!(
                "cannot read kafka.sasl_password_file {}: {err}",
                path.display()
            ),
        )
    })?;
    let trimmed = content.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(KafkaError::new(
            ErrorKind::Config,
            format!("kafka.sasl_password_file {} is empty", path.display()),
        ));
    }
    Ok(Secret::new(trimmed))
}

/// One line, secrets as `***`; meant for startup logs.
impl fmt::Display for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "brokers={} client_id={} security_protocol={}",
            self.brokers,
            self.client_id,
            self.security_protocol.as_str()
        )?;
        if let Some(mechanism) = self.sasl_mechanism {
            write!(f, " sasl_mechanism={}", mechanism.as_str())?;
        }
        if let Some(username) = &self.sasl_username {
            write!(f, " sasl_username={username}")?;
        }
        if let Some(password) = &self.sasl_password {
            write!(f, " sasl_password={password}")?;
        }
        if let Some(path) = &self.sasl_password_file {
            write!(f, " sasl_password_file={}", path.display())?;
        }
        if let Some(path) = &self.ssl_ca_location {
            write!(f, " ssl_ca_location={}", path.display())?;
        }
        if let Some(path) = &self.ssl_certificate_location {
            write!(f, " ssl_certificate_location={}", path.display())?;
        }
        if let Some(path) = &self.ssl_key_location {
            write!(f, " ssl_key_location={}", path.display())?;
        }
        if let Some(password) = &self.ssl_key_password {
            write!(f, " ssl_key_password={password}")?;
        }
        // Not the topics: their configured partition counts are what
        // `footfall topics` creates, not what the cluster has.
        write!(
            f,
            " compression={} linger_ms={}",
            self.compression.as_str(),
            self.linger_ms
        )?;
        if !self.options.is_empty() {
            f.write_str(" options={")?;
            for (i, (key, value)) in self.options.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                write!(f, "{sep}{key}={value}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        kafka: KafkaConfig,
    }

    fn parse(toml_text: &str) -> KafkaConfig {
        toml::from_str::<File>(toml_text).unwrap().kafka
    }

    #[test]
    fn empty_table_gives_local_defaults() {
        let config = parse("[kafka]\n");
        assert_eq!(config.brokers, DEFAULT_BROKERS);
        assert_eq!(config.client_id, DEFAULT_CLIENT_ID);
        assert_eq!(config.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(config.compression, Compression::Zstd);
        let producer = config.producer_config().unwrap();
        assert_eq!(producer.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("compression.type"), Some("zstd"));
        assert_eq!(producer.get("linger.ms"), Some("20"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = toml::from_str::<File>("[kafka]\nbroker = \"x:9092\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `broker`"), "{err}");
    }

    #[test]
    fn options_pass_through_and_secrets_are_redacted() {
        let config = parse(
            r#"
            [kafka]
            brokers = "a:9093,b:9093"
            security_protocol = "sasl_ssl"
            sasl_mechanism = "SCRAM-SHA-512"
            sasl_username = "footfall"
            sasl_password = "pw-in-file-123"
            ssl_ca_location = "/etc/footfall/ca.pem"

            [kafka.options]
            "socket.keepalive.enable" = true
            "message.max.bytes" = 2000000
            "ssl.keystore.password" = "oauth-secret-456"
            "#,
        );
        let consumer = config.consumer_config("footfall-aggregate").unwrap();
        assert_eq!(consumer.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(consumer.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(consumer.get("sasl.password"), Some("pw-in-file-123"));
        assert_eq!(
            consumer.get("ssl.ca.location"),
            Some("/etc/footfall/ca.pem")
        );
        assert_eq!(consumer.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(consumer.get("message.max.bytes"), Some("2000000"));
        assert_eq!(
            consumer.get("ssl.keystore.password"),
            Some("oauth-secret-456")
        );
        assert_eq!(consumer.get("group.id"), Some("footfall-aggregate"));
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));

        for text in [config.to_string(), format!("{config:?}")] {
            assert!(!text.contains("pw-in-file-123"), "{text}");
            assert!(!text.contains("oauth-secret-456"), "{text}");
            assert!(text.contains("message.max.bytes"), "{text}");
        }
        assert!(config.to_string().contains("ssl.keystore.password=***"));
        assert!(config.to_string().contains("sasl_password=***"));
    }

    #[test]
    fn options_override_role_defaults() {
        let mut config = KafkaConfig::default();
        config
            .options
            .insert("acks".into(), OptionValue::for_key("acks", "1"));
        assert_eq!(config.producer_config().unwrap().get("acks"), Some("1"));
    }

    #[test]
    fn typed_keys_cannot_be_set_through_options() {
        let config = parse(
            r#"
            [kafka.options]
            "bootstrap.servers" = "elsewhere:9092"
            "#,
        );
        let err = config.producer_config().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("kafka.brokers"), "{err}");
    }

    #[test]
    fn command_line_properties_reach_typed_fields() {
        let mut config = KafkaConfig::default();
        for (key, value) in [
            ("bootstrap.servers", "k1:9093"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "scram-sha-256"),
            ("sasl.username", "u"),
            ("sasl.password", "cli-secret-321"),
            ("compression.type", "lz4"),
            ("socket.timeout.ms", "5000"),
            ("ssl.keystore.password", "other-secret-654"),
        ] {
            config.set_property(key, value).unwrap();
        }
        assert_eq!(config.brokers, "k1:9093");
        assert_eq!(config.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(config.sasl_mechanism, Some(SaslMechanism::ScramSha256));
        assert_eq!(config.compression, Compression::Lz4);
        let producer = config.producer_config().unwrap();
        assert_eq!(producer.get("sasl.password"), Some("cli-secret-321"));
        assert_eq!(producer.get("socket.timeout.ms"), Some("5000"));
        let shown = config.to_string();
        assert!(
            !shown.contains("cli-secret-321") && !shown.contains("other-secret-654"),
            "{shown}"
        );

        let err = config.set_property("security.protocol", "tls").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.to_string().starts_with("security.protocol: expected"),
            "{err}"
        );
        assert!(config.set_property("linger.ms", "soon").is_err());
    }

    #[test]
    fn contradictory_security_settings_are_rejected() {
        let cases = [
            (r#"sasl_username = "u""#, "sasl_plaintext or sasl_ssl"),
            (r#"security_protocol = "sasl_ssl""#, "needs kafka.sasl_mechanism"),
            (
                "security_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"",
                "needs kafka.sasl_password",
            ),
            (r#"ssl_ca_location = "/ca.pem""#, "ssl or sasl_ssl"),
            (
                "security_protocol = \"ssl\"\nssl_certificate_location = \"/c.pem\"",
                "go together",
            ),
        ];
        for (body, expected) in cases {
            let config = parse(&format!("[kafka]\n{body}\n"));
            let err = config.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.to_string().contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kafka-password");
        std::fs::write(&path, "from-file-789\n").unwrap();
        let config = parse(&format!(
            "[kafka]\nsecurity_protocol = \"sasl_plaintext\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\nsasl_password_file = {:?}\n",
            path.to_str().unwrap()
        ));
        let admin = config.admin_config().unwrap();
        assert_eq!(admin.get("sasl.password"), Some("from-file-789"));
        assert!(!config.to_string().contains("from-file-789"));

        std::fs::remove_file(&path).unwrap();
        let err = config.admin_config().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("kafka-password"), "{err}");
    }

    #[test]
    fn sensitive_keys() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "SASL.OAUTHBEARER.TOKEN.ENDPOINT.URL",
        ] {
            assert!(is_sensitive_key(key), "{key}");
        }
        for key in ["socket.timeout.ms", "acks", "message.max.bytes"] {
            assert!(!is_sensitive_key(key), "{key}");
        }
    }
}
