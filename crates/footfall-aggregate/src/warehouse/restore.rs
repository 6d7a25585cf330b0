//! A lost staging directory made again from its object store.
//!
//! Contract. [`Warehouse::restore`] fills a staging directory that has no
//! metadata with every published file of its replica: the tables and the
//! erasure records, several at a time, each streamed to a temporary name,
//! fsynced and renamed into place. It writes the metadata (from [`META_OBJECT`],
//! with a new staging id, on the replica first) last, so a directory without
//! metadata is not a warehouse yet and a restore cut short is run again. The
//! directory restored from, if it comes back, is refused from then on
//! ([`Warehouse::publish_records`]): its runs and this one's would mix. The
//! caches (`.ids/`, `.days/`, `.visitors/`) are not published: any the
//! directory held are removed, and the next run rebuilds each from the
//! date's tables when it needs it.
//!
//! The object store can be ahead of the group's committed offsets (a run that
//! uploaded a file and was killed before it committed): the next run removes
//! such events files, whose start offsets are past the committed ones, and
//! writes them again, as it does in the directory that was lost.
//!
//! Refused: a directory that has metadata (it is not lost), a store without
//! [`META_OBJECT`] (nothing was published there, or only by a build that
//! published no metadata: one run with the old staging directory publishes
//! it), and metadata naming another URL (a copy of the warehouse: its runs
//! would carry the original's mark in the group's offsets).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::{
    new_warehouse_id, replica::published_path, sync_dir, temp_path, LockMode, Replica, Warehouse,
    WarehouseMeta, META_OBJECT,
};
use crate::error::AggregateError;

/// What a restore brought back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// Files written (the metadata not counted).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects under the prefix that a warehouse does not publish, left alone.
    pub skipped: Vec<String>,
}

impl Warehouse {
    /// Makes `root` the staging directory of `replica` again (module docs).
    /// `progress` is told the bytes written so far and in all.
    pub fn restore(
        root: &Path,
        replica: Arc<Replica>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Restored, AggregateError> {
        let wh = Warehouse {
            root: root.to_path_buf(),
            replica: Some(Arc::clone(&replica)),
        };
        if wh.read_meta()?.is_some() {
            return Err(AggregateError::Config(format!(
                "staging directory {} is in use (it has its metadata): restore into a directory that holds no warehouse",
                root.display()
            )));
        }
        let meta = published_meta(&replica)?;
        wh.create()?;
        let _lock = wh.lock(LockMode::Exclusive)?;
        wh.remove_caches()?;
        let (objects, skipped): (Vec<_>, Vec<_>) = replica
            .list()?
            .into_iter()
            .filter(|(rel, _)| rel != META_OBJECT)
            .partition(|(rel, _)| published_path(Path::new(rel)).as_ref() == Some(rel));
        let total = objects.iter().map(|(_, size)| size).sum();
        let mut done = Restored {
            skipped: skipped.into_iter().map(|(rel, _)| rel).collect(),
            ..Restored::default()
        };
        let temps = objects
            .iter()
            .map(|(rel, _)| Ok((rel.clone(), temp_path(&wh.local(rel))?)))
            .collect::<Result<Vec<_>, AggregateError>>()?;
        replica.download_all(&temps, &mut |rel, tmp, size| {
            let path = wh.local(rel);
            fs::rename(tmp, &path).map_err(AggregateError::io("rename", &path))?;
            sync_dir(path.parent().expect("a published file has a directory"))?;
            done.bytes += size;
            done.files += 1;
            progress(done.bytes, total);
            Ok(())
        })?;
        // A staging directory of its own: the one restored from, if it
        // comes back, is refused rather than mixed with this one.
        let meta = WarehouseMeta {
            staging: Some(new_warehouse_id()),
            ..meta
        };
        wh.write_meta(&meta)?;
        Ok(done)
    }

    /// The local path of the published path `rel`.
    fn local(&self, rel: &str) -> PathBuf {
        rel.split('/').fold(self.root.clone(), |p, c| p.join(c))
    }
}

/// The metadata published with the replica, checked to be its own.
fn published_meta(replica: &Replica) -> Result<WarehouseMeta, AggregateError> {
    let url = replica.url();
    let Some(bytes) = replica.get_opt(META_OBJECT)? else {
        return Err(AggregateError::Config(format!(
            "{url} holds no {META_OBJECT}: no footfall warehouse was published there, or only by a \
             build that did not publish its metadata (one run with its old staging directory does)"
        )));
    };
    let meta: WarehouseMeta =
        serde_json::from_slice(&bytes).map_err(|e| AggregateError::Warehouse {
            path: format!("{url}/{META_OBJECT}").into(),
            reason: e.to_string(),
        })?;
    match meta.replica.as_deref() {
        Some(recorded) if recorded == url => Ok(meta),
        recorded => Err(AggregateError::Config(format!(
            "{url}/{META_OBJECT} is the metadata of a warehouse published to {}, not {url}: \
             restore from that URL (a copy elsewhere would count as the original in the group's offsets)",
            recorded.unwrap_or("no object store")
        ))),
    }
}

#[cfg(test)]
mod tests;
