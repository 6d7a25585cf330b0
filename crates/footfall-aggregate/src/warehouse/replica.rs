//! The warehouse's tables published to an object store (`s3://`, `gs://`,
//! `az://`, `file://`, `memory://`; the `object_store` crate).
//!
//! Contract. A warehouse with a replica keeps working in its local directory
//! (the *staging* directory: locks, metadata, erasure records, temporary
//! files, caches, and the tables that runs read back), and every change to a
//! published file is made on the object store **first**. Published are the
//! table files (`events/`, the summaries, the weeks and months), the erasure
//! records (`_erasure/`) and the metadata (as [`META_OBJECT`](super::META_OBJECT)): everything a
//! lost staging directory cannot rebuild, so that `restore.rs` can make a new
//! one from the object store. Never published: locks, caches and spill (first
//! path component starting with `.`) and temporary files.
//!
//! * a file is uploaded under its relative path (one PUT, or a multipart
//!   upload above [`PART_SIZE`]; either is visible whole or not at all) before
//!   its temporary file is renamed into place locally;
//! * a file is deleted on the object store before it is removed locally.
//!
//! So the local directory never holds a change the object store lacks. A crash
//! between the two steps leaves the object store ahead, and the local state
//! says the work is still to do (offsets not committed, erasure pending,
//! retention not applied): the next run does it again, with the same names
//! and bytes, and the object store ends where one uninterrupted run leaves it.
//! Offsets are committed only after both. An object-store failure fails the
//! operation (kind [`ErrorKind::Store`](crate::ErrorKind::Store)) before the
//! local change, so nothing is committed.
//!
//! The staging directory is bound to its replica's URL in the metadata (see
//! `run/binding.rs`): a warehouse is not published to two places, and a
//! published one is not changed without its replica.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use super::ERASURE_DIR;
use crate::error::AggregateError;

/// How S3 (and MinIO), Google Cloud Storage and Azure say that a bucket or
/// container does not exist: the `object_store` crate reports it as a generic
/// error of the request.
const NO_BUCKET: [&str; 3] = [
    "NoSuchBucket",
    "The specified bucket does not exist",
    "ContainerNotFound",
];

/// Files above this size are uploaded in parts of this size (multipart upload).
pub const PART_SIZE: usize = 16 << 20;
/// How many objects a restore downloads at a time (each a request's round
/// trip before its bytes flow: a remote store's latency, not its bandwidth,
/// limits one at a time).
const DOWNLOADS: usize = 8;
/// The environment variables handed to the object store's configuration, by
/// prefix (credentials, endpoint, region; see `object_store`'s builders).
const ENV_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

/// An object store and the prefix the warehouse's tables are published under.
pub struct Replica {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("url", &self.url).finish()
    }
}

/// Whether `url` names an object store rather than a local directory.
pub fn is_store_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
    })
}

