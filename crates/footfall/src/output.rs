//! Output files that appear whole or not at all.
//!
//! An [`AtomicFile`] is written to a temporary file beside its destination
//! (`.NAME.footfall-PID.tmp`) and, on [`AtomicFile::commit`], fsynced and
//! renamed over it, then the directory is fsynced. Until then the destination
//! is untouched. The temporary file is removed when the `AtomicFile` is
//! dropped without a commit (an error), and when the process is stopped by
//! SIGINT or SIGTERM: a signal handler unlinks every registered temporary file
//! and exits with 128 + the signal number. So an interrupted run leaves no
//! partial file behind.

use std::ffi::{c_char, c_int, CString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// Temporary files to unlink on a signal (paths leaked as C strings while registered).
static PENDING: [AtomicPtr<c_char>; 4] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 4];
static HANDLERS: Once = Once::new();

extern "C" fn on_signal(sig: c_int) {
    for slot in &PENDING {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a NUL-terminated path leaked by `register`; unlink
            // and _exit are async-signal-safe.
            unsafe {
                libc::unlink(p);
            }
        }
    }
    // SAFETY: ends the process without running anything else.
    unsafe { libc::_exit(128 + sig) }
}

fn install_handlers() {
    HANDLERS.call_once(|| {
        let handler = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
    });
}

/// Register `path` for unlinking on a signal; the slot to release it with.
fn register(path: &Path) -> Option<usize> {
    install_handlers();
    let c = CString::new(path.as_os_str().as_bytes()).ok()?.into_raw();
    for (i, slot) in PENDING.iter().enumerate() {
        if slot
            .compare_exchange(std::ptr::null_mut(), c, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Some(i);
        }
    }
    // SAFETY: `c` came from `into_raw` above and was not stored.
    drop(unsafe { CString::from_raw(c) });
    None
}

fn release(slot: Option<usize>) {
    if let Some(i) = slot {
        let p = PENDING[i].swap(std::ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` came from `CString::into_raw` in `register`.
            drop(unsafe { CString::from_raw(p) });
        }
    }
}

/// A file written under a temporary name and renamed into place on commit.
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    slot: Option<usize>,
}

impl AtomicFile {
    /// Start writing `dest` (its directory must exist).
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.footfall-{}.tmp", std::process::id()));
        let slot = register(&temp);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp);
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                release(slot);
                return Err(e);
            }
        };
        Ok(AtomicFile {
            dest: dest.to_path_buf(),
            temp,
            file: Some(file),
            slot,
        })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until committed")
    }

    /// Make the written content durable and give it the destination's name.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("open until committed");
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.temp, &self.dest)?;
        release(self.slot.take());
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl io::Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
        release(self.slot.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appears_only_on_commit_and_vanishes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.jsonl");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"x\n").unwrap();
        assert!(!dest.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"x\n");

        let mut g = AtomicFile::create(&dest).unwrap();
        g.write_all(b"partial").unwrap();
        drop(g);
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"x\n",
            "an uncommitted write changes nothing"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
