//! Topic layout: what footfall expects, and checking a cluster against it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResourceResult, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use serde::Deserialize;
use tracing::info;

use crate::config::KafkaConfig;
use crate::error::{ErrorKind, KafkaError};

/// Default name of the topic carrying visit events.
pub const VISITS_TOPIC: &str = "footfall.visits";
/// Default name of the dead-letter topic (lines that failed to parse or
/// enrich): [`dead_letter_topic_of`] the default visits topic.
pub const DEAD_LETTER_TOPIC: &str = "footfall.visits.dlq";

/// The dead-letter topic that goes with a visits topic when none is named:
/// `<visits>.dlq`.
pub fn dead_letter_topic_of(visits: &str) -> String {
    format!("{visits}.dlq")
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `cleanup.policy` of a topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    /// Segments are deleted once older than `retention.ms`.
    #[default]
    Delete,
    /// Only the newest record per key is kept.
    Compact,
    /// Compacted, and also deleted by age.
    CompactDelete,
}

impl CleanupPolicy {
    /// The broker's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    fn matches(self, actual: &str) -> bool {
        let words = |s: &str| -> BTreeSet<String> {
            s.split(',')
                .map(|w| w.trim().to_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect()
        };
        words(self.as_str()) == words(actual)
    }
}

/// The layout footfall expects of one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions. Visits are keyed by visitor id, so this bounds how many
    /// consumers share the work and cannot be lowered later.
    pub partitions: i32,
    /// Replication factor; `None` uses the broker's `default.replication.factor`
    /// and is not checked on existing topics.
    pub replication_factor: Option<i32>,
    /// `retention.ms`; `None` keeps data forever (`-1`).
    pub retention_ms: Option<i64>,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
}

impl TopicSpec {
    /// A topic with `partitions` partitions, 7 days' retention, deleted by age.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: None,
            retention_ms: Some(7 * DAY_MS),
            cleanup_policy: CleanupPolicy::Delete,
        }
    }

    /// The visits topic: `footfall.visits`, 6 partitions, 7 days' retention,
    /// `cleanup.policy=delete`. Seven days covers a long weekend of aggregator
    /// downtime with room to spare.
    pub fn visits() -> Self {
        TopicSpec::new(VISITS_TOPIC, 6)
    }

    /// The dead-letter topic: `footfall.visits.dlq`, 1 partition (low volume,
    /// read by people, total order helps), 14 days' retention so a bad deploy
    /// found a week later can still be inspected.
    pub fn dead_letter() -> Self {
        TopicSpec::new(DEAD_LETTER_TOPIC, 1).with_retention_ms(Some(14 * DAY_MS))
    }

    /// Sets the replication factor (`None`: broker default).
    pub fn with_replication_factor(mut self, replication_factor: Option<i32>) -> Self {
        self.replication_factor = replication_factor;
        self
    }

    /// Sets `retention.ms` (`None`: forever).
    pub fn with_retention_ms(mut self, retention_ms: Option<i64>) -> Self {
        self.retention_ms = retention_ms;
        self
    }

    /// Sets `cleanup.policy`.
    pub fn with_cleanup_policy(mut self, cleanup_policy: CleanupPolicy) -> Self {
        self.cleanup_policy = cleanup_policy;
        self
    }

    fn retention_value(&self) -> String {
        self.retention_ms.unwrap_or(-1).to_string()
    }

    fn validate(&self) -> Result<(), KafkaError> {
        let invalid = |what: String| {
            Err(KafkaError::new(
                ErrorKind::Config,
                format!("topic {:?}: {what}", self.name),
            ))
        };
        if self.name.is_empty()
            || self.name.len() > 249
            || self.name == "."
            || self.name == ".."
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return invalid("not a valid topic name (1-249 of [a-zA-Z0-9._-])".into());
        }
        if self.partitions < 1 {
            return invalid(format!(
                "partitions must be at least 1, not {}",
                self.partitions
            ));
        }
        if let Some(rf) = self.replication_factor {
            if rf < 1 {
                return invalid(format!("replication_factor must be at least 1, not {rf}"));
            }
        }
        if let Some(ms) = self.retention_ms {
            if ms < 1 {
                return invalid(format!(
                    "retention_ms must be positive (leave it unset to keep data forever), not {ms}"
                ));
            }
        }
        Ok(())
    }

    /// Settings of an existing topic that differ from this spec.
    pub fn compare(&self, actual: &ObservedTopic) -> Vec<Mismatch> {
        let mut mismatches = Vec::new();
        let mut push = |setting, expected: String, actual: String| {
            mismatches.push(Mismatch {
                topic: self.name.clone(),
                setting,
                expected,
                actual,
            })
        };
        if actual.partitions != self.partitions {
            push(
                Setting::Partitions,
                self.partitions.to_string(),
                actual.partitions.to_string(),
            );
        }
        if let Some(expected) = self.replication_factor {
            if actual.replication_factor != expected {
                push(
                    Setting::ReplicationFactor,
                    expected.to_string(),
                    actual.replication_factor.to_string(),
                );
            }
        }
        let expected_retention = self.retention_ms.unwrap_or(-1);
        let actual_retention = actual.retention_ms.as_deref().map(str::parse::<i64>);
        let retention_ok = match actual_retention {
            Some(Ok(ms)) => ms == expected_retention || (ms < 0 && expected_retention < 0),
            _ => false,
        };
        if !retention_ok {
            push(
                Setting::RetentionMs,
                expected_retention.to_string(),
                actual
                    .retention_ms
                    .clone()
                    .unwrap_or_else(|| "(not reported)".into()),
            );
        }
        let policy_ok = actual
            .cleanup_policy
            .as_deref()
            .is_some_and(|policy| self.cleanup_policy.matches(policy));
        if !policy_ok {
            push(
                Setting::CleanupPolicy,
                self.cleanup_policy.as_str().to_owned(),
                actual
                    .cleanup_policy
                    .clone()
                    .unwrap_or_else(|| "(not reported)".into()),
            );
        }
        mismatches
    }
}

