//! Kernel change notification for the file monitors, one backend per system behind one
//! interface: inotify on Linux (`inotify.rs`), kqueue on FreeBSD (`kqueue.rs`). Both yield
//! the same [`Event`]s, so `dir://` and `glob://` decide what to probe, when, and what
//! changed (the [`crate::Stamp`] comparison in `track.rs`) in one place for both.
//!
//! The difference the monitors must know about: inotify names the entry that changed in a
//! watched directory; kqueue only says that a directory's entries changed
//! ([`Kind::Listing`]) and cannot see a file's contents through its directory, so the
//! kqueue backend also watches every known config file itself
//! (`Watcher::track_files`, a no-op on Linux; see `vnode.rs` for the rules).

#[cfg(target_os = "linux")]
mod inotify;
#[cfg(target_os = "linux")]
pub(crate) use inotify::Watcher;

#[cfg(target_os = "freebsd")]
mod kqueue;
#[cfg(target_os = "freebsd")]
pub(crate) use kqueue::Watcher;

// The platform-independent part of the kqueue backend: compiled everywhere it is used
// (FreeBSD) or tested (every system).
#[cfg(any(test, target_os = "freebsd"))]
pub(crate) mod vnode;

use std::ffi::OsString;
use std::path::PathBuf;

/// What one event asks the monitor to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An entry was just created (or is being written): probe it after a short grace, so
    /// a file still being written is not started half-written.
    Settling,
    /// An entry changed (written and closed, renamed, deleted, attributes): probe it now.
    Changed,
    /// The watched directory's entries changed but the backend cannot say which (kqueue):
    /// list the directory again (after the same grace as a creation).
    #[cfg_attr(not(target_os = "freebsd"), allow(dead_code))] // only kqueue lists
    Listing,
    /// The watched directory itself was deleted or moved (its watch is gone).
    Gone,
}

/// One drained event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The watched directory (None when the watch is unknown, e.g. already removed).
    pub dir: Option<PathBuf>,
    /// The entry inside it, when the backend knows it.
    pub name: Option<OsString>,
    pub kind: Kind,
}

/// A config file the kqueue backend should watch on its own: its path (as the monitor
/// reaches it, symlinks included) and the device and inode the monitor last saw there, so
/// a watch left on a replaced file is renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileKey {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}