impl Replica {
    /// Opens the object store of `url` (for example `s3://bucket/prefix`),
    /// configured from the `AWS_*`, `GOOGLE_*` and `AZURE_*` environment
    /// variables. Nothing is requested until a file is published.
    pub fn open(url: &str) -> Result<Self, AggregateError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| AggregateError::Config(format!("warehouse URL {url}: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(AggregateError::Config(
                "a warehouse URL holds no credentials: put them in the environment (AWS_ACCESS_KEY_ID, ...)".into(),
            ));
        }
        let bad = |why: String| AggregateError::Config(format!("warehouse {url}: {why}"));
        let env = std::env::vars().filter(|(k, _)| ENV_PREFIXES.iter().any(|p| k.starts_with(p)));
        let (store, prefix) =
            object_store::parse_url_opts(&parsed, env).map_err(|e| bad(e.to_string()))?;
        Self::new(url, Arc::from(store), prefix)
    }

    /// A replica on a given store (tests use `object_store::memory::InMemory`).
    pub fn new(
        url: &str,
        store: Arc<dyn ObjectStore>,
        prefix: StorePath,
    ) -> Result<Self, AggregateError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("footfall-store")
            .enable_all()
            .build()
            .map_err(AggregateError::io("start the object store client", url))?;
        Ok(Replica {
            url: url.trim_end_matches('/').to_string(),
            store,
            prefix,
            runtime,
        })
    }

    /// The URL, as given (it holds no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, rel: &str) -> StorePath {
        rel.split('/')
            .fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    /// Uploads the local file `local` as `rel` (a `/`-separated relative path).
    pub(crate) fn upload(&self, rel: &str, local: &Path) -> Result<(), AggregateError> {
        let key = self.key(rel);
        let failed = |op| self.failed(op, rel);
        self.runtime.block_on(async {
            let mut file = tokio::fs::File::open(local)
                .await
                .map_err(AggregateError::io("open", local))?;
            let mut out = BufWriter::with_capacity(Arc::clone(&self.store), key, PART_SIZE);
            if let Err(e) = tokio::io::copy(&mut file, &mut out).await {
                out.abort().await.ok();
                return Err(failed("upload")(e.into()));
            }
            out.shutdown().await.map_err(|e| failed("upload")(e.into()))
        })
    }

    /// Deletes `rel`; a missing object is no error.
    pub(crate) fn delete(&self, rel: &str) -> Result<(), AggregateError> {
        match self.runtime.block_on(self.store.delete(&self.key(rel))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", rel)(e.into())),
        }
    }

    /// Every object under the prefix: relative path and size, sorted.
    pub fn list(&self) -> Result<Vec<(String, u64)>, AggregateError> {
        use futures_util::TryStreamExt;
        let objects: Vec<_> = self
            .runtime
            .block_on(self.store.list(Some(&self.prefix)).try_collect())
            .map_err(|e: object_store::Error| self.failed("list", "")(e.into()))?;
        let mut out: Vec<(String, u64)> = objects
            .into_iter()
            .filter_map(|m| {
                let rel = m.location.prefix_match(&self.prefix)?;
                let rel: Vec<String> = rel.map(|p| p.as_ref().to_string()).collect();
                Some((rel.join("/"), m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether nothing is stored under the prefix yet.
    pub fn is_empty(&self) -> Result<bool, AggregateError> {
        use futures_util::StreamExt;
        let first = self
            .runtime
            .block_on(async { self.store.list(Some(&self.prefix)).next().await });
        match first {
            None => Ok(true),
            Some(Ok(_)) => Ok(false),
            Some(Err(e)) => Err(self.failed("list", "")(e.into())),
        }
    }

    /// Whether a warehouse is published here (its metadata is).
    pub fn holds_warehouse(&self) -> Result<bool, AggregateError> {
        Ok(self.get_opt(super::META_OBJECT)?.is_some())
    }

    /// The bytes of `rel`.
    pub fn get(&self, rel: &str) -> Result<Vec<u8>, AggregateError> {
        self.read(rel)
            .map_err(|e| self.failed("read", rel)(e.into()))
    }

    /// The bytes of `rel`, or `None` when there is no such object.
    pub(crate) fn get_opt(&self, rel: &str) -> Result<Option<Vec<u8>>, AggregateError> {
        match self.read(rel) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("read", rel)(e.into())),
        }
    }

    /// One GET of `rel`, its whole body.
    fn read(&self, rel: &str) -> Result<Vec<u8>, object_store::Error> {
        self.runtime
            .block_on(async { self.store.get(&self.key(rel)).await?.bytes().await })
            .map(|b| b.to_vec())
    }

    /// Stores `bytes` as `rel` (one PUT: records and metadata are small).
    pub(crate) fn put(&self, rel: &str, bytes: &[u8]) -> Result<(), AggregateError> {
        let payload = object_store::PutPayload::from(bytes.to_vec());
        self.runtime
            .block_on(self.store.put(&self.key(rel), payload))
            .map(drop)
            .map_err(|e| self.failed("upload", rel)(e.into()))
    }

    /// Streams each object `rel` into its file `out` (created or
    /// truncated, fsynced), [`DOWNLOADS`] at a time, and hands each to
    /// `done` with its size as it is complete (in the order they complete).
    pub(crate) fn download_all(
        &self,
        objects: &[(String, PathBuf)],
        done: &mut dyn FnMut(&str, &Path, u64) -> Result<(), AggregateError>,
    ) -> Result<(), AggregateError> {
        use futures_util::StreamExt;
        self.runtime.block_on(async {
            let mut fetched =
                futures_util::stream::iter(objects)
                    .map(|(rel, out)| async move {
                        self.fetch(rel, out).await.map(|size| (rel, out, size))
                    })
                    .buffer_unordered(DOWNLOADS);
            while let Some(next) = fetched.next().await {
                let (rel, out, size) = next?;
                done(rel, out, size)?;
            }
            Ok(())
        })
    }

    /// Streams `rel` into the file `out`, fsynced; returns its size.
    async fn fetch(&self, rel: &str, out: &Path) -> Result<u64, AggregateError> {
        use futures_util::StreamExt;
        let failed = |e: object_store::Error| self.failed("read", rel)(e.into());
        let mut stream = self
            .store
            .get(&self.key(rel))
            .await
            .map_err(failed)?
            .into_stream();
        let mut file = tokio::fs::File::create(out)
            .await
            .map_err(AggregateError::io("create", out))?;
        let mut size = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(failed)?;
            file.write_all(&chunk)
                .await
                .map_err(AggregateError::io("write", out))?;
            size += chunk.len() as u64;
        }
        let file = file.into_std().await;
        tokio::task::spawn_blocking(move || super::fsync(&file))
            .await
            .expect("an fsync does not panic")
            .map_err(AggregateError::io("write", out))?;
        Ok(size)
    }

    /// The error of a failed request: a configuration error when the bucket
    /// does not exist (retrying cannot help), else an object-store error.
    fn failed(
        &self,
        op: &'static str,
        rel: &str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> AggregateError {
        let object = format!("{}/{rel}", self.url);
        let url = self.url.clone();
        move |source| {
            let text = source.to_string();
            if NO_BUCKET.iter().any(|w| text.contains(w)) {
                return AggregateError::Config(format!(
                    "{url}: the bucket does not exist (create it, or correct the URL)"
                ));
            }
            AggregateError::Store { op, object, source }
        }
    }
}

/// The object-store path of a warehouse file (relative to the root), or
/// `None` when it is not published: the first component starts with `.`
/// (locks, caches, spill), or with `_` other than the erasure records', or
/// the name is a temporary file's. The metadata is published under its own
/// name ([`META_OBJECT`](super::META_OBJECT), by `Warehouse::write_meta`).
pub(crate) fn published_path(rel: &Path) -> Option<String> {
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let first = parts.first()?;
    let last = parts.last()?;
    let hidden = first.starts_with('.') || first.starts_with('_') && *first != ERASURE_DIR;
    if parts.len() < 2 || hidden || last.starts_with('.') {
        return None;
    }
    Some(parts.join("/"))
}

#[cfg(test)]
pub(super) mod tests;
