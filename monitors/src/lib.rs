//! Imperial monitors: where vassal configurations come from. Every monitor yields the same
//! stream of [`MonitorEvent`]s for the Emperor: `Touch` (a vassal config appeared or
//! changed: name, stamp, owner, mtime, optional pushed config and on-demand socket) and
//! `Destroy` (it disappeared).
//!
//! Built now: `dir://` ([`dir::DirMonitor`]) and `glob://` ([`glob::GlobMonitor`]), both
//! event-driven through inotify (kqueue on FreeBSD) with a full rescan (driven by the Emperor every
//! `emperor-freq` seconds) as the safety net. Change detection compares a [`Stamp`]
//! (device, inode, mtime in nanoseconds, size, owner), so two edits in the same second, an
//! mtime moved backwards and an atomic rename-over are all seen.
//!
//! The database and queue monitors (`pg://`, `mongodb://`, `mongodb2://`, `amqp://`,
//! `amqps://`, `zmq://`) use async drivers, which need a runtime with threads or at least
//! an executor the Emperor does not have. They run in a helper process each ([`helper`]:
//! the same binary in a hidden role) and stream frames ([`feed`]) over a pipe to
//! [`remote::RemoteMonitor`], which validates names and rows, fills `Touch::config`
//! (pushed config), `Touch::socket` and the owner, and restarts a helper that died.
//!
//! Design: monitors are plain synchronous objects driven by the Emperor's single-threaded
//! event loop. A monitor exposes at most one pollable descriptor ([`Monitor::fd`]) and an
//! optional deadline ([`Monitor::next_deadline`]) for debounced work; it never blocks and
//! never spawns threads.

pub mod dir;
pub mod error;
pub mod event;
pub mod feed;
pub mod glob;
pub mod helper;
pub mod names;
mod poller;
pub mod remote;
pub mod spec;
mod track;
mod watch;

pub use error::MonitorError;
pub use event::{MonitorEvent, Stamp, Touch};
pub use names::NameRules;
pub use spec::{MonitorSpec, parse as parse_spec};

use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Instant;

/// Options every file monitor honours.
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    /// Which names are vassal configs (`emperor-extra-extension`).
    pub names: NameRules,
    /// `emperor-nofollow`: stamp symlinks themselves (lstat) and accept them.
    pub nofollow: bool,
    /// `emperor-tyrant-nofollow`: take the owner from the link itself.
    pub owner_nofollow: bool,
    /// `emperor-tyrant`: database/queue monitors require uid and gid and refuse 0.
    pub tyrant: bool,
    /// `emperor-freq`: how often poll monitors (pg, mongodb) query (zero: 3 s).
    pub freq: std::time::Duration,
}

/// One imperial monitor.
pub trait Monitor {
    /// The `--emperor` argument exactly as given (reported in stats as `monitor`).
    fn arg(&self) -> &str;
    /// The working directory its vassals start in.
    fn vassal_cwd(&self) -> &Path;
    /// Where the config file of `name` lives (for sidecar files such as the on-demand
    /// socket extension).
    fn config_path(&self, name: &str) -> std::path::PathBuf {
        self.vassal_cwd().join(name)
    }
    /// A descriptor to watch for readability, if the monitor is event-driven.
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// A full scan: compares everything with what was known and reports differences.
    fn scan(&mut self) -> Vec<MonitorEvent>;
    /// Called when [`Monitor::fd`] is readable.
    fn on_readable(&mut self, now: Instant) -> Vec<MonitorEvent>;
    /// The next time [`Monitor::on_deadline`] wants to run (debounced probes).
    fn next_deadline(&self) -> Option<Instant>;
    /// Runs the work that was due at [`Monitor::next_deadline`].
    fn on_deadline(&mut self, now: Instant) -> Vec<MonitorEvent>;
    /// Forgets a name so that the next scan reports it as new (used after a vassal was
    /// removed while its config still exists, to get it back).
    fn forget(&mut self, name: &str);
}

/// Builds the monitor for one `--emperor` value.
pub fn build(
    arg: &str,
    opts: &FileOptions,
    startup_cwd: &Path,
) -> Result<Box<dyn Monitor>, MonitorError> {
    match spec::parse(arg)? {
        MonitorSpec::Dir(path) => Ok(Box::new(dir::DirMonitor::new(arg, &path, opts.clone())?)),
        MonitorSpec::Glob(pattern) => Ok(Box::new(glob::GlobMonitor::new(
            arg,
            &pattern,
            opts.clone(),
            startup_cwd,
        )?)),
        MonitorSpec::Remote(scheme) => {
            helper::validate(arg)?;
            let mut opts = opts.clone();
            if opts.freq.is_zero() {
                opts.freq = std::time::Duration::from_secs(3);
            }
            Ok(Box::new(remote::RemoteMonitor::new(
                arg,
                &scheme,
                opts,
                startup_cwd,
            )?))
        }
    }
}