/// The layout of an existing topic, as reported by the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTopic {
    /// Partition count.
    pub partitions: i32,
    /// Smallest replica count over the partitions.
    pub replication_factor: i32,
    /// `retention.ms` as the broker reports it.
    pub retention_ms: Option<String>,
    /// `cleanup.policy` as the broker reports it.
    pub cleanup_policy: Option<String>,
}

/// A topic setting that [`ensure_topics`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    /// Partition count.
    Partitions,
    /// Replication factor.
    ReplicationFactor,
    /// `retention.ms`.
    RetentionMs,
    /// `cleanup.policy`.
    CleanupPolicy,
}

impl Setting {
    /// The setting's name as Kafka tools spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Setting::Partitions => "partitions",
            Setting::ReplicationFactor => "replication.factor",
            Setting::RetentionMs => "retention.ms",
            Setting::CleanupPolicy => "cleanup.policy",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One setting of an existing topic that differs from its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Topic name.
    pub topic: String,
    /// Which setting differs.
    pub setting: Setting,
    /// The spec's value.
    pub expected: String,
    /// The cluster's value.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic {}: {} is {}, expected {}",
            self.topic, self.setting, self.actual, self.expected
        )
    }
}

/// Whether [`ensure_topics`] may create missing topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnsureMode {
    /// Create missing topics, check existing ones.
    Create,
    /// Only check: report missing topics without creating them (for clusters
    /// where topics are managed elsewhere and the client lacks CREATE rights).
    CheckOnly,
}

/// What [`ensure_topics`] found and did. Existing topics are never altered:
/// differences are reported, not fixed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicReport {
    /// Topics created by this call.
    pub created: Vec<String>,
    /// Topics that existed and match their spec.
    pub matching: Vec<String>,
    /// Topics that do not exist ([`EnsureMode::CheckOnly`] only).
    pub missing: Vec<String>,
    /// Every differing setting of every existing topic.
    pub mismatches: Vec<Mismatch>,
}

