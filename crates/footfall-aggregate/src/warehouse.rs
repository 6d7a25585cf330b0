//! The warehouse on disk: layout, locks, durable writes, listing and retention.
//!
//! ```text
//! DIR/.footfall.lock                                 warehouse lock (fs4 advisory lock)
//! DIR/.footfall.json                                 layout version, id, topic, group, retention horizon
//! DIR/.locks/partition-<p>.lock                      a partition's lock (shared mode)
//! DIR/.locks/date=YYYY-MM-DD.lock                    a date's lock (shared mode)
//! DIR/.locks/meta.lock                               held while `.footfall.json` is updated
//! DIR/events/date=YYYY-MM-DD/part-<p>-<start>.parquet
//! DIR/<table>/date=YYYY-MM-DD/day.parquet            summaries, one file per table and date
//! DIR/_erasure/tombstones/date=YYYY-MM-DD.ids        visitor ids erased for a date (see `erase`)
//! DIR/_erasure/ledger.jsonl                          one line per erasure (no ids)
//! DIR/_erasure/pending.json                          dates whose summaries an interrupted erasure owes
//! DIR/.ids/date=YYYY-MM-DD.idx                       the date's `event_id` keys, for de-duplication (a cache, `ids.rs`)
//! DIR/.visitors/date=YYYY-MM-DD.rec                  the date's visits per visitor, for weeks and months (a cache, `periods/records.rs`)
//! ```
//!
//! Files are written to a hidden temporary name in their final directory
//! (`.<name>.tmp`), fsynced, renamed into place and the directory fsynced, so a
//! reader sees either the old or the new file, never a partial one, and a file
//! that has been renamed survives a crash.
//!
//! A warehouse may publish its table files, erasure records (`erasure.rs`)
//! and metadata to an object store ([`Replica`], `replica.rs` states the
//! contract): each is uploaded (or deleted) there before it is renamed into
//! place (or removed) here, where the locks and caches stay. A lost staging
//! directory is made again from the object store (`restore.rs`).
//!
//! Layout 1 (before summaries were exact per day) had one summary file per date
//! and Kafka partition (`part-<p>.parquet`). [`Warehouse::v1_summary_files`]
//! finds them; the first writing run upgrades the warehouse (see `run.rs`).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;

use crate::error::AggregateError;
use crate::summaries::Table;

/// The lock file, relative to the warehouse root.
pub const LOCK_FILE: &str = ".footfall.lock";
/// The metadata file, relative to the warehouse root.
pub const META_FILE: &str = ".footfall.json";
/// The metadata's name on an object store (a replica's `META_FILE`): its
/// presence there says that the store holds every erasure record too.
pub const META_OBJECT: &str = "_footfall.json";
/// Directory of the partition, date and metadata lock files.
pub const PARTITION_LOCK_DIR: &str = ".locks";
/// Directory of the events table.
pub const EVENTS_DIR: &str = "events";
/// Name of the one file of a summary table for a date (all partitions).
pub const SUMMARY_FILE: &str = "day.parquet";
/// How long [`Warehouse::update_meta`] waits for another run's metadata update.
const META_LOCK_WAIT: Duration = Duration::from_secs(60);
/// Version of the on-disk layout, recorded in [`META_FILE`]: 3 since every
/// summary row carries `audience` and `bot_reason`; 2 made summaries one file
/// per table and date (1: one per date and Kafka partition).
pub const LAYOUT_VERSION: u32 = 3;
/// Directory of the erasure records (tombstones, ledger), relative to the
/// warehouse root. Not a table: nothing that lists tables or dates looks in it.
pub const ERASURE_DIR: &str = "_erasure";
/// Directory of the tombstone files, relative to [`ERASURE_DIR`].
const TOMBSTONE_DIR: &str = "tombstones";
/// The erasure ledger, relative to [`ERASURE_DIR`].
pub const LEDGER_FILE: &str = "ledger.jsonl";
/// The dates whose summaries an interrupted erasure has yet to recompute,
/// relative to [`ERASURE_DIR`].
const ERASE_PENDING_FILE: &str = "pending.json";

