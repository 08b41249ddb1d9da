//! `dir://PATH`: every config file directly inside one directory is a vassal, named by
//! its file name. inotify reports single entries (probed at once, or 50 ms after a bare
//! create so a file still being written is not started half-written); a full scan runs
//! when the Emperor asks (every `emperor-freq` seconds), on queue overflow, and when a
//! symlink target's directory changes (the template pattern: `x.ini -> app.skel`).
//! kqueue (FreeBSD) says only that the directory changed: the directory is listed again
//! 50 ms later, and every known config file is watched on its own for edits.

use crate::event::MonitorEvent;
use crate::track::{Tracker, stat_config};
use crate::watch::{Event, Kind, Watcher};
use crate::{FileOptions, Monitor, MonitorError};
use std::collections::{HashMap, HashSet};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a freshly created file may stay open for writing before it is probed anyway.
const CREATE_GRACE: Duration = Duration::from_millis(50);
/// Coalescing window for full rescans triggered by events.
const RESCAN_GRACE: Duration = Duration::from_millis(20);

pub struct DirMonitor {
    arg: String,
    path: PathBuf,
    real: PathBuf,
    opts: FileOptions,
    watcher: Option<Watcher>,
    tracker: Tracker,
    pending: HashMap<String, Instant>,
    rescan_at: Option<Instant>,
    link_dirs: HashSet<PathBuf>,
}

impl DirMonitor {
    pub fn new(arg: &str, path: &Path, opts: FileOptions) -> Result<DirMonitor, MonitorError> {
        let watcher = Watcher::new().map_err(MonitorError::Watch)?;
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(DirMonitor {
            arg: arg.to_owned(),
            path: path.to_owned(),
            real,
            opts,
            watcher: Some(watcher),
            tracker: Tracker::default(),
            pending: HashMap::new(),
            rescan_at: None,
            link_dirs: HashSet::new(),
        })
    }

    fn probe(&mut self, name: &str, out: &mut Vec<MonitorEvent>) {
        let seen = stat_config(&self.real.join(name), &self.opts);
        self.tracker.observe(name, seen, out);
    }

    /// Watches the known configs one by one where the backend needs it (kqueue).
    fn sync_files(&mut self, out: &mut Vec<MonitorEvent>) {
        self.tracker
            .sync_file_watches(self.watcher.as_mut(), Some(&self.real), out);
    }

    /// Turns a batch of backend events into monitor events: entries probed now or after
    /// the creation grace, listings and full scans scheduled (`rescan`: the watch was
    /// lost or the queue overflowed).
    fn on_events(&mut self, events: Vec<Event>, rescan: bool, now: Instant) -> Vec<MonitorEvent> {
        if rescan {
            return self.scan();
        }
        let mut out = Vec::new();
        for ev in events {
            let from_primary = ev.dir.as_deref() == Some(self.real.as_path());
            if !from_primary {
                // A symlink target's directory: a template may have changed.
                self.rescan_at.get_or_insert(now + RESCAN_GRACE);
                continue;
            }
            match ev.kind {
                // kqueue: some entry changed; list again once a new file had its grace.
                Kind::Listing => {
                    self.rescan_at.get_or_insert(now + CREATE_GRACE);
                    continue;
                }
                Kind::Gone => {
                    out.extend(self.scan());
                    return out;
                }
                Kind::Settling | Kind::Changed => {}
            }
            let Some(os) = ev.name else {
                // The directory itself was deleted or moved.
                out.extend(self.scan());
                return out;
            };
            let Some(name) = os.to_str().map(str::to_owned) else {
                continue;
            };
            match self.opts.names.check(&name) {
                Ok(()) => {}
                Err(crate::names::Rejection::Temporary) => continue,
                Err(crate::names::Rejection::NotConfig) => {
                    if !self.link_dirs.is_empty() || self.real_has_links() {
                        self.rescan_at.get_or_insert(now + RESCAN_GRACE);
                    }
                    continue;
                }
                Err(_) => {
                    self.tracker.admit(&self.opts.names, &name, &mut out);
                    continue;
                }
            }
            if ev.kind == Kind::Settling && !is_symlink(&self.real.join(&name)) {
                self.pending.entry(name).or_insert(now + CREATE_GRACE);
            } else {
                self.pending.remove(&name);
                self.probe(&name, &mut out);
            }
        }
        out
    }
}