impl TopicReport {
    /// True when every topic exists and matches its spec.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.mismatches.is_empty()
    }

    /// `Ok(self)` when [`TopicReport::is_ok`], otherwise an error of kind
    /// [`ErrorKind::TopicMismatch`] listing every problem.
    pub fn into_result(self) -> Result<TopicReport, KafkaError> {
        if self.is_ok() {
            Ok(self)
        } else {
            Err(KafkaError::new(
                ErrorKind::TopicMismatch,
                format!("topics differ from their spec: {self}"),
            ))
        }
    }
}

impl fmt::Display for TopicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.created.is_empty() {
            parts.push(format!("created {}", self.created.join(", ")));
        }
        if !self.matching.is_empty() {
            parts.push(format!("ok {}", self.matching.join(", ")));
        }
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", self.missing.join(", ")));
        }
        for mismatch in &self.mismatches {
            parts.push(mismatch.to_string());
        }
        if parts.is_empty() {
            f.write_str("no topics")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// `[kafka.topics]`: per-topic overrides of [`TopicSpec::visits`] and
/// [`TopicSpec::dead_letter`].
///
/// ```toml
/// [kafka.topics.visits]
/// name = "footfall.visits"
/// partitions = 12
/// replication_factor = 3
/// retention_ms = 604800000     # 7 days
///
/// [kafka.topics.dead_letter]
/// retention_ms = 1209600000    # 14 days
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// Overrides for the visits topic.
    pub visits: TopicOverrides,
    /// Overrides for the dead-letter topic.
    pub dead_letter: TopicOverrides,
}

/// Optional replacements for the fields of a default [`TopicSpec`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicOverrides {
    /// Topic name.
    pub name: Option<String>,
    /// Partition count.
    pub partitions: Option<i32>,
    /// Replication factor (default: the broker's).
    pub replication_factor: Option<i32>,
    /// `retention.ms`; `-1` keeps data forever.
    pub retention_ms: Option<i64>,
    /// `cleanup.policy`: `delete`, `compact` or `compact_delete`.
    pub cleanup_policy: Option<CleanupPolicy>,
}

impl TopicOverrides {
    fn apply(&self, mut spec: TopicSpec) -> TopicSpec {
        if let Some(name) = &self.name {
            spec.name.clone_from(name);
        }
        if let Some(partitions) = self.partitions {
            spec.partitions = partitions;
        }
        if self.replication_factor.is_some() {
            spec.replication_factor = self.replication_factor;
        }
        if let Some(ms) = self.retention_ms {
            spec.retention_ms = (ms >= 0).then_some(ms);
        }
        if let Some(policy) = self.cleanup_policy {
            spec.cleanup_policy = policy;
        }
        spec
    }
}

impl TopicsConfig {
    /// The visits topic's spec.
    pub fn visits(&self) -> TopicSpec {
        self.visits.apply(TopicSpec::visits())
    }

    /// The dead-letter topic's spec. Its name, unless set, is the visits
    /// topic's followed by `.dlq` ([`dead_letter_topic_of`]), so two
    /// pipelines that name only their visits topic never share dead letters.
    pub fn dead_letter(&self) -> TopicSpec {
        let mut spec = TopicSpec::dead_letter();
        spec.name = dead_letter_topic_of(&self.visits().name);
        self.dead_letter.apply(spec)
    }

    /// Both specs, visits first.
    pub fn specs(&self) -> Vec<TopicSpec> {
        vec![self.visits(), self.dead_letter()]
    }

    /// Puts names given on the command line over the configured ones: each
    /// `Some` replaces its topic's name.
    pub fn rename(&mut self, visits: Option<&str>, dead_letter: Option<&str>) {
        if let Some(name) = visits {
            self.visits.name = Some(name.to_string());
        }
        if let Some(name) = dead_letter {
            self.dead_letter.name = Some(name.to_string());
        }
    }
}

type Admin = AdminClient<DefaultClientContext>;