/// How a run locks the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// One run at a time (the default): any other run fails at once.
    #[default]
    Exclusive,
    /// Several runs of one consumer group share the warehouse; each also locks
    /// the partitions it is assigned. An exclusive run excludes them all.
    Shared,
}

/// One file of the events table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventFile {
    /// The events' date (`date=` directory).
    pub date: NaiveDate,
    /// The Kafka partition the events came from.
    pub partition: i32,
    /// Kafka offset the writing run started at for this partition.
    pub start_offset: i64,
    /// Where the file is.
    pub path: PathBuf,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct WarehouseLock {
    _file: File,
    /// Exclusive or shared.
    pub mode: LockMode,
}

/// A held per-partition lock (shared mode); released on drop.
#[derive(Debug)]
pub struct PartitionLock {
    _file: File,
    /// The partition locked.
    pub partition: i32,
}

/// A held per-date lock (shared mode): its holder is the only run that writes
/// the date's events and summaries; released on drop.
#[derive(Debug)]
pub struct DateLock {
    _file: File,
    /// The date locked.
    pub date: NaiveDate,
}

/// A held per-period lock (shared mode): its holder is the only run that
/// reads a week's or month's visits and writes its period file; released on drop.
#[derive(Debug)]
pub struct PeriodLock {
    _file: File,
    /// The period table.
    pub period: crate::periods::Period,
    /// The period's first day.
    pub start: NaiveDate,
}

/// A file written to its temporary name and fsynced, not yet visible.
#[must_use = "a pending file is invisible until persisted"]
#[derive(Debug)]
pub struct PendingFile {
    tmp: PathBuf,
    path: PathBuf,
    publish: Option<Publish>,
}

/// Where a file is published before it is persisted locally (see `replica`).
#[derive(Debug, Clone)]
struct Publish {
    replica: Arc<Replica>,
    rel: String,
}

mod cache;
mod days;
mod erasure;
mod ids;
mod meta;
mod pending;
mod read;
mod replica;
mod restore;
pub(crate) use cache::End as RowsEnd;
pub(crate) use cache::{put_str, remove_cache_file, CacheKind, Fields, VISITORS_DIR};
pub(crate) use days::DayCover;
pub(crate) use ids::{identities, Covered};
pub use meta::{SummarySettings, WarehouseMeta};
pub(crate) use pending::side_by_side_threads;
#[cfg(test)]
use pending::WRITE_SLICE_ROWS;
pub use pending::{writer_properties, PendingWriter};
pub use read::read_parquet;
pub(crate) use read::{concat, read_parquet_each, read_parquet_iter, RowKeep};
pub use replica::{is_store_url, Replica};
pub use restore::Restored;

impl PendingFile {
    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Uploads the file to the warehouse's replica, if it has one and the
    /// file is published and not uploaded yet; returns whether it uploaded.
    pub fn publish(&mut self) -> Result<bool, AggregateError> {
        match self.publish.take() {
            Some(p) => p.replica.upload(&p.rel, &self.tmp).map(|()| true),
            None => Ok(false),
        }
    }

    /// Publishes the file (if [`PendingFile::publish`] has not), then renames
    /// it into place and fsyncs its directory.
    pub fn persist(mut self) -> Result<PathBuf, AggregateError> {
        self.publish()?;
        fs::rename(&self.tmp, &self.path).map_err(AggregateError::io("rename", &self.path))?;
        sync_dir(self.path.parent().expect("warehouse files have a parent"))?;
        Ok(self.path)
    }
}

/// `fsync`. This crate's unit tests skip it: they simulate crashes at
/// checkpoints (they cannot observe durability) and fsync dominates their time.
/// The library as built for use and for the integration tests always syncs.
fn fsync(f: &File) -> std::io::Result<()> {
    if cfg!(test) {
        Ok(())
    } else {
        f.sync_all()
    }
}

fn sync_dir(dir: &Path) -> Result<(), AggregateError> {
    File::open(dir)
        .and_then(|d| fsync(&d))
        .map_err(AggregateError::io("fsync directory", dir))
}

