//! The events every monitor yields, and the stamp that decides whether a config changed.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// What identifies one version of a config file: any difference is a change. Unlike
/// uWSGI's "mtime strictly greater, in whole seconds", this sees two edits in the same
/// second, an mtime moved backwards, an atomic rename-over (new inode) and an owner change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(md: &Metadata) -> Stamp {
        Stamp {
            dev: md.dev(),
            ino: md.ino(),
            mtime_sec: md.mtime(),
            mtime_nsec: md.mtime_nsec(),
            size: md.size(),
            uid: md.uid(),
            gid: md.gid(),
        }
    }
}

/// A vassal config that appeared or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// The vassal name: the file name (dir) or the matched path (glob).
    pub name: String,
    /// The new stamp.
    pub stamp: Stamp,
    /// Owner used by tyrant mode (may come from the link itself with tyrant-nofollow).
    pub uid: u32,
    pub gid: u32,
    /// Modification time in Unix seconds (reported as `born`/`last_mod`).
    pub mtime: i64,
    /// A pushed config (non-file monitors), sent over `UWSGI_EMPEROR_FD_CONFIG`.
    pub config: Option<Vec<u8>>,
    /// An on-demand socket named by the monitor itself (pg column 6, zmq part 6...).
    pub socket: Option<String>,
}

/// One thing a monitor noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorEvent {
    /// A config is new or changed.
    Touch(Touch),
    /// A config is gone.
    Destroy { name: String },
    /// Something the operator should read in the log (a rejected name, an unreadable
    /// directory). Each distinct problem is reported once, not at every scan.
    Warn(String),
}