/// Makes sure every topic in `specs` exists with the expected layout.
///
/// Missing topics are created ([`EnsureMode::Create`]) or reported
/// ([`EnsureMode::CheckOnly`]). Existing topics are compared on partition
/// count, replication factor (when the spec sets one), `retention.ms` and
/// `cleanup.policy`; every difference is listed in
/// [`TopicReport::mismatches`] and nothing is altered. Calling it again is a
/// no-op that reports the topics as matching. A topic created concurrently by
/// someone else is checked like any existing topic.
///
/// Fails with [`ErrorKind::Unreachable`] when no broker answers within 10 s,
/// and [`ErrorKind::Admin`] when the cluster refuses to create or describe.
pub async fn ensure_topics(
    config: &KafkaConfig,
    specs: &[TopicSpec],
    mode: EnsureMode,
) -> Result<TopicReport, KafkaError> {
    for spec in specs {
        spec.validate()?;
    }
    let admin: Arc<Admin> = Arc::new(config.admin_config()?.create().map_err(|err| {
        KafkaError::from_rdkafka(format!("creating admin client for {}", config.brokers), err)
    })?);

    let mut report = TopicReport::default();
    let mut layout = fetch_layout(&admin, &config.brokers).await?;
    let to_create: Vec<&TopicSpec> = specs
        .iter()
        .filter(|spec| !layout.contains_key(&spec.name))
        .collect();

    let mut raced = false;
    match mode {
        EnsureMode::CheckOnly => {
            report.missing = to_create.iter().map(|s| s.name.clone()).collect();
        }
        EnsureMode::Create if !to_create.is_empty() => {
            let retention: Vec<String> = to_create.iter().map(|s| s.retention_value()).collect();
            let new_topics: Vec<NewTopic<'_>> = to_create
                .iter()
                .zip(&retention)
                .map(|(spec, retention)| {
                    NewTopic::new(
                        &spec.name,
                        spec.partitions,
                        TopicReplication::Fixed(spec.replication_factor.unwrap_or(-1)),
                    )
                    .set("retention.ms", retention)
                    .set("cleanup.policy", spec.cleanup_policy.as_str())
                })
                .collect();
            let options = AdminOptions::new()
                .request_timeout(Some(ADMIN_TIMEOUT))
                .operation_timeout(Some(ADMIN_TIMEOUT));
            let results = admin
                .create_topics(new_topics.iter(), &options)
                .await
                .map_err(|err| KafkaError::from_rdkafka("creating topics", err))?;
            for result in results {
                match result {
                    Ok(name) => {
                        info!(topic = %name, "created topic");
                        report.created.push(name);
                    }
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => raced = true,
                    Err((name, code)) => {
                        return Err(KafkaError::with_kind(
                            ErrorKind::Admin,
                            format!("creating topic {name}"),
                            RdKafkaError::AdminOp(code),
                        ))
                    }
                }
            }
        }
        EnsureMode::Create => {}
    }
    if raced {
        layout = fetch_layout(&admin, &config.brokers).await?;
    }

    let existing: Vec<&TopicSpec> = specs
        .iter()
        .filter(|spec| !report.created.contains(&spec.name) && layout.contains_key(&spec.name))
        .collect();
    let configs = describe_topic_configs(&admin, &existing).await?;
    for spec in existing {
        let (partitions, replication_factor) = layout[&spec.name];
        let topic_config = configs.get(&spec.name);
        let observed = ObservedTopic {
            partitions,
            replication_factor,
            retention_ms: topic_config.and_then(|c| c.get("retention.ms").cloned()),
            cleanup_policy: topic_config.and_then(|c| c.get("cleanup.policy").cloned()),
        };
        let mismatches = spec.compare(&observed);
        if mismatches.is_empty() {
            report.matching.push(spec.name.clone());
        } else {
            report.mismatches.extend(mismatches);
        }
    }
    Ok(report)
}