/// The directory holding `path`: its parent, or `.` for a relative path of
/// one component (whose parent is the empty path).
fn parent_dir(path: &Path) -> Option<&Path> {
    path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    })
}

/// Creates `dir` (and missing parents) and makes the new entries durable.
fn ensure_dir(dir: &Path) -> Result<(), AggregateError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.is_dir() {
        missing.push(d.to_path_buf());
        match parent_dir(d) {
            Some(p) => d = p,
            None => break,
        }
    }
    fs::create_dir_all(dir).map_err(AggregateError::io("create directory", dir))?;
    for m in missing.iter().rev() {
        if let Some(parent) = parent_dir(m) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn date_dir_name(date: NaiveDate) -> String {
    format!("date={}", date.format("%Y-%m-%d"))
}

fn parse_date_dir(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix("date=")?, "%Y-%m-%d").ok()
}

/// `date=YYYY-MM-DD.ids` → the date
fn parse_tombstone_file(name: &str) -> Option<NaiveDate> {
    parse_date_dir(name.strip_suffix(".ids")?)
}

/// The hidden temporary path `path` is written under before its rename
/// (`.<name>.tmp`, beside it), its directory made.
fn temp_path(path: &Path) -> Result<PathBuf, AggregateError> {
    let dir = path.parent().expect("warehouse files have a parent");
    ensure_dir(dir)?;
    let name = path
        .file_name()
        .expect("warehouse files have a name")
        .to_string_lossy();
    Ok(dir.join(format!(".{name}.tmp")))
}

/// Whether a file name is a temporary name of [`temp_path`].
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes `bytes` to `path` atomically and durably: a hidden temporary name in
/// the same directory, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AggregateError> {
    let tmp = temp_path(path)?;
    let mut f = File::create(&tmp).map_err(AggregateError::io("create", &tmp))?;
    f.write_all(bytes)
        .and_then(|()| fsync(&f))
        .map_err(AggregateError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(AggregateError::io("rename", path))?;
    sync_dir(tmp.parent().expect("a temporary path has a parent"))
}

/// Opens (creating) a lock file and takes its exclusive lock, waiting up to
/// `wait` (zero: not at all); a lock still held then is [`AggregateError::Locked`].
fn lock_file(
    path: &Path,
    wait: Duration,
    what: impl FnOnce() -> String,
) -> Result<File, AggregateError> {
    ensure_dir(path.parent().expect("lock files have a parent"))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(AggregateError::io("open lock file", path))?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => return Ok(file),
            Err(fs4::TryLockError::WouldBlock) if started.elapsed() < wait => {
                std::thread::sleep(pause.min(wait.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(AggregateError::Locked {
                    path: path.to_path_buf(),
                    what: what(),
                })
            }
            Err(fs4::TryLockError::Error(e)) => return Err(AggregateError::io("lock", path)(e)),
        }
    }
}

/// A new warehouse id: 128 bits from the process's random hasher keys, the
/// time and the process id (unique enough to tell warehouses apart; not a secret).
pub(crate) fn new_warehouse_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// `part-<p>-<start>.parquet` → (p, start)
fn parse_event_file(name: &str) -> Option<(i32, i64)> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (p, s) = rest.split_once('-')?;
    Some((p.parse().ok()?, s.parse().ok()?))
}

/// `part-<p>.parquet` (a layout 1 summary file) → p
fn parse_v1_summary_file(name: &str) -> Option<i32> {
    name.strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// Whether a hidden temporary file belongs to a partition's events (`.part-<p>-<start>.parquet.tmp`).
fn temp_of_partition(name: &str, partition: i32) -> bool {
    let Some(rest) = name.strip_prefix(".part-") else {
        return false;
    };
    let p = partition.to_string();
    rest.strip_prefix(&p).is_some_and(|r| r.starts_with('-'))
}

/// A warehouse directory.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: PathBuf,
    replica: Option<Arc<Replica>>,
}

