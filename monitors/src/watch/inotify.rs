//! The Linux backend: one inotify instance per monitor, directory watches kept by path,
//! events drained without blocking. inotify names the entry that changed, so no file is
//! watched on its own.

use super::{Event, FileKey, Kind};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// What a directory watch listens for: entries created, written and closed, renamed in or
/// out, deleted, or whose attributes (mtime, owner) changed; and the directory itself going.
fn dir_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// A bare creation (not a directory) may still be being written; the rest is probed now.
/// An event without a name concerns the watched directory itself.
fn kind(mask: AddWatchFlags, named: bool) -> Kind {
    if !named {
        Kind::Gone
    } else if mask.contains(AddWatchFlags::IN_CREATE) && !mask.contains(AddWatchFlags::IN_ISDIR) {
        Kind::Settling
    } else {
        Kind::Changed
    }
}

pub(crate) struct Watcher {
    ino: Inotify,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    by_path: HashMap<PathBuf, WatchDescriptor>,
}

impl Watcher {
    pub fn new() -> Result<Watcher, nix::Error> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(Watcher {
            ino,
            by_wd: HashMap::new(),
            by_path: HashMap::new(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ino.as_fd()
    }

    /// inotify reports entries by name through their directory's watch.
    pub const TRACKS_FILES: bool = false;

    /// Nothing to do: see [`Watcher::TRACKS_FILES`]. Returns how many files could not be
    /// watched (none).
    pub fn track_files(&mut self, _files: &[FileKey]) -> usize {
        0
    }

    /// Watches a directory unless it already is; Err when it cannot be watched (missing).
    pub fn ensure(&mut self, path: &Path) -> Result<(), nix::Error> {
        if self.by_path.contains_key(path) {
            return Ok(());
        }
        let wd = self.ino.add_watch(path, dir_flags())?;
        // Two paths can name one directory (a symlinked parent): the kernel returns the
        // same descriptor; the last path wins for reporting, which is enough to rescan.
        self.by_wd.insert(wd, path.to_owned());
        self.by_path.insert(path.to_owned(), wd);
        Ok(())
    }

    /// Drops every watch whose path is not in `keep`.
    pub fn retain(&mut self, keep: &HashSet<PathBuf>) {
        let stale: Vec<PathBuf> = self
            .by_path
            .keys()
            .filter(|p| !keep.contains(*p))
            .cloned()
            .collect();
        for p in stale {
            if let Some(wd) = self.by_path.remove(&p) {
                self.by_wd.remove(&wd);
                let _ = self.ino.rm_watch(wd);
            }
        }
    }

    pub fn is_watched(&self, path: &Path) -> bool {
        self.by_path.contains_key(path)
    }

    /// Reads every pending event. Returns the events and whether the queue overflowed.
    pub fn drain(&mut self) -> (Vec<Event>, bool) {
        let mut out = Vec::new();
        let mut overflow = false;
        // Bounded: at most 64 reads (about 256 KiB of events) per call, so a directory
        // storm cannot monopolise the loop; the rest is read on the next wake-up.
        for _ in 0..64 {
            match self.ino.read_events() {
                Ok(evs) if evs.is_empty() => break,
                Ok(evs) => {
                    for ev in evs {
                        if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                            overflow = true;
                            continue;
                        }
                        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                            // The kernel dropped the watch (directory deleted): forget it
                            // so the next scan can add it again.
                            if let Some(p) = self.by_wd.remove(&ev.wd) {
                                self.by_path.remove(&p);
                                out.push(Event {
                                    dir: Some(p),
                                    name: None,
                                    kind: Kind::Gone,
                                });
                            }
                            continue;
                        }
                        out.push(Event {
                            dir: self.by_wd.get(&ev.wd).cloned(),
                            kind: kind(ev.mask, ev.name.is_some()),
                            name: ev.name,
                        });
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    overflow = true;
                    break;
                }
            }
        }
        (out, overflow)
    }
}
