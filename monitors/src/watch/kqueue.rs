//! The FreeBSD backend: one kqueue per monitor with `EVFILT_VNODE` watches on every
//! watched directory and on every known config file (kqueue reports that a directory's
//! entries changed, never which one, and never a file's contents through its directory).
//! The rules that turn vnode events into [`Event`]s are in `vnode.rs`.
//!
//! Limits (documented in docs/emperor.md): a file watch holds one descriptor; at most
//! [`MAX_FILE_WATCHES`] per monitor, the files beyond are seen by the `emperor-freq`
//! rescan only (the monitor logs it once). With `emperor-nofollow` a symlinked config is
//! not watched on its own (`O_NOFOLLOW`); its replacement shows as a directory change.

use super::vnode::{self, Registry, Target, note};
use super::{Event, FileKey};
use nix::errno::Errno;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most config files one monitor watches on its own (one descriptor each).
pub(crate) const MAX_FILE_WATCHES: usize = 4096;

/// What a directory watch asks for: entries added, removed or renamed (`NOTE_WRITE`,
/// `NOTE_LINK` for subdirectories), its attributes, and the directory itself going.
const DIR_NOTES: u32 = libc::NOTE_WRITE
    | libc::NOTE_EXTEND
    | libc::NOTE_ATTRIB
    | libc::NOTE_LINK
    | libc::NOTE_DELETE
    | libc::NOTE_RENAME;
/// What a config file watch asks for: writes (in progress and finished), attributes
/// (touch, chmod, chown), and the file going away or being replaced.
const FILE_NOTES: u32 = libc::NOTE_WRITE
    | libc::NOTE_EXTEND
    | libc::NOTE_ATTRIB
    | libc::NOTE_DELETE
    | libc::NOTE_RENAME
    | libc::NOTE_CLOSE_WRITE;

/// FreeBSD `NOTE_*` bits → the backend-neutral bits of [`vnode::note`].
fn neutral(fflags: u32) -> u32 {
    [
        (libc::NOTE_DELETE, note::DELETE),
        (libc::NOTE_WRITE, note::WRITE),
        (libc::NOTE_EXTEND, note::EXTEND),
        (libc::NOTE_ATTRIB, note::ATTRIB),
        (libc::NOTE_LINK, note::LINK),
        (libc::NOTE_RENAME, note::RENAME),
        (libc::NOTE_CLOSE_WRITE, note::CLOSE_WRITE),
    ]
    .iter()
    .filter(|(n, _)| fflags & n != 0)
    .fold(0, |acc, (_, b)| acc | b)
}

pub(crate) struct Watcher {
    kq: OwnedFd,
    dirs: HashMap<PathBuf, File>,
    files: HashMap<PathBuf, (FileKey, File)>,
    registry: Registry,
}