impl Monitor for DirMonitor {
    fn arg(&self) -> &str {
        &self.arg
    }

    fn vassal_cwd(&self) -> &Path {
        &self.real
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.watcher.as_ref().map(Watcher::fd)
    }

    fn scan(&mut self) -> Vec<MonitorEvent> {
        let mut out = Vec::new();
        self.pending.clear();
        self.rescan_at = None;
        let key = "dir-unreadable";
        match std::fs::canonicalize(&self.path) {
            Ok(r) => self.real = r,
            Err(e) => {
                self.tracker.warn_once(
                    key,
                    format!(
                        "[emperor] unable to open the vassals directory {}: {e}",
                        self.path.display()
                    ),
                    &mut out,
                );
                self.tracker.sweep(&HashSet::new(), &mut out);
                return out;
            }
        }
        let rd = match std::fs::read_dir(&self.real) {
            Ok(rd) => rd,
            Err(e) => {
                self.tracker.warn_once(
                    key,
                    format!(
                        "[emperor] unable to read the vassals directory {}: {e}",
                        self.real.display()
                    ),
                    &mut out,
                );
                self.tracker.sweep(&HashSet::new(), &mut out);
                return out;
            }
        };
        self.tracker.clear_warning(key);
        let mut listed = HashSet::new();
        let mut link_dirs = HashSet::new();
        for entry in rd.flatten() {
            let os = entry.file_name();
            let Some(name) = os.to_str() else {
                let lossy = os.to_string_lossy().into_owned();
                if NameIsConfig::check(&self.opts, &lossy) {
                    self.tracker.warn_once(
                        &lossy,
                        format!("[emperor] invalid vassal name (not UTF-8): {lossy}"),
                        &mut out,
                    );
                }
                continue;
            };
            if !self.tracker.admit(&self.opts.names, name, &mut out) {
                continue;
            }
            let full = self.real.join(name);
            if !self.opts.nofollow
                && entry.file_type().map(|t| t.is_symlink()).unwrap_or(false)
                && let Ok(target) = std::fs::canonicalize(&full)
                && let Some(parent) = target.parent()
                && parent != self.real
            {
                link_dirs.insert(parent.to_owned());
            }
            let seen = stat_config(&full, &self.opts);
            if seen.is_some() {
                listed.insert(name.to_owned());
            }
            self.tracker.observe(name, seen, &mut out);
        }
        self.tracker.sweep(&listed, &mut out);
        self.link_dirs = link_dirs;
        if let Some(w) = self.watcher.as_mut() {
            let mut keep: HashSet<PathBuf> = self.link_dirs.clone();
            keep.insert(self.real.clone());
            for d in &keep {
                let _ = w.ensure(d);
            }
            w.retain(&keep);
        }
        self.sync_files(&mut out);
        out
    }

    fn on_readable(&mut self, now: Instant) -> Vec<MonitorEvent> {
        let Some(w) = self.watcher.as_mut() else {
            return Vec::new();
        };
        let (events, overflow) = w.drain();
        let primary_watched = w.is_watched(&self.real);
        let mut out = self.on_events(events, overflow || !primary_watched, now);
        self.sync_files(&mut out);
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().copied().chain(self.rescan_at).min()
    }

    fn on_deadline(&mut self, now: Instant) -> Vec<MonitorEvent> {
        if self.rescan_at.is_some_and(|t| t <= now) {
            return self.scan();
        }
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        let mut out = Vec::new();
        for name in due {
            self.pending.remove(&name);
            self.probe(&name, &mut out);
        }
        self.sync_files(&mut out);
        out
    }

    fn forget(&mut self, name: &str) {
        self.tracker.forget(name);
    }
}

