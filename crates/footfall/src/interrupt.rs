//! What a command leaves and says when SIGINT or SIGTERM stops it.
//!
//! One handler serves the process, installed on first use: it unlinks the
//! temporary files registered with [`unlink_on_interrupt`] (so that no partial
//! output stays, see [`crate::output`]), writes the [`Note`] last set with
//! [`say_on_interrupt`] to stderr (what the interruption leaves behind), and
//! exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM). It
//! calls only async-signal-safe functions: `unlink`, `write`, `_exit`.

use std::ffi::{c_char, c_int, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// Temporary files to unlink on a signal (paths leaked as C strings while registered).
static PENDING: [AtomicPtr<c_char>; 4] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 4];
/// The note to write on a signal, if any.
static NOTE: AtomicPtr<Note> = AtomicPtr::new(std::ptr::null_mut());
static HANDLERS: Once = Once::new();

/// A line for stderr when a signal stops the process (end it with `\n`).
pub struct Note(pub &'static str);

extern "C" fn on_signal(sig: c_int) {
    for slot in &PENDING {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a NUL-terminated path leaked by `unlink_on_interrupt`;
            // unlink is async-signal-safe.
            unsafe {
                libc::unlink(p);
            }
        }
    }
    let note = NOTE.load(Ordering::SeqCst);
    if !note.is_null() {
        // SAFETY: `note` points to a `static Note` (see `say_on_interrupt`);
        // write is async-signal-safe.
        unsafe {
            let text = (*note).0;
            libc::write(2, text.as_ptr().cast(), text.len());
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

/// From now on a signal writes `note` (replacing any earlier note) and exits.
pub fn say_on_interrupt(note: &'static Note) {
    install_handlers();
    NOTE.store(std::ptr::from_ref(note).cast_mut(), Ordering::SeqCst);
}

/// Registers `path` for unlinking on a signal; the slot to [`release`] it
/// with (`None`: every slot is taken, or the path holds a NUL byte).
pub fn unlink_on_interrupt(path: &Path) -> Option<usize> {
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

/// Forgets a path registered with [`unlink_on_interrupt`].
pub fn release(slot: Option<usize>) {
    if let Some(i) = slot {
        let p = PENDING[i].swap(std::ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` came from `CString::into_raw` in `unlink_on_interrupt`.
            drop(unsafe { CString::from_raw(p) });
        }
    }
}