impl Watcher {
    pub fn new() -> Result<Watcher, nix::Error> {
        // SAFETY: kqueue() takes no argument and returns a new descriptor or -1.
        let raw = Errno::result(unsafe { libc::kqueue() })?;
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let kq = unsafe { OwnedFd::from_raw_fd(raw) };
        // A kqueue is not inherited by fork(); close-on-exec keeps it out of exec-ed
        // programs started before any fork as well.
        nix::fcntl::fcntl(
            &kq,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        Ok(Watcher {
            kq,
            dirs: HashMap::new(),
            files: HashMap::new(),
            registry: Registry::default(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.kq.as_fd()
    }

    /// kqueue cannot see a file's changes through its directory: files are watched too.
    pub const TRACKS_FILES: bool = true;

    /// Adds an `EVFILT_VNODE` watch (edge-triggered: `EV_CLEAR`) on an open descriptor.
    fn register(&self, fd: BorrowedFd<'_>, notes: u32) -> Result<(), Errno> {
        // SAFETY: an all-zero kevent is a valid value (integers and a null pointer).
        let mut kev: libc::kevent = unsafe { std::mem::zeroed() };
        kev.ident = fd.as_raw_fd() as libc::uintptr_t;
        kev.filter = libc::EVFILT_VNODE;
        kev.flags = libc::EV_ADD | libc::EV_CLEAR;
        kev.fflags = notes;
        // SAFETY: one valid change, no event list, no timeout (registration only).
        let r = unsafe {
            libc::kevent(
                self.kq.as_raw_fd(),
                &kev,
                1,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
            )
        };
        Errno::result(r).map(drop)
    }

    /// Watches a directory unless it already is; Err when it cannot be watched (missing).
    pub fn ensure(&mut self, path: &Path) -> Result<(), nix::Error> {
        if self.dirs.contains_key(path) {
            return Ok(());
        }
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)
            .map_err(io_errno)?;
        self.register(dir.as_fd(), DIR_NOTES)?;
        self.registry
            .insert(dir.as_raw_fd() as usize, Target::Dir(path.to_owned()));
        self.dirs.insert(path.to_owned(), dir);
        Ok(())
    }

    /// Drops every directory watch whose path is not in `keep`.
    pub fn retain(&mut self, keep: &HashSet<PathBuf>) {
        let registry = &mut self.registry;
        self.dirs.retain(|p, f| {
            let k = keep.contains(p);
            if !k {
                registry.remove(f.as_raw_fd() as usize);
            }
            k
        });
    }

    pub fn is_watched(&self, path: &Path) -> bool {
        self.dirs.contains_key(path)
    }

    /// Watches exactly these config files (closing the others, renewing replaced ones).
    /// Returns how many could not be watched for lack of descriptors.
    pub fn track_files(&mut self, want: &[FileKey]) -> usize {
        let open: HashMap<PathBuf, FileKey> = self
            .files
            .iter()
            .map(|(p, (k, _))| (p.clone(), k.clone()))
            .collect();
        let (close, opens) = vnode::plan(&open, want);
        for p in close {
            if let Some((_, f)) = self.files.remove(&p) {
                self.registry.remove(f.as_raw_fd() as usize);
            }
        }
        let mut missed = 0;
        for key in opens {
            if self.files.len() >= MAX_FILE_WATCHES {
                missed += 1;
                continue;
            }
            match self.open_file(&key) {
                Ok(Some(f)) => {
                    self.registry
                        .insert(f.as_raw_fd() as usize, Target::File(key.clone()));
                    self.files.insert(key.path.clone(), (key, f));
                }
                // Gone, a symlink under emperor-nofollow, or replaced since the monitor
                // saw it: the next probe or listing brings it back.
                Ok(None) => {}
                Err(Errno::EMFILE | Errno::ENFILE) => missed += 1,
                Err(_) => {}
            }
        }
        missed
    }

    /// Opens a config file for watching only: read-only, non-blocking (a FIFO swapped in
    /// cannot block the Emperor), never following a link under `emperor-nofollow` (the
    /// key's inode is then the link's), and only if it is still the file the monitor saw.
    fn open_file(&self, key: &FileKey) -> Result<Option<File>, Errno> {
        let f = match File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&key.path)
        {
            Ok(f) => f,
            Err(e) => {
                return match io_errno(e) {
                    Errno::ENOENT | Errno::ELOOP | Errno::EACCES => Ok(None),
                    e => Err(e),
                };
            }
        };
        let md = f.metadata().map_err(io_errno)?;
        if !md.is_file() || md.dev() != key.dev || md.ino() != key.ino {
            return Ok(None);
        }
        self.register(f.as_fd(), FILE_NOTES)?;
        Ok(Some(f))
    }

    /// Reads every pending event without blocking. kqueue keeps one pending note per
    /// watch, so it never overflows (the flag is always false).
    pub fn drain(&mut self) -> (Vec<Event>, bool) {
        const BATCH: usize = 64;
        let mut batch: Vec<(usize, u32)> = Vec::new();
        // Bounded like the inotify backend: the rest is read on the next wake-up.
        for _ in 0..64 {
            // SAFETY: an all-zero kevent is a valid value.
            let mut buf: [libc::kevent; BATCH] = unsafe { std::mem::zeroed() };
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: no changes; `buf` has room for BATCH events; a zero timeout polls.
            let n = unsafe {
                libc::kevent(
                    self.kq.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    buf.as_mut_ptr(),
                    BATCH as libc::c_int,
                    &zero,
                )
            };
            match Errno::result(n) {
                Ok(0) => break,
                Ok(n) => {
                    let n = n as usize;
                    for kev in &buf[..n] {
                        if kev.filter == libc::EVFILT_VNODE && kev.flags & libc::EV_ERROR == 0 {
                            batch.push((kev.ident, neutral(kev.fflags)));
                        }
                    }
                    if n < BATCH {
                        break;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        let (events, dropped) = self.registry.translate(&batch);
        if !dropped.is_empty() {
            let gone = |f: &File| dropped.contains(&(f.as_raw_fd() as usize));
            self.dirs.retain(|_, f| !gone(f));
            self.files.retain(|_, (_, f)| !gone(f));
        }
        (events, false)
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}
