//! `glob://PATTERN` (or any plain value that is not a single directory): every regular
//! file matching a shell pattern is a vassal, named by the matched path. The pattern is
//! resolved against the Emperor's start-up directory (the Emperor never changes its own
//! working directory). inotify watches every directory that can hold a match or lead to
//! one; any event there triggers a full rescan (coalesced; delayed 50 ms after a bare
//! create so a file still being written is not started half-written). With kqueue
//! (FreeBSD) the same directories are watched, and every matched file on its own.

use crate::event::MonitorEvent;
use crate::spec::has_magic;
use crate::track::{Tracker, stat_config};
use crate::watch::{Event, Kind, Watcher};
use crate::{FileOptions, Monitor, MonitorError};
use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CREATE_GRACE: Duration = Duration::from_millis(50);

fn match_options() -> glob::MatchOptions {
    // As glob(3): `*` never matches a leading dot or a slash.
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    }
}

pub struct GlobMonitor {
    arg: String,
    pattern: String,
    cwd: PathBuf,
    opts: FileOptions,
    watcher: Option<Watcher>,
    tracker: Tracker,
    rescan_at: Option<Instant>,
}

impl GlobMonitor {
    pub fn new(
        arg: &str,
        pattern: &str,
        opts: FileOptions,
        startup_cwd: &Path,
    ) -> Result<GlobMonitor, MonitorError> {
        glob::Pattern::new(pattern).map_err(|e| MonitorError::BadPattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        let watcher = Watcher::new().map_err(MonitorError::Watch)?;
        Ok(GlobMonitor {
            arg: arg.to_owned(),
            pattern: pattern.to_owned(),
            cwd: startup_cwd.to_owned(),
            opts,
            watcher: Some(watcher),
            tracker: Tracker::default(),
            rescan_at: None,
        })
    }

    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        match glob::glob_with(pattern, match_options()) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Every directory where a change can add or remove a match: the literal prefix of
    /// the pattern and every directory matching a longer prefix.
    fn watch_dirs(&self) -> HashSet<PathBuf> {
        let comps: Vec<&str> = self.pattern.split('/').collect();
        let mut dirs = HashSet::new();
        let join = |n: usize| -> String {
            let s = comps[..n].join("/");
            if s.is_empty() {
                if self.pattern.starts_with('/') {
                    "/".to_owned()
                } else {
                    ".".to_owned()
                }
            } else {
                s
            }
        };
        let first_magic = comps
            .iter()
            .position(|c| has_magic(c))
            .unwrap_or(comps.len().saturating_sub(1));
        dirs.insert(PathBuf::from(join(first_magic)));
        for k in first_magic + 1..comps.len() {
            for p in self.glob(&join(k)) {
                if p.is_dir() {
                    dirs.insert(p);
                }
            }
        }
        dirs
    }
}

impl Monitor for GlobMonitor {
    fn arg(&self) -> &str {
        &self.arg
    }

    fn vassal_cwd(&self) -> &Path {
        &self.cwd
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.watcher.as_ref().map(Watcher::fd)
    }

    fn scan(&mut self) -> Vec<MonitorEvent> {
        self.rescan_at = None;
        let mut out = Vec::new();
        let mut listed = HashSet::new();
        for path in self.glob(&self.pattern) {
            let Some(name) = path.to_str().map(str::to_owned) else {
                continue;
            };
            if !self.tracker.admit(&self.opts.names, &name, &mut out) {
                continue;
            }
            let seen = stat_config(&path, &self.opts);
            if seen.is_some() {
                listed.insert(name.clone());
            }
            self.tracker.observe(&name, seen, &mut out);
        }
        self.tracker.sweep(&listed, &mut out);
        let keep = self.watch_dirs();
        if let Some(w) = self.watcher.as_mut() {
            for d in &keep {
                let _ = w.ensure(d);
            }
            w.retain(&keep);
        }
        // Names are the matched paths (relative to the Emperor's unchanging cwd).
        self.tracker
            .sync_file_watches(self.watcher.as_mut(), None, &mut out);
        out
    }

