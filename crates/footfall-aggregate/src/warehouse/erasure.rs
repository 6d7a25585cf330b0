//! The erasure records of a warehouse (see `erase`): tombstones per date,
//! the ledger (one line per erasure, no ids) and the journal of summaries an
//! interrupted erasure still owes. All under [`ERASURE_DIR`], and published
//! to a replica like the tables (first there, then here): a restored staging
//! directory keeps every erasure.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use super::{
    date_dir_name, ensure_dir, fsync, list_dir, parse_tombstone_file, sync_dir, write_atomic,
    Warehouse, ERASE_PENDING_FILE, ERASURE_DIR, LEDGER_FILE, TOMBSTONE_DIR,
};
use crate::error::AggregateError;

impl Warehouse {
    /// Path of the tombstones of a date: `DIR/_erasure/tombstones/date=YYYY-MM-DD.ids`.
    pub fn tombstone_path(&self, date: NaiveDate) -> PathBuf {
        self.root
            .join(ERASURE_DIR)
            .join(TOMBSTONE_DIR)
            .join(format!("{}.ids", date_dir_name(date)))
    }

    /// The visitor ids erased for a date (empty when there are none): events of
    /// that date with one of these ids are dropped by every later run.
    pub fn read_tombstones(&self, date: NaiveDate) -> Result<BTreeSet<String>, AggregateError> {
        let path = self.tombstone_path(date);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(AggregateError::io("read", &path)(e)),
        }
    }

    /// Every tombstone file, by date.
    pub(crate) fn tombstone_files(&self) -> Result<Vec<(NaiveDate, PathBuf)>, AggregateError> {
        let dir = self.root.join(ERASURE_DIR).join(TOMBSTONE_DIR);
        let mut out = Vec::new();
        for entry in list_dir(&dir)? {
            let name = entry.file_name();
            if let Some(date) = name.to_str().and_then(parse_tombstone_file) {
                out.push((date, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Merges `ids` into the tombstones of a date (sorted, unique, one a line),
    /// written atomically. Returns whether the file changed.
    pub(crate) fn add_tombstones(
        &self,
        date: NaiveDate,
        ids: &BTreeSet<String>,
    ) -> Result<bool, AggregateError> {
        let mut all = self.read_tombstones(date)?;
        let before = all.len();
        all.extend(ids.iter().cloned());
        if all.len() == before {
            return Ok(false);
        }
        let mut text = String::with_capacity(all.len() * 17);
        for id in &all {
            text.push_str(id);
            text.push('\n');
        }
        self.write_record(&self.tombstone_path(date), text.as_bytes())?;
        Ok(true)
    }

    /// Appends one line to the erasure ledger and fsyncs it. A line torn by a
    /// crash is ended first, so that it does not swallow the new one.
    pub(crate) fn append_ledger(&self, line: &str) -> Result<(), AggregateError> {
        let dir = self.root.join(ERASURE_DIR);
        ensure_dir(&dir)?;
        let path = dir.join(LEDGER_FILE);
        let created = !path.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(AggregateError::io("open", &path))?;
        let len = f
            .metadata()
            .map_err(AggregateError::io("stat", &path))?
            .len();
        let mut bytes = Vec::with_capacity(line.len() + 2);
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))
                .and_then(|_| f.read_exact(&mut last))
                .map_err(AggregateError::io("read", &path))?;
            if last[0] != b'\n' {
                bytes.push(b'\n');
            }
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Some(p) = self.publish(&path) {
            let mut whole = fs::read(&path).map_err(AggregateError::io("read", &path))?;
            whole.extend_from_slice(&bytes);
            p.replica.put(&p.rel, &whole)?;
        }
        f.write_all(&bytes)
            .and_then(|()| fsync(&f))
            .map_err(AggregateError::io("append", &path))?;
        if created {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Writes an erasure record atomically and durably, on the replica first.
    fn write_record(&self, path: &Path, bytes: &[u8]) -> Result<(), AggregateError> {
        if let Some(p) = self.publish(path) {
            p.replica.put(&p.rel, bytes)?;
        }
        write_atomic(path, bytes)
    }

    /// Every erasure record (not temporary files): its published path and
    /// its local path.
    pub(super) fn erasure_records(&self) -> Result<Vec<(String, PathBuf)>, AggregateError> {
        let dir = self.root.join(ERASURE_DIR);
        let mut out = Vec::new();
        for d in [dir.join(TOMBSTONE_DIR), dir] {
            for entry in list_dir(&d)? {
                let path = entry.path();
                if let Some(p) = path.is_file().then(|| self.publish(&path)).flatten() {
                    out.push((p.rel, path));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The dates whose summaries an interrupted erasure still owes (a journal
    /// of layout 1 lists (date, partition) pairs: their dates are owed).
    pub(crate) fn read_erase_pending(&self) -> Result<BTreeSet<NaiveDate>, AggregateError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Owed {
            Date(NaiveDate),
            Pair(NaiveDate, serde::de::IgnoredAny),
        }
        let path = self.root.join(ERASURE_DIR).join(ERASE_PENDING_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<Owed>>(&bytes)
                .map(|owed| {
                    owed.into_iter()
                        .map(|o| match o {
                            Owed::Date(d) | Owed::Pair(d, _) => d,
                        })
                        .collect()
                })
                .map_err(|e| AggregateError::Warehouse {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(AggregateError::io("read", &path)(e)),
        }
    }

    /// Records the dates whose summaries an erasure is about to make stale; returns the path.
    pub(crate) fn write_erase_pending(
        &self,
        dates: &BTreeSet<NaiveDate>,
    ) -> Result<PathBuf, AggregateError> {
        let path = self.root.join(ERASURE_DIR).join(ERASE_PENDING_FILE);
        let mut bytes = serde_json::to_vec(dates).expect("dates serialise");
        bytes.push(b'\n');
        self.write_record(&path, &bytes)?;
        Ok(path)
    }

    /// Forgets the pending summaries (they are recomputed).
    pub(crate) fn clear_erase_pending(&self) -> Result<bool, AggregateError> {
        self.remove_file(&self.root.join(ERASURE_DIR).join(ERASE_PENDING_FILE))
    }
}
