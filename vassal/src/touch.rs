//! `touch-reload`, `touch-workers-reload`, `touch-chain-reload`: files the master watches
//! on each check; a changed modification time, a file created or a file removed triggers
//! the reload. Times are compared with nanoseconds (uWSGI compares whole seconds, so a
//! touch in the same second as the start is missed there).

use crate::vlog;
use std::path::PathBuf;
use std::time::SystemTime;

/// One watched file and what was last seen of it.
#[derive(Debug)]
struct Watched {
    path: PathBuf,
    /// `Some(mtime)` when it existed, `None` when it did not.
    seen: Option<SystemTime>,
}

/// A list of watched files (one option's values).
#[derive(Debug, Default)]
pub struct Touches {
    files: Vec<Watched>,
}

fn mtime(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Touches {
    /// Starts watching `paths` (their current state is the reference).
    pub fn new(paths: &[PathBuf]) -> Touches {
        let files = paths
            .iter()
            .map(|p| {
                let seen = mtime(p);
                if seen.is_none() {
                    vlog!("unable to stat() {}, events will be triggered as soon as the file is created", p.display());
                }
                Watched { path: p.clone(), seen }
            })
            .collect();
        Touches { files }
    }

    /// The first file that changed since the last check, if any (every change is consumed).
    pub fn check(&mut self) -> Option<PathBuf> {
        let mut hit = None;
        for w in &mut self.files {
            let now = mtime(&w.path);
            if now != w.seen {
                w.seen = now;
                hit.get_or_insert_with(|| w.path.clone());
            }
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_create_and_remove_trigger() {
        let dir = std::env::temp_dir().join(format!("imperium-touch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t");
        let mut t = Touches::new(std::slice::from_ref(&f));
        assert_eq!(t.check(), None);
        std::fs::write(&f, "1").unwrap();
        assert_eq!(t.check(), Some(f.clone()));
        assert_eq!(t.check(), None);
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(t.check(), Some(f.clone()));
        std::fs::remove_file(&f).unwrap();
        assert_eq!(t.check(), Some(f.clone()));
        assert_eq!(t.check(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
