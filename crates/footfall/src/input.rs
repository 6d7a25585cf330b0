//! Opening inputs: files (plain or gzip, detected by content) and stdin.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::exit::{Failure, NO_INPUT};

/// Counts bytes read from the underlying file (compressed bytes for gzip), for progress.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input.
pub struct Input {
    /// Display name (`stdin` or the path as given).
    pub name: String,
    /// Decoded content.
    pub reader: Box<dyn Read + Send>,
    /// Size on disk, when known.
    pub size: Option<u64>,
    /// Bytes consumed from disk so far.
    pub consumed: Arc<AtomicU64>,
}

fn cannot_open(path: &str, e: &io::Error) -> String {
    format!("cannot open {path}: {e}")
}

/// Every input that cannot be opened, named in one error (exit 66), so that
/// a command fails before it creates a keyring or writes any output.
pub fn check_all(paths: &[String]) -> anyhow::Result<()> {
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| p.as_str() != "-")
        .filter_map(|p| File::open(p).err().map(|e| cannot_open(p, &e)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::new(NO_INPUT, missing.join("; ")).into())
}

/// Open `-` (stdin) or a path; gzip is detected from the magic bytes.
pub fn open(path: &str) -> anyhow::Result<Input> {
    let consumed = Arc::new(AtomicU64::new(0));
    let (name, raw, size): (String, Box<dyn Read + Send>, Option<u64>) = if path == "-" {
        ("stdin".to_string(), Box::new(io::stdin()), None)
    } else {
        let f = File::open(Path::new(path))
            .map_err(|e| Failure::new(NO_INPUT, cannot_open(path, &e)))?;
        let size = f.metadata().ok().map(|m| m.len());
        (path.to_string(), Box::new(f), size)
    };
    // Smaller than a parse chunk, so once the sniffed head is consumed the
    // chunk reads bypass this buffer and go straight into the chunk.
    let mut buffered = BufReader::with_capacity(
        64 << 10,
        Counting {
            inner: raw,
            count: Arc::clone(&consumed),
        },
    );
    let head = buffered
        .fill_buf()
        .with_context(|| format!("reading {name}"))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok(Input {
        name,
        reader,
        size,
        consumed,
    })
}
