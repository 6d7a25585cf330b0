//! The warehouse's metadata (`.footfall.json`: layout, id, topic, group,
//! retention horizon, the last run's summary settings; replica and staging
//! id), read and changed under its own lock, and published to a replica
//! first (as [`META_OBJECT`]), like the tables.

use std::fmt;
use std::fs::{self, File};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{
    lock_file, write_atomic, Replica, Warehouse, META_FILE, META_LOCK_WAIT, META_OBJECT,
    PARTITION_LOCK_DIR,
};
use crate::bots::BotRules;
use crate::error::AggregateError;
use crate::sessions::SummaryOptions;

/// What the warehouse records about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarehouseMeta {
    /// Layout version ([`crate::LAYOUT_VERSION`]).
    pub format: u32,
    /// A random id, made when the warehouse is created: runs mark the group's
    /// offset commits with it, so that another warehouse on the same group is
    /// recognised (warehouses made before it get one on their next run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The topic whose events this warehouse holds.
    pub topic: String,
    /// The consumer group whose committed offsets say what this warehouse holds
    /// (recorded by the first run; changed only with `rebind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Event partitions before this date were dropped by retention; events
    /// for such dates are no longer accepted (their summaries are final).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_from: Option<NaiveDate>,
    /// The object store the tables are published to (its URL), recorded when
    /// the warehouse is made: this directory is then its staging directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// A random id of the staging directory that publishes to the replica,
    /// made by its first run (or the first run of this build) and anew by
    /// each restore: a staging directory whose id is not the one in the
    /// replica's [`META_OBJECT`] was superseded and is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<String>,
    /// The summary settings of the last run, which erasures and recomputes
    /// use unless told otherwise, so that the summaries they write match the
    /// others. Settings this build cannot read (a newer build's bot rules)
    /// are read as none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "readable"
    )]
    pub summary: Option<SummarySettings>,
}

/// `T` if the value reads as one, else `None`.
fn readable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// The settings of [`SummaryOptions`] that runs take from flags and the
/// config file, recorded in the warehouse's metadata
/// ([`WarehouseMeta::summary`]); not the epoch, which the keyring gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummarySettings {
    /// [`SummaryOptions::visit_timeout`], in seconds.
    pub visit_timeout_s: u64,
    /// [`SummaryOptions::min_visitors`].
    pub min_visitors: u32,
    /// [`SummaryOptions::bots`].
    pub bots: BotRules,
}

impl SummarySettings {
    /// The recorded settings of `opts`.
    pub fn of(opts: &SummaryOptions) -> Self {
        SummarySettings {
            visit_timeout_s: opts.visit_timeout.as_secs(),
            min_visitors: opts.min_visitors,
            bots: opts.bots.clone(),
        }
    }

    /// `opts` with these settings.
    pub fn apply(self, opts: SummaryOptions) -> SummaryOptions {
        SummaryOptions {
            visit_timeout: Duration::from_secs(self.visit_timeout_s),
            min_visitors: self.min_visitors,
            bots: self.bots,
            ..opts
        }
    }
}

impl fmt::Display for SummarySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "visit timeout {} min, min_visitors {}",
            self.visit_timeout_s / 60,
            self.min_visitors
        )?;
        if self.bots != BotRules::default() {
            f.write_str(", [aggregate.bots] rules of their own")?;
        }
        Ok(())
    }
}

/// The metadata as written, locally and on a replica.
pub(super) fn meta_bytes(meta: &WarehouseMeta) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(meta).expect("metadata serialises");
    bytes.push(b'\n');
    bytes
}

impl Replica {
    /// The staging id in the published [`META_OBJECT`]: that of the one
    /// staging directory whose runs may publish here. `None` without one
    /// (nothing published, an earlier build's, or unreadable metadata, which
    /// the next run replaces with its own).
    pub fn published_staging(&self) -> Result<Option<String>, AggregateError> {
        Ok(self.get_opt(META_OBJECT)?.as_deref().and_then(staging_of))
    }
}

/// The staging id of published metadata `bytes` (see [`Replica::published_staging`]).
fn staging_of(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<WarehouseMeta>(bytes)
        .ok()
        .and_then(|m| m.staging)
}

impl Warehouse {
    /// Reads [`META_FILE`], if present.
    pub fn read_meta(&self) -> Result<Option<WarehouseMeta>, AggregateError> {
        let path = self.root.join(META_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| AggregateError::Warehouse {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AggregateError::io("read", &path)(e)),
        }
    }

    /// Writes [`META_FILE`] durably: on the replica first (as
    /// [`META_OBJECT`]), if the warehouse has one.
    pub fn write_meta(&self, meta: &WarehouseMeta) -> Result<(), AggregateError> {
        let bytes = meta_bytes(meta);
        if let Some(r) = &self.replica {
            r.put(META_OBJECT, &bytes)?;
        }
        self.write_meta_bytes(&bytes)
    }

