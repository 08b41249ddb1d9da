//! What a file monitor knows: the stamp of every config it reported, so a scan reports
//! only differences, and the problems it already logged, so each is logged once.

use crate::FileOptions;
use crate::event::{MonitorEvent, Stamp, Touch};
use crate::names::{NameRules, Rejection};
use crate::watch::{FileKey, Watcher};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A config as seen on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub stamp: Stamp,
    pub uid: u32,
    pub gid: u32,
}

/// Stats a config the way the options ask: `stat` (following links, regular files only)
/// or, with `emperor-nofollow`, `lstat` (regular files and symlinks). With
/// `emperor-tyrant-nofollow` the owner comes from the link itself.
pub(crate) fn stat_config(path: &Path, opts: &FileOptions) -> Option<Seen> {
    let md = if opts.nofollow {
        std::fs::symlink_metadata(path)
    } else {
        std::fs::metadata(path)
    }
    .ok()?;
    let ft = md.file_type();
    if !(ft.is_file() || (opts.nofollow && ft.is_symlink())) {
        return None;
    }
    let stamp = Stamp::of(&md);
    let (uid, gid) = if opts.owner_nofollow {
        match std::fs::symlink_metadata(path) {
            Ok(l) => (Stamp::of(&l).uid, Stamp::of(&l).gid),
            Err(_) => return None,
        }
    } else {
        (stamp.uid, stamp.gid)
    };
    // The owner that matters is part of the stamp, so an owner change is a change.
    Some(Seen {
        stamp: Stamp { uid, gid, ..stamp },
        uid,
        gid,
    })
}

#[derive(Default)]
pub(crate) struct Tracker {
    known: HashMap<String, Seen>,
    warned: HashSet<String>,
}

impl Tracker {
    /// Checks a name; a name that must be logged is logged once.
    pub fn admit(&mut self, rules: &NameRules, name: &str, out: &mut Vec<MonitorEvent>) -> bool {
        match rules.check(name) {
            Ok(()) => true,
            Err(Rejection::NotConfig | Rejection::Temporary) => false,
            Err(r) => {
                if self.warned.insert(name.to_owned()) {
                    let why = match r {
                        Rejection::TooLong => "longer than 254 bytes",
                        _ => "contains a control character",
                    };
                    out.push(MonitorEvent::Warn(format!(
                        "[emperor] invalid vassal name ({why}): {}",
                        name.escape_debug()
                    )));
                }
                false
            }
        }
    }

    /// Records what one name looks like now (None: gone) and reports a difference.
    pub fn observe(&mut self, name: &str, now: Option<Seen>, out: &mut Vec<MonitorEvent>) {
        match (self.known.get(name), now) {
            (Some(old), Some(new)) if *old == new => {}
            (_, Some(new)) => {
                self.known.insert(name.to_owned(), new);
                out.push(MonitorEvent::Touch(Touch {
                    name: name.to_owned(),
                    stamp: new.stamp,
                    uid: new.uid,
                    gid: new.gid,
                    mtime: new.stamp.mtime_sec,
                    config: None,
                    socket: None,
                }));
            }
            (Some(_), None) => {
                self.known.remove(name);
                out.push(MonitorEvent::Destroy {
                    name: name.to_owned(),
                });
            }
            (None, None) => {}
        }
    }

    /// After a full listing: everything known but not listed is gone.
    pub fn sweep(&mut self, listed: &HashSet<String>, out: &mut Vec<MonitorEvent>) {
        sweep(&mut self.known, listed, out);
    }

    pub fn forget(&mut self, name: &str) {
        self.known.remove(name);
    }

    /// The files of every known config (names joined to `base`, or paths themselves), for
    /// a backend that watches files one by one.
    fn file_keys(&self, base: Option<&Path>) -> Vec<FileKey> {
        self.known
            .iter()
            .map(|(name, seen)| FileKey {
                path: match base {
                    Some(b) => b.join(name),
                    None => name.into(),
                },
                dev: seen.stamp.dev,
                ino: seen.stamp.ino,
            })
            .collect()
    }

    /// After a scan, a probe or a batch of events: has a backend that watches files one
    /// by one (kqueue) watch exactly the known configs. Nothing at all with inotify.
    pub fn sync_file_watches(
        &mut self,
        watcher: Option<&mut Watcher>,
        base: Option<&Path>,
        out: &mut Vec<MonitorEvent>,
    ) {
        if !Watcher::TRACKS_FILES {
            return;
        }
        let Some(w) = watcher else { return };
        let missed = w.track_files(&self.file_keys(base));
        let key = "file-watches";
        if missed == 0 {
            self.clear_warning(key);
        } else {
            self.warn_once(
                key,
                format!(
                    "[emperor] {missed} vassal config(s) are not watched one by one (no descriptor left): their changes are seen at the next rescan (emperor-freq)"
                ),
                out,
            );
        }
    }

    /// Logs a problem once (until `clear_warning`).
    pub fn warn_once(&mut self, key: &str, msg: String, out: &mut Vec<MonitorEvent>) {
        if self.warned.insert(key.to_owned()) {
            out.push(MonitorEvent::Warn(msg));
        }
    }

    pub fn clear_warning(&mut self, key: &str) {
        self.warned.remove(key);
    }
}

/// After a full listing (files, rows, documents): every known name that was not listed is
/// forgotten and reported as destroyed. Shared by the file and the remote monitors.
pub(crate) fn sweep<V>(
    known: &mut HashMap<String, V>,
    listed: &HashSet<String>,
    out: &mut Vec<MonitorEvent>,
) {
    known.retain(|name, _| {
        let keep = listed.contains(name);
        if !keep {
            out.push(MonitorEvent::Destroy { name: name.clone() });
        }
        keep
    });
}
