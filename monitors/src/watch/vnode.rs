//! The platform-independent half of the kqueue backend: what is watched under which
//! descriptor, how a batch of `EVFILT_VNODE` events becomes [`Event`]s, and which file
//! watches to open, keep or close. No system call here, so it is unit-tested on Linux.
//!
//! Rules:
//! - A watched **directory** (`NOTE_WRITE`, `NOTE_EXTEND`, `NOTE_ATTRIB`, `NOTE_LINK`)
//!   gives [`Kind::Listing`]: kqueue does not say which entry changed, so the monitor
//!   lists it again. `NOTE_DELETE` or `NOTE_RENAME` gives [`Kind::Gone`] and drops the
//!   watch (the descriptor follows the moved directory, the path no longer names it).
//! - A watched **config file**: `NOTE_CLOSE_WRITE` or `NOTE_ATTRIB` (an edit finished,
//!   touch, chmod, chown) gives [`Kind::Changed`]; `NOTE_WRITE`/`NOTE_EXTEND` alone (an
//!   edit in progress) gives [`Kind::Settling`]; `NOTE_DELETE`/`NOTE_RENAME` (removed,
//!   renamed away, replaced by a rename-over) gives [`Kind::Changed`] and drops the watch,
//!   which the next [`plan`] reopens on whatever the path names then.
//! - Several events of one descriptor in a batch are merged first (one event per watch).

use super::{Event, FileKey, Kind};
use std::collections::HashMap;
use std::path::PathBuf;

/// The vnode changes the backend asks for, in the backend's own bits (the FreeBSD
/// `NOTE_*` values are mapped to these at the system call boundary).
pub(crate) mod note {
    pub const DELETE: u32 = 1;
    pub const WRITE: u32 = 1 << 1;
    pub const EXTEND: u32 = 1 << 2;
    pub const ATTRIB: u32 = 1 << 3;
    pub const LINK: u32 = 1 << 4;
    pub const RENAME: u32 = 1 << 5;
    pub const CLOSE_WRITE: u32 = 1 << 6;
}

/// What one descriptor watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Dir(PathBuf),
    File(FileKey),
}

/// Descriptor number → what it watches.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_ident: HashMap<usize, Target>,
}

impl Registry {
    pub fn insert(&mut self, ident: usize, target: Target) {
        self.by_ident.insert(ident, target);
    }

    #[cfg_attr(not(target_os = "freebsd"), allow(dead_code))] // used by the backend only
    pub fn remove(&mut self, ident: usize) -> Option<Target> {
        self.by_ident.remove(&ident)
    }

    /// Turns one batch of `(ident, changes)` into events, in the order each descriptor
    /// first appears. Returns the events and the descriptors whose watch must be dropped
    /// (they were forgotten here already; the caller closes them).
    pub fn translate(&mut self, batch: &[(usize, u32)]) -> (Vec<Event>, Vec<usize>) {
        let mut merged: Vec<(usize, u32)> = Vec::new();
        for &(ident, bits) in batch {
            match merged.iter_mut().find(|(i, _)| *i == ident) {
                Some((_, b)) => *b |= bits,
                None => merged.push((ident, bits)),
            }
        }
        let mut events = Vec::new();
        let mut dropped = Vec::new();
        for (ident, bits) in merged {
            let Some(target) = self.by_ident.get(&ident) else {
                continue; // closed since it was queued
            };
            let gone = bits & (note::DELETE | note::RENAME) != 0;
            let event = match target {
                Target::Dir(dir) => Event {
                    dir: Some(dir.clone()),
                    name: None,
                    kind: if gone { Kind::Gone } else { Kind::Listing },
                },
                Target::File(key) => Event {
                    dir: key.path.parent().map(|p| p.to_path_buf()),
                    name: key.path.file_name().map(|n| n.to_os_string()),
                    kind: if gone || bits & (note::CLOSE_WRITE | note::ATTRIB) != 0 {
                        Kind::Changed
                    } else {
                        Kind::Settling
                    },
                },
            };
            if gone {
                self.by_ident.remove(&ident);
                dropped.push(ident);
            }
            events.push(event);
        }
        (events, dropped)
    }
}

