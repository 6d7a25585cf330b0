//! Output files that appear whole or not at all.
//!
//! An [`AtomicFile`] is written to a temporary file beside its destination
//! (`.NAME.footfall-PID.tmp`) and, on [`AtomicFile::commit`], fsynced and
//! renamed over it, then the directory is fsynced. Until then the destination
//! is untouched. The temporary file is removed when the `AtomicFile` is
//! dropped without a commit (an error), and when the process is stopped by
//! SIGINT or SIGTERM ([`crate::interrupt`] unlinks it). So an interrupted run
//! leaves no partial file behind.
//!
//! A destination that exists and is not a regular file (`/dev/null`,
//! `/dev/stdout`, a named pipe) is written in place: renaming over it would
//! replace the device or pipe with a file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::interrupt::{release, unlink_on_interrupt};

/// A file written under a temporary name and renamed into place on commit.
pub struct AtomicFile {
    dest: PathBuf,
    /// `None`: the destination is not a regular file and is written in place.
    temp: Option<PathBuf>,
    file: Option<File>,
    slot: Option<usize>,
}

impl AtomicFile {
    /// Start writing `dest` (its directory must exist).
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let special = std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir());
        if special {
            return Ok(AtomicFile {
                dest: dest.to_path_buf(),
                temp: None,
                file: Some(OpenOptions::new().write(true).open(dest)?),
                slot: None,
            });
        }
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.footfall-{}.tmp", std::process::id()));
        let slot = unlink_on_interrupt(&temp);
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
            temp: Some(temp),
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
        let mut file = self.file.take().expect("open until committed");
        let Some(temp) = self.temp.take() else {
            // Written in place: a device or a pipe has nothing to sync or rename.
            return io::Write::flush(&mut file);
        };
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &self.dest)?;
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
        if let (Some(_), Some(temp)) = (self.file.take(), &self.temp) {
            let _ = std::fs::remove_file(temp);
        }
        release(self.slot.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;

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

    #[test]
    fn a_device_or_pipe_is_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut f = AtomicFile::create(&fifo).unwrap();
        f.write_all(b"through the pipe\n").unwrap();
        f.commit().unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe\n");
        let kind = std::fs::metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "still a pipe, not a file");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut null = AtomicFile::create(Path::new("/dev/null")).unwrap();
        null.write_all(b"gone").unwrap();
        null.commit().unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }
}