/// Partition count and minimum replica count of every topic in the cluster.
///
/// All topics are listed rather than the wanted ones by name: a metadata
/// request naming a topic may auto-create it on brokers where
/// `auto.create.topics.enable=true`, which would defeat the check.
async fn fetch_layout(
    admin: &Arc<Admin>,
    brokers: &str,
) -> Result<BTreeMap<String, (i32, i32)>, KafkaError> {
    let client = Arc::clone(admin);
    let metadata =
        tokio::task::spawn_blocking(move || client.inner().fetch_metadata(None, METADATA_TIMEOUT))
            .await
            .map_err(|err| {
                KafkaError::new(ErrorKind::Other, format!("metadata task failed: {err}"))
            })?
            .map_err(|err| {
                KafkaError::from_rdkafka(format!("fetching metadata from {brokers}"), err)
            })?;

    let mut layout = BTreeMap::new();
    for topic in metadata.topics() {
        if topic.error().is_some() {
            continue;
        }
        let partitions = topic.partitions();
        let replication = partitions
            .iter()
            .map(|p| p.replicas().len() as i32)
            .min()
            .unwrap_or(0);
        layout.insert(
            topic.name().to_owned(),
            (partitions.len() as i32, replication),
        );
    }
    Ok(layout)
}

async fn describe_topic_configs(
    admin: &Admin,
    specs: &[&TopicSpec],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, KafkaError> {
    if specs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let resources: Vec<ResourceSpecifier<'_>> = specs
        .iter()
        .map(|spec| ResourceSpecifier::Topic(&spec.name))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .describe_configs(resources.iter(), &options)
        .await
        .map_err(|err| KafkaError::from_rdkafka("describing topic configs", err))?;
    let mut configs = BTreeMap::new();
    for (spec, result) in specs.iter().zip(results) {
        let resource = describe_result(spec, result)?;
        let entries = resource
            .entries
            .into_iter()
            .filter_map(|entry| entry.value.map(|value| (entry.name, value)))
            .collect();
        configs.insert(spec.name.clone(), entries);
    }
    Ok(configs)
}

fn describe_result(
    spec: &TopicSpec,
    result: ConfigResourceResult,
) -> Result<rdkafka::admin::ConfigResource, KafkaError> {
    result.map_err(|code| {
        KafkaError::with_kind(
            ErrorKind::Admin,
            format!("describing config of topic {}", spec.name),
            RdKafkaError::AdminOp(code),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(partitions: i32, retention: &str, policy: &str) -> ObservedTopic {
        ObservedTopic {
            partitions,
            replication_factor: 1,
            retention_ms: Some(retention.into()),
            cleanup_policy: Some(policy.into()),
        }
    }

    #[test]
    fn defaults() {
        let visits = TopicSpec::visits();
        assert_eq!(visits.name, "footfall.visits");
        assert_eq!(visits.partitions, 6);
        assert_eq!(visits.retention_ms, Some(604_800_000));
        assert_eq!(visits.cleanup_policy, CleanupPolicy::Delete);
        let dlq = TopicSpec::dead_letter();
        assert_eq!(dlq.name, "footfall.visits.dlq");
        assert_eq!(dlq.partitions, 1);
        assert_eq!(dlq.retention_ms, Some(1_209_600_000));
    }

    #[test]
    fn matching_topic_has_no_mismatch() {
        let spec = TopicSpec::visits();
        assert!(spec.compare(&observed(6, "604800000", "delete")).is_empty());
        let spec = spec.with_cleanup_policy(CleanupPolicy::CompactDelete);
        assert!(spec
            .compare(&observed(6, "604800000", "delete,compact"))
            .is_empty());
        let forever = TopicSpec::new("t", 1).with_retention_ms(None);
        assert!(forever.compare(&observed(1, "-1", "delete")).is_empty());
    }

    #[test]
    fn every_difference_is_listed() {
        let spec = TopicSpec::visits().with_replication_factor(Some(3));
        let mismatches = spec.compare(&observed(2, "86400000", "compact"));
        let settings: Vec<Setting> = mismatches.iter().map(|m| m.setting).collect();
        assert_eq!(
            settings,
            [
                Setting::Partitions,
                Setting::ReplicationFactor,
                Setting::RetentionMs,
                Setting::CleanupPolicy
            ]
        );
        assert_eq!(
            mismatches[0].to_string(),
            "topic footfall.visits: partitions is 2, expected 6"
        );
        assert_eq!(mismatches[2].expected, "604800000");
        assert_eq!(mismatches[2].actual, "86400000");
    }

    #[test]
    fn unreported_settings_count_as_mismatches() {
        let spec = TopicSpec::visits();
        let topic = ObservedTopic {
            partitions: 6,
            replication_factor: 1,
            retention_ms: None,
            cleanup_policy: None,
        };
        assert_eq!(spec.compare(&topic).len(), 2);
    }

    #[test]
    fn overrides_apply_on_top_of_defaults() {
        #[derive(Deserialize)]
        struct File {
            topics: TopicsConfig,
        }
        let file: File = toml::from_str(
            "[topics.visits]\npartitions = 12\nreplication_factor = 3\n\
             [topics.dead_letter]\nname = \"dlq\"\nretention_ms = -1\n",
        )
        .unwrap();
        let visits = file.topics.visits();
        assert_eq!(
            (
                visits.name.as_str(),
                visits.partitions,
                visits.replication_factor
            ),
            ("footfall.visits", 12, Some(3))
        );
        assert_eq!(visits.retention_ms, Some(604_800_000));
        let dlq = file.topics.dead_letter();
        assert_eq!(
            (dlq.name.as_str(), dlq.partitions, dlq.retention_ms),
            ("dlq", 1, None)
        );
        assert!(toml::from_str::<File>("[topics.visits]\npartition = 1\n").is_err());
    }

    #[test]
    fn the_dead_letter_topic_follows_the_visits_topic() {
        let mut topics = TopicsConfig::default();
        assert_eq!(topics.dead_letter().name, DEAD_LETTER_TOPIC);
        assert_eq!(
            dead_letter_topic_of(VISITS_TOPIC),
            DEAD_LETTER_TOPIC,
            "the defaults agree"
        );
        topics.visits.name = Some("shop.visits".into());
        assert_eq!(topics.dead_letter().name, "shop.visits.dlq");
        assert_eq!(topics.dead_letter().retention_ms, Some(14 * DAY_MS));
        topics.dead_letter.name = Some("errors".into());
        assert_eq!(topics.dead_letter().name, "errors", "a name given wins");
    }

    #[test]
    fn names_from_the_command_line_replace_the_configured_ones() {
        let mut topics = TopicsConfig::default();
        topics.visits.name = Some("file.visits".into());
        topics.visits.partitions = Some(12);
        topics.rename(None, None);
        assert_eq!(topics.visits().name, "file.visits");
        assert_eq!(topics.dead_letter().name, "file.visits.dlq");
        topics.rename(Some("cli.visits"), None);
        assert_eq!(topics.visits().name, "cli.visits");
        assert_eq!(topics.visits().partitions, 12, "only the name changes");
        assert_eq!(topics.dead_letter().name, "cli.visits.dlq");
        topics.rename(None, Some("cli.errors"));
        assert_eq!(
            (topics.visits().name, topics.dead_letter().name),
            ("cli.visits".to_string(), "cli.errors".to_string())
        );
    }

    #[test]
    fn invalid_specs_are_rejected() {
        for spec in [
            TopicSpec::new("", 1),
            TopicSpec::new("has space", 1),
            TopicSpec::new("ok", 0),
            TopicSpec::new("ok", 1).with_replication_factor(Some(0)),
            TopicSpec::new("ok", 1).with_retention_ms(Some(0)),
        ] {
            let err = spec.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{spec:?}");
        }
        assert!(TopicSpec::visits().validate().is_ok());
    }

    #[test]
    fn report_display_and_result() {
        let ok = TopicReport {
            created: vec!["a".into()],
            matching: vec!["b".into()],
            ..TopicReport::default()
        };
        assert!(ok.is_ok());
        assert_eq!(ok.to_string(), "created a; ok b");
        let bad = TopicReport {
            mismatches: TopicSpec::new("c", 6).compare(&observed(2, "604800000", "delete")),
            ..TopicReport::default()
        };
        let err = bad.into_result().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TopicMismatch);
        assert!(
            err.to_string()
                .contains("topic c: partitions is 2, expected 6"),
            "{err}"
        );
    }
}