/// Which file watches to change so that exactly `want` is watched, given what is open:
/// `(to_close, to_open)`. A watch whose device or inode differs from what the monitor
/// last saw at its path (the path was replaced) is closed and opened again.
pub(crate) fn plan(
    open: &HashMap<PathBuf, FileKey>,
    want: &[FileKey],
) -> (Vec<PathBuf>, Vec<FileKey>) {
    let wanted: HashMap<&PathBuf, &FileKey> = want.iter().map(|k| (&k.path, k)).collect();
    let mut close = Vec::new();
    for (path, key) in open {
        match wanted.get(path) {
            Some(w) if *w == key => {}
            _ => close.push(path.clone()),
        }
    }
    let opens = want
        .iter()
        .filter(|k| open.get(&k.path) != Some(*k))
        .cloned()
        .collect();
    (close, opens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn key(p: &str, ino: u64) -> FileKey {
        FileKey {
            path: PathBuf::from(p),
            dev: 1,
            ino,
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.insert(3, Target::Dir("/v".into()));
        r.insert(4, Target::File(key("/v/a.ini", 10)));
        r.insert(5, Target::File(key("/v/b.ini", 11)));
        r
    }

    fn ev(dir: &str, name: Option<&str>, kind: Kind) -> Event {
        Event {
            dir: Some(dir.into()),
            name: name.map(OsString::from),
            kind,
        }
    }

    #[test]
    fn directory_changes_ask_for_a_listing() {
        let mut r = registry();
        let (evs, dropped) = r.translate(&[(3, note::WRITE), (3, note::LINK | note::EXTEND)]);
        assert_eq!(evs, [ev("/v", None, Kind::Listing)], "merged into one");
        assert!(dropped.is_empty());
    }

    #[test]
    fn a_moved_or_deleted_directory_is_gone_and_unwatched() {
        let mut r = registry();
        let (evs, dropped) = r.translate(&[(3, note::RENAME)]);
        assert_eq!(evs, [ev("/v", None, Kind::Gone)]);
        assert_eq!(dropped, [3]);
        assert!(r.translate(&[(3, note::WRITE)]).0.is_empty(), "forgotten");
    }

    #[test]
    fn file_edits_settle_until_closed() {
        let mut r = registry();
        let (evs, _) = r.translate(&[(4, note::WRITE | note::EXTEND)]);
        assert_eq!(evs, [ev("/v", Some("a.ini"), Kind::Settling)]);
        let (evs, _) = r.translate(&[(4, note::WRITE), (4, note::CLOSE_WRITE)]);
        assert_eq!(evs, [ev("/v", Some("a.ini"), Kind::Changed)]);
        let (evs, dropped) = r.translate(&[(5, note::ATTRIB)]);
        assert_eq!(
            evs,
            [ev("/v", Some("b.ini"), Kind::Changed)],
            "touch, chown"
        );
        assert!(dropped.is_empty());
    }

    #[test]
    fn a_replaced_or_removed_file_is_probed_and_its_watch_dropped() {
        let mut r = registry();
        // A rename-over: the old file gets NOTE_DELETE, the directory NOTE_WRITE.
        let (evs, dropped) = r.translate(&[(3, note::WRITE), (4, note::DELETE), (9, note::WRITE)]);
        assert_eq!(
            evs,
            [
                ev("/v", None, Kind::Listing),
                ev("/v", Some("a.ini"), Kind::Changed)
            ],
            "unknown descriptor 9 ignored"
        );
        assert_eq!(dropped, [4]);
    }

    #[test]
    fn plan_opens_closes_and_renews() {
        let mut open = HashMap::new();
        open.insert(PathBuf::from("/v/a.ini"), key("/v/a.ini", 10));
        open.insert(PathBuf::from("/v/b.ini"), key("/v/b.ini", 11));
        open.insert(PathBuf::from("/v/gone.ini"), key("/v/gone.ini", 12));
        // a.ini unchanged, b.ini replaced (new inode), gone.ini removed, c.ini new.
        let want = [
            key("/v/a.ini", 10),
            key("/v/b.ini", 99),
            key("/v/c.ini", 13),
        ];
        let (mut close, open_) = plan(&open, &want);
        close.sort();
        assert_eq!(
            close,
            [PathBuf::from("/v/b.ini"), PathBuf::from("/v/gone.ini")]
        );
        assert_eq!(open_, [key("/v/b.ini", 99), key("/v/c.ini", 13)]);
        assert_eq!(plan(&HashMap::new(), &[]), (vec![], vec![]));
    }
}