    /// Writes [`META_FILE`] as `bytes`, atomically and durably (under the
    /// metadata's lock or the warehouse's exclusive one: one writer).
    pub(super) fn write_meta_bytes(&self, bytes: &[u8]) -> Result<(), AggregateError> {
        write_atomic(&self.root.join(META_FILE), bytes)
    }

    /// Takes the metadata's own lock (waiting up to [`META_LOCK_WAIT`]).
    fn lock_meta(&self) -> Result<File, AggregateError> {
        let path = self.root.join(PARTITION_LOCK_DIR).join("meta.lock");
        lock_file(&path, META_LOCK_WAIT, || {
            format!("another aggregate run kept the metadata locked for {META_LOCK_WAIT:?}")
        })
    }

    /// Refuses a staging directory that another has superseded (see
    /// [`Warehouse::publish_records`]), for a writer that changes nothing
    /// (a dry run). One request.
    pub(crate) fn check_publisher(&self) -> Result<(), AggregateError> {
        let (Some(r), Some(meta)) = (&self.replica, self.read_meta()?) else {
            return Ok(());
        };
        self.refuse_superseded(&meta, r.get_opt(META_OBJECT)?.as_deref())
    }

    /// Refused when the replica's metadata `published` names another staging
    /// directory (restored elsewhere) than `meta`: runs from both would mix.
    fn refuse_superseded(
        &self,
        meta: &WarehouseMeta,
        published: Option<&[u8]>,
    ) -> Result<(), AggregateError> {
        match published.and_then(staging_of) {
            Some(theirs) if meta.staging.as_ref() != Some(&theirs) => {
                Err(AggregateError::Config(format!(
                    "staging directory {} was superseded: {} is published by another staging directory \
                     (id {theirs}, made by `footfall aggregate --restore`), and runs from both would mix; \
                     use that one, or remove this directory and restore into it again",
                    self.root.display(),
                    self.replica.as_ref().map_or("", |r| r.url())
                )))
            }
            _ => Ok(()),
        }
    }

    /// Every writer (run, erase, recompute) calls this before it changes
    /// anything, with one request to the replica:
    ///
    /// * a staging directory another has superseded is refused;
    /// * when the replica's [`META_OBJECT`] is not this directory's metadata
    ///   (a staging directory from before they were published, or a crash
    ///   between an upload and its local write), every erasure record is
    ///   uploaded, then the metadata. The replica's metadata being this
    ///   directory's is what says the records are there, so this comes
    ///   before any change to the metadata.
    ///
    /// Returns whether it uploaded.
    pub(crate) fn publish_records(&self) -> Result<bool, AggregateError> {
        let Some(r) = &self.replica else {
            return Ok(false);
        };
        let _lock = self.lock_meta()?;
        let Some(meta) = self.read_meta()? else {
            return Ok(false);
        };
        let published = r.get_opt(META_OBJECT)?;
        self.refuse_superseded(&meta, published.as_deref())?;
        let bytes = meta_bytes(&meta);
        if published.as_deref() == Some(&bytes[..]) {
            return Ok(false);
        }
        for (rel, path) in self.erasure_records()? {
            r.upload(&rel, &path)?;
        }
        r.put(META_OBJECT, &bytes)?;
        Ok(true)
    }

    /// Reads [`META_FILE`], lets `change` decide what it should be, and writes
    /// that when it differs, all under the metadata's own lock: runs sharing
    /// the warehouse never write over each other's changes.
    pub fn update_meta(
        &self,
        change: impl FnOnce(Option<WarehouseMeta>) -> Result<Option<WarehouseMeta>, AggregateError>,
    ) -> Result<Option<WarehouseMeta>, AggregateError> {
        let _lock = self.lock_meta()?;
        let before = self.read_meta()?;
        let after = change(before.clone())?;
        if let Some(m) = after.as_ref().filter(|&m| before.as_ref() != Some(m)) {
            self.write_meta(m)?;
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_a_newer_build_wrote_are_read_as_none() {
        let mut meta = WarehouseMeta {
            format: super::super::LAYOUT_VERSION,
            id: Some("1".into()),
            topic: "t".into(),
            group: Some("g".into()),
            retained_from: None,
            replica: None,
            staging: None,
            summary: Some(SummarySettings::of(&SummaryOptions::default())),
        };
        let round: WarehouseMeta = serde_json::from_slice(&meta_bytes(&meta)).unwrap();
        assert_eq!(round, meta);
        let mut value = serde_json::to_value(&meta).unwrap();
        value["summary"]["bots"]["a_rule_of_a_newer_build"] = true.into();
        let read: WarehouseMeta = serde_json::from_value(value).unwrap();
        meta.summary = None;
        assert_eq!(read, meta);
    }
}