impl DirMonitor {
    /// True when some vassal config in the directory is a symlink (templates may live in
    /// the directory itself, under a non-config name such as `app.skel`).
    fn real_has_links(&self) -> bool {
        // Cheap enough: only called for events on non-config names.
        std::fs::read_dir(&self.real)
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.file_type().map(|t| t.is_symlink()).unwrap_or(false)
                        && e.file_name()
                            .to_str()
                            .is_some_and(|n| self.opts.names.check(n).is_ok())
                })
            })
            .unwrap_or(false)
    }
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// Helper for names that are not UTF-8: only warn about ones that look like configs.
struct NameIsConfig;
impl NameIsConfig {
    fn check(opts: &FileOptions, lossy: &str) -> bool {
        opts.names.has_config_extension(lossy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MonitorEvent as E;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::time::SystemTime;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("imperium-dirmon-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(evs: &[E]) -> Vec<String> {
        evs.iter()
            .map(|e| match e {
                E::Touch(t) => format!("touch {}", t.name),
                E::Destroy { name } => format!("destroy {name}"),
                E::Warn(w) => format!("warn {w}"),
            })
            .collect()
    }

    #[test]
    fn add_change_delete() {
        let d = tmpdir("acd");
        fs::write(d.join("a.ini"), "[uwsgi]\n").unwrap();
        fs::write(d.join("readme.txt"), "x").unwrap();
        fs::create_dir(d.join("sub.ini")).unwrap();
        let mut m = DirMonitor::new("x", &d, FileOptions::default()).unwrap();
        assert_eq!(names(&m.scan()), ["touch a.ini"]);
        assert!(m.scan().is_empty(), "nothing changed");
        // Same second, same size, new content: the nanosecond mtime differs.
        fs::write(d.join("a.ini"), "[uwsgi]\n#").unwrap();
        assert_eq!(names(&m.scan()), ["touch a.ini"]);
        // mtime moved backwards.
        let f = fs::File::options()
            .write(true)
            .open(d.join("a.ini"))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
            .unwrap();
        drop(f);
        assert_eq!(names(&m.scan()), ["touch a.ini"]);
        // Atomic rename-over with identical metadata but a new inode.
        fs::write(d.join(".tmp"), "[uwsgi]\n#").unwrap();
        fs::rename(d.join(".tmp"), d.join("a.ini")).unwrap();
        assert_eq!(names(&m.scan()), ["touch a.ini"]);
        fs::remove_file(d.join("a.ini")).unwrap();
        assert_eq!(names(&m.scan()), ["destroy a.ini"]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn inotify_reports_single_entries() {
        let d = tmpdir("ino");
        let mut m = DirMonitor::new("x", &d, FileOptions::default()).unwrap();
        assert!(m.scan().is_empty());
        fs::write(d.join("b.ini"), "[uwsgi]\n").unwrap();
        fs::write(d.join(".b.ini.swp"), "x").unwrap();
        let evs = m.on_readable(Instant::now());
        assert_eq!(names(&evs), ["touch b.ini"]);
        fs::remove_file(d.join("b.ini")).unwrap();
        assert_eq!(names(&m.on_readable(Instant::now())), ["destroy b.ini"]);
        let _ = fs::remove_dir_all(&d);
    }

    /// The kqueue path on Linux: raw vnode notes for the directory and a config file go
    /// through the backend's translation ([`crate::watch::vnode`]) and the monitor, whose
    /// listings (after the creation grace) and probes turn them into monitor events.
    #[test]
    fn kqueue_batches_and_listings_become_monitor_events() {
        use crate::watch::vnode::{Registry, Target, note};
        use crate::watch::{FileKey, Kind};
        let d = tmpdir("kq");
        let mut m = DirMonitor::new("x", &d, FileOptions::default()).unwrap();
        assert!(m.scan().is_empty());
        let real = m.real.clone();
        let mut reg = Registry::default();
        reg.insert(3, Target::Dir(real.clone()));
        let t0 = Instant::now();

        // A new file: the directory changed, the monitor lists it once the grace is over.
        fs::write(d.join("a.ini"), "[uwsgi]\n").unwrap();
        let (evs, _) = reg.translate(&[(3, note::WRITE)]);
        assert_eq!(evs[0].kind, Kind::Listing);
        assert!(
            m.on_events(evs, false, t0).is_empty(),
            "not before the grace"
        );
        let due = m.next_deadline().expect("a listing is scheduled");
        assert_eq!(due, t0 + CREATE_GRACE);
        assert!(m.on_deadline(t0).is_empty());
        assert_eq!(names(&m.on_deadline(due)), ["touch a.ini"]);

        // The backend now watches a.ini itself: an edit in progress settles, its close
        // is probed at once (same size, same second: the nanoseconds differ).
        let ino = fs::metadata(d.join("a.ini")).unwrap().ino();
        let dev = fs::metadata(d.join("a.ini")).unwrap().dev();
        let key = FileKey {
            path: real.join("a.ini"),
            dev,
            ino,
        };
        reg.insert(4, Target::File(key));
        fs::write(d.join("a.ini"), "[uwsgi]\n#\n").unwrap();
        let (evs, _) = reg.translate(&[(4, note::WRITE | note::EXTEND)]);
        assert!(
            m.on_events(evs, false, t0).is_empty(),
            "still being written"
        );
        let (evs, _) = reg.translate(&[(4, note::CLOSE_WRITE)]);
        assert_eq!(names(&m.on_events(evs, false, t0)), ["touch a.ini"]);
        assert!(m.pending.is_empty(), "the settling probe was superseded");

        // A rename-over: the old file's NOTE_DELETE (its watch dropped) and the
        // directory's NOTE_WRITE in one batch; the listing afterwards finds nothing more.
        fs::write(d.join(".a.ini.new"), "[uwsgi]\n#\n").unwrap();
        fs::rename(d.join(".a.ini.new"), d.join("a.ini")).unwrap();
        let (evs, dropped) = reg.translate(&[(3, note::WRITE), (4, note::DELETE)]);
        assert_eq!(dropped, [4]);
        assert_eq!(names(&m.on_events(evs, false, t0)), ["touch a.ini"]);
        let due = m.next_deadline().unwrap();
        assert!(m.on_deadline(due).is_empty());

        // Removed: seen by the listing (no file watch is left to report it).
        fs::remove_file(d.join("a.ini")).unwrap();
        let (evs, _) = reg.translate(&[(3, note::WRITE)]);
        assert!(m.on_events(evs, false, t0).is_empty());
        let due = m.next_deadline().unwrap();
        assert_eq!(names(&m.on_deadline(due)), ["destroy a.ini"]);

        // The directory itself renamed away: a full scan at once, its watch dropped.
        fs::write(d.join("b.ini"), "").unwrap();
        let (evs, dropped) = reg.translate(&[(3, note::RENAME)]);
        assert_eq!(dropped, [3]);
        assert_eq!(names(&m.on_events(evs, false, t0)), ["touch b.ini"]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn long_names_are_reported_once() {
        let d = tmpdir("long");
        let long = format!("{}.ini", "x".repeat(251));
        fs::write(d.join(&long), "").unwrap();
        let mut m = DirMonitor::new("x", &d, FileOptions::default()).unwrap();
        let evs = m.scan();
        assert_eq!(evs.len(), 1);
        assert!(matches!(&evs[0], E::Warn(w) if w.contains("invalid vassal name")));
        assert!(m.scan().is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn symlink_templates() {
        let d = tmpdir("links");
        fs::write(d.join("app.skel"), "[uwsgi]\n").unwrap();
        std::os::unix::fs::symlink("app.skel", d.join("x.ini")).unwrap();
        std::os::unix::fs::symlink("app.skel", d.join("y.ini")).unwrap();
        let mut m = DirMonitor::new("x", &d, FileOptions::default()).unwrap();
        let mut got = names(&m.scan());
        got.sort();
        assert_eq!(got, ["touch x.ini", "touch y.ini"]);
        fs::write(d.join("app.skel"), "[uwsgi]\n#changed\n").unwrap();
        let mut got = names(&m.scan());
        got.sort();
        assert_eq!(got, ["touch x.ini", "touch y.ini"]);
        let _ = fs::remove_dir_all(&d);
    }
}
