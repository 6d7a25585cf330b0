//! The state directory during a run: the checkpoints of the run's topic are
//! loaded into the registry, and written back (with those of other topics,
//! unchanged) every `checkpoint_interval` and at the end.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, FileCheckpoint, StateDir};
use crate::config::{IngestConfig, SourceKind};
use crate::error::IngestError;
use crate::track::{Registry, Track};

/// The locked state directory of a run that has file sources.
pub(super) struct State {
    dir: Arc<StateDir>,
    /// The events topic the run's checkpoints belong to.
    topic: Arc<str>,
    /// Checkpoints of other topics, kept as they were.
    others: Arc<Vec<FileCheckpoint>>,
    /// Checkpoint documents written.
    pub written: Arc<AtomicU64>,
}

impl State {
    /// Lock the state directory of `cfg` and load the checkpoints of `topic`
    /// into `registry`. `None` when no source reads files.
    pub fn open(
        cfg: &IngestConfig,
        topic: &str,
        registry: &Registry,
    ) -> Result<Option<State>, IngestError> {
        let has_files = cfg
            .sources
            .iter()
            .any(|s| matches!(s.kind, SourceKind::Files(_)));
        if !has_files {
            return Ok(None);
        }
        let dir = StateDir::open(&cfg.state_dir)?;
        let mut others = Vec::new();
        if let Some(doc) = dir.load(topic)? {
            for e in doc.files {
                if e.topic == topic {
                    resume(e, registry);
                } else {
                    others.push(e);
                }
            }
            tracing::info!(dir = %dir.path().display(), topic, files = registry.tracks().len(), other_topics = others.len(), "checkpoints loaded");
            explain_new_topic(cfg, topic, registry, &others);
        }
        Ok(Some(State {
            dir: Arc::new(dir),
            topic: topic.into(),
            others: Arc::new(others),
            written: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// Every checkpoint: the registry's (this topic) and the others.
    fn collect(&self, registry: &Registry) -> Vec<FileCheckpoint> {
        let mut out = collect(registry, &self.topic);
        out.extend(self.others.iter().cloned());
        out
    }

    /// Write the checkpoints now (at the end of a run).
    pub async fn save(&self, registry: &Registry) -> Result<(), IngestError> {
        let files = self.collect(registry);
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || dir.save(files)).await {
            Ok(Ok(())) => {
                self.written.fetch_add(1, Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(IngestError::Internal(format!("checkpoint task: {e}"))),
        }
    }

    /// Write the checkpoints every `every` while they change, until `stop`.
    pub async fn save_loop(
        self: Arc<Self>,
        registry: Arc<Registry>,
        every: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<Vec<FileCheckpoint>> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let files = self.collect(&registry);
            if last.as_ref() == Some(&files) {
                continue;
            }
            let (d, f) = (self.dir.clone(), files.clone());
            match tokio::task::spawn_blocking(move || d.save(f)).await {
                Ok(Ok(())) => {
                    self.written.fetch_add(1, Relaxed);
                    last = Some(files);
                    if failing {
                        tracing::info!("checkpoints written again");
                        failing = false;
                    }
                }
                Ok(Err(e)) => {
                    if !failing {
                        tracing::error!("cannot write checkpoints (retrying): {e}");
                        failing = true;
                    }
                }
                Err(e) => tracing::error!("checkpoint task: {e}"),
            }
        }
    }
}

/// Put a checkpoint of this run's topic into the registry.
fn resume(e: FileCheckpoint, registry: &Registry) {
    let Some(identity) = e.identity() else {
        tracing::warn!(path = %e.path.display(), "checkpoint with an invalid fingerprint ignored");
        return;
    };
    let t = Track::new(e.source.as_str().into(), Some(identity), e.offset);
    {
        let mut p = t.lock();
        p.size = e.size;
        p.complete = e.complete;
        p.last_seen = e.last_seen_time();
        p.source_key = e.source_key();
    }
    registry.add(t);
}

/// Say so when a file source has checkpoints for other topics only: its
/// files are read from the beginning for this one.
fn explain_new_topic(
    cfg: &IngestConfig,
    topic: &str,
    registry: &Registry,
    others: &[FileCheckpoint],
) {
    for s in &cfg.sources {
        if !matches!(s.kind, SourceKind::Files(_)) || !registry.of_source(&s.name).is_empty() {
            continue;
        }
        let elsewhere: BTreeSet<&str> = others
            .iter()
            .filter(|e| e.source == s.name)
            .map(|e| e.topic.as_str())
            .collect();
        if !elsewhere.is_empty() {
            tracing::info!(source = %s.name, topic, "no checkpoints for this topic (only for {elsewhere:?}): the source's files are read for it from the start");
        }
    }
}

/// The checkpoints of the registry's file tracks, for `topic`.
fn collect(registry: &Registry, topic: &str) -> Vec<FileCheckpoint> {
    let mut out = Vec::new();
    for t in registry.tracks() {
        let p = t.lock();
        let Some(id) = &p.identity else { continue };
        out.push(FileCheckpoint {
            topic: topic.to_string(),
            source: t.source.to_string(),
            path: id.path.clone(),
            fingerprint: checkpoint::to_hex(&id.fingerprint),
            head_len: id.head_len,
            dev: id.dev,
            ino: id.ino,
            gzip: id.gzip,
            offset: p.checkpoint(),
            size: p.size,
            complete: p.complete && p.all_acknowledged(),
            last_seen: checkpoint::unix_secs(p.last_seen),
            source_key: p.source_key.as_ref().map(checkpoint::to_hex),
        });
    }
    out
}