    fn on_readable(&mut self, now: Instant) -> Vec<MonitorEvent> {
        let Some(w) = self.watcher.as_mut() else {
            return Vec::new();
        };
        let (events, overflow) = w.drain();
        self.on_events(&events, overflow, now)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.rescan_at
    }

    fn on_deadline(&mut self, now: Instant) -> Vec<MonitorEvent> {
        if self.rescan_at.is_some_and(|t| t <= now) {
            return self.scan();
        }
        Vec::new()
    }

    fn forget(&mut self, name: &str) {
        self.tracker.forget(name);
    }
}

impl GlobMonitor {
    /// Turns a batch of backend events into a rescan now (a change) or after the
    /// creation grace (a creation, a kqueue directory change); editor temporaries and
    /// hidden files are ignored.
    fn on_events(&mut self, events: &[Event], overflow: bool, now: Instant) -> Vec<MonitorEvent> {
        if overflow {
            return self.scan();
        }
        let mut now_needed = false;
        let mut later_needed = false;
        for ev in events {
            if let Some(n) = ev.name.as_ref().and_then(|n| n.to_str())
                && matches!(
                    self.opts.names.check(n),
                    Err(crate::names::Rejection::Temporary)
                )
            {
                continue;
            }
            match ev.kind {
                Kind::Settling | Kind::Listing => later_needed = true,
                Kind::Changed | Kind::Gone => now_needed = true,
            }
        }
        if now_needed {
            return self.scan();
        }
        if later_needed {
            self.rescan_at.get_or_insert(now + CREATE_GRACE);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MonitorEvent as E;
    use crate::watch::FileKey;
    use crate::watch::vnode::{Registry, Target, note};
    use std::fs;

    fn names(evs: &[E]) -> Vec<String> {
        let mut v: Vec<String> = evs
            .iter()
            .map(|e| match e {
                E::Touch(t) => format!("touch {}", t.name),
                E::Destroy { name } => format!("destroy {name}"),
                E::Warn(w) => format!("warn {w}"),
            })
            .collect();
        v.sort();
        v
    }

    /// The kqueue path on Linux: a directory change is a rescan after the grace, a
    /// finished edit of a matched file (its own watch) a rescan at once.
    #[test]
    fn kqueue_events_become_rescans() {
        let d = std::env::temp_dir().join(format!("imperium-globmon-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("a")).unwrap();
        let pattern = format!("{}/*/app.ini", d.display());
        let mut m = GlobMonitor::new("x", &pattern, FileOptions::default(), &d).unwrap();
        assert!(m.scan().is_empty());
        let mut reg = Registry::default();
        reg.insert(3, Target::Dir(d.join("a")));
        let t0 = Instant::now();
        let file = d.join("a/app.ini");
        fs::write(&file, "[uwsgi]\n").unwrap();
        let (evs, _) = reg.translate(&[(3, note::WRITE)]);
        assert!(m.on_events(&evs, false, t0).is_empty());
        assert_eq!(m.next_deadline(), Some(t0 + CREATE_GRACE));
        let name = file.to_string_lossy().into_owned();
        assert_eq!(
            names(&m.on_deadline(t0 + CREATE_GRACE)),
            [format!("touch {name}")]
        );
        use std::os::unix::fs::MetadataExt;
        let md = fs::metadata(&file).unwrap();
        reg.insert(
            4,
            Target::File(FileKey {
                path: file.clone(),
                dev: md.dev(),
                ino: md.ino(),
            }),
        );
        fs::write(&file, "[uwsgi]\n#\n").unwrap();
        let (evs, _) = reg.translate(&[(4, note::WRITE | note::CLOSE_WRITE)]);
        assert_eq!(
            names(&m.on_events(&evs, false, t0)),
            [format!("touch {name}")]
        );
        fs::remove_file(&file).unwrap();
        let (evs, _) = reg.translate(&[(4, note::DELETE), (3, note::WRITE)]);
        assert_eq!(
            names(&m.on_events(&evs, false, t0)),
            [format!("destroy {name}")]
        );
        let _ = fs::remove_dir_all(&d);
    }
}