impl Warehouse {
    /// A warehouse at `root` (nothing is touched until used).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Warehouse {
            root: root.into(),
            replica: None,
        }
    }

    /// The warehouse at `root` with the replica its metadata records, or with
    /// `replica` if it is new. Refuses a replica other than the recorded one,
    /// and one for a warehouse made without.
    pub fn open(
        root: impl Into<PathBuf>,
        replica: Option<Arc<Replica>>,
    ) -> Result<Self, AggregateError> {
        let mut wh = Warehouse::new(root);
        if fs::metadata(&wh.root).is_ok_and(|m| !m.is_dir()) {
            return Err(AggregateError::Config(format!(
                "warehouse {} is not a directory",
                wh.root.display()
            )));
        }
        let meta = wh.read_meta()?;
        let recorded = meta.as_ref().and_then(|m| m.replica.as_deref());
        wh.replica = match (meta.is_some(), recorded, replica) {
            (false, _, given) => given,
            (true, None, None) => None,
            (true, Some(url), None) => Some(Arc::new(Replica::open(url)?)),
            (true, Some(url), Some(given)) if given.url() == url => Some(given),
            (true, recorded, Some(given)) => {
                return Err(AggregateError::Config(format!(
                    "warehouse {} is published to {}, not {}",
                    wh.root.display(),
                    recorded.unwrap_or("no object store (a local warehouse)"),
                    given.url()
                )))
            }
        };
        Ok(wh)
    }

    /// The object store the tables are published to, if any.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_deref()
    }

    /// Where `path` (a file under the root) is published, if it is.
    fn publish(&self, path: &Path) -> Option<Publish> {
        let replica = self.replica.as_ref()?;
        let rel = replica::published_path(path.strip_prefix(&self.root).ok()?)?;
        Some(Publish {
            replica: Arc::clone(replica),
            rel,
        })
    }

    /// Deletes the published copy of `path`, if it has one (before the local file).
    fn unpublish(&self, path: &Path) -> Result<(), AggregateError> {
        match self.publish(path) {
            Some(p) => p.replica.delete(&p.rel),
            None => Ok(()),
        }
    }

    /// The warehouse's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the root directory exists (a dry run of a new warehouse has none).
    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }

    /// Creates the root directory if missing.
    pub fn create(&self) -> Result<(), AggregateError> {
        ensure_dir(&self.root)
    }

    /// Takes the warehouse lock without waiting: another run holding it is
    /// [`AggregateError::Locked`].
    pub fn lock(&self, mode: LockMode) -> Result<WarehouseLock, AggregateError> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(AggregateError::io("open lock file", &path))?;
        let res = match mode {
            LockMode::Exclusive => fs4::FileExt::try_lock(&file),
            LockMode::Shared => fs4::FileExt::try_lock_shared(&file),
        };
        match res {
            Ok(()) => Ok(WarehouseLock { _file: file, mode }),
            Err(fs4::TryLockError::WouldBlock) => Err(AggregateError::Locked {
                path,
                what: match mode {
                    LockMode::Exclusive => "another aggregate run is using the warehouse".into(),
                    LockMode::Shared => "an exclusive aggregate run is using the warehouse".into(),
                },
            }),
            Err(fs4::TryLockError::Error(e)) => Err(AggregateError::io("lock", &path)(e)),
        }
    }

    /// Takes the lock of one partition (shared mode) without waiting.
    pub fn lock_partition(&self, partition: i32) -> Result<PartitionLock, AggregateError> {
        let path = self
            .root
            .join(PARTITION_LOCK_DIR)
            .join(format!("partition-{partition}.lock"));
        let file = lock_file(&path, Duration::ZERO, || {
            format!("another aggregate run holds partition {partition}")
        })?;
        Ok(PartitionLock {
            _file: file,
            partition,
        })
    }

    /// Takes the lock of one date (shared mode), waiting up to `wait` for the
    /// run that holds it.
    pub fn lock_date(&self, date: NaiveDate, wait: Duration) -> Result<DateLock, AggregateError> {
        let path = self
            .root
            .join(PARTITION_LOCK_DIR)
            .join(format!("{}.lock", date_dir_name(date)));
        let file = lock_file(&path, wait, || {
            format!("another aggregate run kept date {date} locked for longer than {wait:?}")
        })?;
        Ok(DateLock { _file: file, date })
    }

    /// Takes the lock of one period file (shared mode), waiting up to `wait`.
    /// Runs take it while they hold their date locks and never the other way
    /// round, one period at a time, so that period locks cannot deadlock.
    pub fn lock_period(
        &self,
        period: crate::periods::Period,
        start: NaiveDate,
        wait: Duration,
    ) -> Result<PeriodLock, AggregateError> {
        let name = format!("{}-{}.lock", period.name(), date_dir_name(start));
        let path = self.root.join(PARTITION_LOCK_DIR).join(name);
        let file = lock_file(&path, wait, || {
            format!(
                "another aggregate run kept {} of {start} locked for longer than {wait:?}",
                period.name()
            )
        })?;
        Ok(PeriodLock {
            _file: file,
            period,
            start,
        })
    }

    /// Locks `dates` in ascending order (so that runs locking overlapping sets
    /// cannot deadlock), waiting up to `wait` for each.
    pub fn lock_dates(
        &self,
        dates: &BTreeSet<NaiveDate>,
        wait: Duration,
    ) -> Result<Vec<DateLock>, AggregateError> {
        dates.iter().map(|&d| self.lock_date(d, wait)).collect()
    }

    /// Path of an events file.
    pub fn events_path(&self, date: NaiveDate, partition: i32, start_offset: i64) -> PathBuf {
        self.root
            .join(EVENTS_DIR)
            .join(date_dir_name(date))
            .join(format!("part-{partition}-{start_offset}.parquet"))
    }

    /// Path of the file of a period table ([`crate::periods`]) for the
    /// period starting on `start`.
    pub fn period_path(&self, period: crate::periods::Period, start: NaiveDate) -> PathBuf {
        self.root
            .join(period.name())
            .join(date_dir_name(start))
            .join("period.parquet")
    }

    /// Path of a date's cache file (`cache.rs`) of one kind: its directory
    /// under the root, and its extension.
    pub(crate) fn date_cache_path(&self, dir: &str, date: NaiveDate, ext: &str) -> PathBuf {
        self.root
            .join(dir)
            .join(format!("{}.{ext}", date_dir_name(date)))
    }

    /// Path of the summary file of a table and date.
    pub fn summary_path(&self, table: Table, date: NaiveDate) -> PathBuf {
        self.root
            .join(table.name())
            .join(date_dir_name(date))
            .join(SUMMARY_FILE)
    }

    fn date_dirs(&self, table_dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>, AggregateError> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(table_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(AggregateError::io("list", table_dir)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(AggregateError::io("list", table_dir))?;
            let name = entry.file_name();
            let Some(date) = name.to_str().and_then(parse_date_dir) else {
                tracing::warn!(path = %entry.path().display(), "ignoring unexpected entry in the warehouse");
                continue;
            };
            out.push((date, entry.path()));
        }
        out.sort();
        Ok(out)
    }

    /// Every events file, sorted by (date, partition, start offset).
    pub fn event_files(&self) -> Result<Vec<EventFile>, AggregateError> {
        let mut out = Vec::new();
        for (date, dir) in self.date_dirs(&self.root.join(EVENTS_DIR))? {
            for entry in fs::read_dir(&dir).map_err(AggregateError::io("list", &dir))? {
                let entry = entry.map_err(AggregateError::io("list", &dir))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                match parse_event_file(name) {
                    Some((partition, start_offset)) => out.push(EventFile {
                        date,
                        partition,
                        start_offset,
                        path: entry.path(),
                    }),
                    None => {
                        return Err(AggregateError::Warehouse {
                            path: entry.path(),
                            reason: "not an events file name (part-<partition>-<offset>.parquet)"
                                .into(),
                        })
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The summary files of one date that exist, by table.
    pub fn summary_files(&self, date: NaiveDate) -> Vec<(Table, PathBuf)> {
        Table::ALL
            .into_iter()
            .map(|t| (t, self.summary_path(t, date)))
            .filter(|(_, p)| p.is_file())
            .collect()
    }

    /// Every summary file of layout 1 (`<table>/date=D/part-<p>.parquet`), by date.
    pub fn v1_summary_files(&self) -> Result<Vec<(NaiveDate, PathBuf)>, AggregateError> {
        let mut out = Vec::new();
        for table in Table::ALL {
            for (date, dir) in self.date_dirs(&self.root.join(table.name()))? {
                for entry in list_dir(&dir)? {
                    let name = entry.file_name();
                    if name.to_str().and_then(parse_v1_summary_file).is_some() {
                        out.push((date, entry.path()));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes `batch` to the temporary name of `path` and fsyncs it; a large
    /// batch has its columns encoded side by side (`side_by_side_threads`:
    /// the same bytes).
    pub fn write_pending(
        &self,
        path: &Path,
        batch: &RecordBatch,
    ) -> Result<PendingFile, AggregateError> {
        self.pending_writer(path, batch.schema())?
            .write_whole(batch, side_by_side_threads(batch.num_rows()))
    }

    /// A Parquet file written batch by batch to the temporary name of `path`.
    pub fn pending_writer(
        &self,
        path: &Path,
        schema: SchemaRef,
    ) -> Result<PendingWriter, AggregateError> {
        let tmp = temp_path(path)?;
        let file = File::create(&tmp).map_err(AggregateError::io("create", &tmp))?;
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties()))
            .map_err(AggregateError::parquet(&tmp))?;
        Ok(PendingWriter {
            writer,
            held: Vec::new(),
            held_rows: 0,
            rows: 0,
            tmp,
            path: path.to_path_buf(),
            publish: self.publish(path),
        })
    }

    /// Removes a file (if present) and fsyncs its directory. Returns whether it existed.
    /// A published file is deleted from the object store first.
    pub fn remove_file(&self, path: &Path) -> Result<bool, AggregateError> {
        if path.exists() {
            self.unpublish(path)?;
        }
        match fs::remove_file(path) {
            Ok(()) => {
                sync_dir(path.parent().expect("warehouse files have a parent"))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AggregateError::io("remove", path)(e)),
        }
    }

    /// Removes temporary files left by interrupted runs: all of them, or only
    /// the events files' of the given partitions (summary files' temporaries
    /// belong to a date: [`Warehouse::sweep_date_temp_files`]). Returns how
    /// many were removed.
    pub fn sweep_temp_files(
        &self,
        partitions: Option<&BTreeSet<i32>>,
    ) -> Result<usize, AggregateError> {
        let mut removed = 0;
        let tables = std::iter::once(EVENTS_DIR).chain(Table::ALL.iter().map(|t| t.name()));
        for table in tables {
            for (_, dir) in self.date_dirs(&self.root.join(table))? {
                for entry in fs::read_dir(&dir).map_err(AggregateError::io("list", &dir))? {
                    let entry = entry.map_err(AggregateError::io("list", &dir))?;
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if !is_temp_name(name) {
                        continue;
                    }
                    let theirs = |ps: &BTreeSet<i32>| {
                        table != EVENTS_DIR || !ps.iter().any(|&p| temp_of_partition(name, p))
                    };
                    if partitions.is_some_and(theirs) {
                        continue;
                    }
                    fs::remove_file(entry.path())
                        .map_err(AggregateError::io("remove", entry.path()))?;
                    removed += 1;
                }
            }
        }
        // Erasure records are written under the exclusive lock only; the
        // cache files of a shared run's dates go with their date's files.
        if partitions.is_none() {
            removed += self.sweep_cache_temps(None)?;
            let erasure = self.root.join(ERASURE_DIR);
            for dir in [erasure.join(TOMBSTONE_DIR), erasure] {
                for entry in list_dir(&dir)? {
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if is_temp_name(name) && entry.path().is_file() {
                        fs::remove_file(entry.path())
                            .map_err(AggregateError::io("remove", entry.path()))?;
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Removes the temporary summary and cache files of one date (shared
    /// mode, under the date's lock). Returns how many were removed.
    pub fn sweep_date_temp_files(&self, date: NaiveDate) -> Result<usize, AggregateError> {
        let mut removed = self.sweep_cache_temps(Some(date))?;
        for table in Table::ALL {
            let dir = self.root.join(table.name()).join(date_dir_name(date));
            for entry in list_dir(&dir)? {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if is_temp_name(name) {
                    fs::remove_file(entry.path())
                        .map_err(AggregateError::io("remove", entry.path()))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Drops the events of dates more than `days - 1` days before `today`
    /// (dates `d` with `today - d >= days`: `days` calendar days, today
    /// included, are kept), whatever dates the warehouse holds. Summaries are
    /// kept. With `partitions` (shared mode), only those partitions' files are
    /// removed, each date under its lock (waiting up to `lock_wait`), and a date
    /// directory goes once it is empty. Records the horizon in the metadata
    /// first, so that events for dropped dates are refused from then on.
    /// Returns the dates whose files were removed.
    pub fn apply_retention(
        &self,
        days: u32,
        today: NaiveDate,
        partitions: Option<&BTreeSet<i32>>,
        lock_wait: Duration,
    ) -> Result<Vec<NaiveDate>, AggregateError> {
        if days == 0 {
            return Err(AggregateError::Config(
                "retention must keep at least 1 day".into(),
            ));
        }
        let Some(horizon) = today.checked_sub_signed(chrono::Duration::days(days as i64 - 1))
        else {
            return Ok(Vec::new());
        };
        let events_dir = self.root.join(EVENTS_DIR);
        let old: Vec<(NaiveDate, PathBuf)> = self
            .date_dirs(&events_dir)?
            .into_iter()
            .filter(|(d, _)| *d < horizon)
            .collect();
        self.update_meta(|meta| {
            Ok(meta.map(|mut m| {
                if m.retained_from.is_none_or(|r| r < horizon) {
                    m.retained_from = Some(horizon);
                }
                m
            }))
        })?;
        let mut dropped = Vec::new();
        for (date, dir) in old {
            let _lock = match partitions {
                Some(_) => Some(self.lock_date(date, lock_wait)?),
                None => None,
            };
            let mut any = false;
            for entry in fs::read_dir(&dir).map_err(AggregateError::io("list", &dir))? {
                let entry = entry.map_err(AggregateError::io("list", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let mine = match partitions {
                    None => true,
                    Some(ps) => {
                        parse_event_file(&name).is_some_and(|(p, _)| ps.contains(&p))
                            || ps.iter().any(|&p| temp_of_partition(&name, p))
                    }
                };
                if mine {
                    self.unpublish(&entry.path())?;
                    fs::remove_file(entry.path())
                        .map_err(AggregateError::io("remove", entry.path()))?;
                    any = true;
                }
            }
            if any {
                sync_dir(&dir)?;
                dropped.push(date);
            }
            let empty = fs::read_dir(&dir)
                .map_err(AggregateError::io("list", &dir))?
                .next()
                .is_none();
            if empty {
                fs::remove_dir(&dir).map_err(AggregateError::io("remove directory", &dir))?;
                sync_dir(&events_dir)?;
            }
        }
        // Events of these dates are refused from now on: their tombstones are not needed.
        let mut any = false;
        for (date, path) in self.tombstone_files()? {
            if date < horizon {
                self.unpublish(&path)?;
                fs::remove_file(&path).map_err(AggregateError::io("remove", &path))?;
                any = true;
            }
        }
        if any {
            sync_dir(&self.root.join(ERASURE_DIR).join(TOMBSTONE_DIR))?;
        }
        self.remove_id_indexes_before(horizon)?;
        // The horizon's own day state holds the last visit timeout of the
        // day before it, whose events are gone: it goes too (rebuilt).
        self.remove_day_states_before(horizon)?;
        self.remove_day_state(horizon)?;
        Ok(dropped)
    }

    /// Removes every summary file of a date (it has no events any more).
    pub fn remove_summaries(&self, date: NaiveDate) -> Result<usize, AggregateError> {
        let mut n = 0;
        for (_, path) in self.summary_files(date) {
            n += self.remove_file(&path)? as usize;
        }
        Ok(n)
    }
}

/// The entries of a directory (none when it does not exist).
fn list_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, AggregateError> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<Result<Vec<_>, _>>()
            .map_err(AggregateError::io("list", dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(AggregateError::io("list", dir)(e)),
    }
}

#[cfg(test)]
mod tests;
