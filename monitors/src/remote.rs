//! The Emperor side of a helper-backed monitor (`pg://`, `mongodb://`, `mongodb2://`,
//! `amqp://`, `amqps://`, `zmq://`): it starts the helper process (the `imperium` binary
//! re-executed in the monitor role, [`crate::helper`]), reads its frames from a pipe, checks
//! every name and row, turns snapshots into touch/destroy by comparing them with what it
//! reported before, and restarts a helper that died, with backoff. Running vassals never
//! depend on the helper: a helper that crashes, or a database that is down, changes nothing.
//!
//! The descriptor the Emperor watches is a small epoll instance (kqueue on FreeBSD) of this
//! monitor's own ([`crate::poller`]), so it stays the same when the helper (and so its
//! pipe) is replaced.

use crate::event::{MonitorEvent, Stamp, Touch};
use crate::feed::{Entry, Frame, FrameReader};
use crate::names::MAX_NAME;
use crate::poller::Poller;
use crate::{FileOptions, Monitor, MonitorError};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The largest pushed config accepted (imperium vassals have no 64 KiB limit; this bounds
/// what a row or a message can make the Emperor hold in memory per vassal).
pub const MAX_CONFIG: usize = 512 * 1024;

/// Environment variables of the helper role (read first thing by `src/main.rs`).
pub const ROLE_ENV: &str = "IMPERIUM_MONITOR";
pub const FREQ_ENV: &str = "IMPERIUM_MONITOR_FREQ";
pub const PARENT_ENV: &str = "IMPERIUM_MONITOR_PARENT";

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A helper that lived this long restarts without delay growth.
const HEALTHY: Duration = Duration::from_secs(30);

/// What was reported for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    ts: i64,
    uid: u32,
    gid: u32,
    config: u64,
    socket: Option<String>,
}

pub struct RemoteMonitor {
    /// The real argument (handed to the helper only).
    arg: String,
    /// The argument without passwords (stats, logs).
    shown: String,
    scheme: String,
    cwd: PathBuf,
    opts: FileOptions,
    poller: Poller,
    child: Option<Child>,
    pipe: Option<OwnedFd>,
    reader: FrameReader,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: Duration,
    known: HashMap<String, Known>,
    snapshot: Option<HashSet<String>>,
    warned: HashSet<String>,
    pending: Vec<MonitorEvent>,
}

impl RemoteMonitor {
    pub fn new(
        arg: &str,
        scheme: &str,
        opts: FileOptions,
        cwd: &Path,
    ) -> Result<RemoteMonitor, MonitorError> {
        let mut m = Self::unstarted(arg, scheme, opts, cwd)?;
        m.start_helper();
        Ok(m)
    }

    /// The monitor before its helper process is started.
    fn unstarted(
        arg: &str,
        scheme: &str,
        opts: FileOptions,
        cwd: &Path,
    ) -> Result<RemoteMonitor, MonitorError> {
        let poller = Poller::new().map_err(MonitorError::Helper)?;
        Ok(RemoteMonitor {
            arg: arg.to_owned(),
            shown: redact(arg),
            scheme: scheme.to_owned(),
            cwd: cwd.to_owned(),
            opts,
            poller,
            child: None,
            pipe: None,
            reader: FrameReader::default(),
            started: Instant::now(),
            restart_at: None,
            backoff: FIRST_BACKOFF,
            known: HashMap::new(),
            snapshot: None,
            warned: HashSet::new(),
            pending: Vec::new(),
        })
    }

    fn start_helper(&mut self) {
        self.restart_at = None;
        self.reader.clear();
        self.snapshot = None;
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return self.helper_failed(format!("cannot find my own executable: {e}")),
        };
        let mut cmd = Command::new(exe);
        {
            use std::os::unix::process::CommandExt;
            // The argument (it may hold a password) goes through the environment, not argv.
            cmd.arg0(format!("imperium [{} monitor]", self.scheme));
        }
        cmd.env(ROLE_ENV, &self.arg)
            .env(FREQ_ENV, self.opts.freq.as_millis().to_string())
            .env(PARENT_ENV, std::process::id().to_string())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("UWSGI_EMPEROR_FD")
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match cmd.spawn() {
            Ok(mut child) => {
                let Some(out) = child.stdout.take() else {
                    return self.helper_failed("no pipe".into());
                };
                let fd = OwnedFd::from(out);
                let _ = nix::fcntl::fcntl(
                    &fd,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                if let Err(e) = self.poller.add(fd.as_fd()) {
                    let _ = child.kill();
                    return self.helper_failed(format!("{}: {e}", crate::poller::ADD_CALL));
                }
                self.log(format!(
                    "[emperor] {} monitor helper started (pid: {})",
                    self.scheme,
                    child.id()
                ));
                self.pipe = Some(fd);
                self.child = Some(child);
                self.started = Instant::now();
            }
            Err(e) => self.helper_failed(format!("cannot start the monitor helper: {e}")),
        }
    }

    fn helper_failed(&mut self, why: String) {
        if let Some(p) = self.pipe.take() {
            let _ = self.poller.delete(p.as_fd());
        }
        self.child = None;
        self.reader.clear();
        self.snapshot = None;
        if self.started.elapsed() >= HEALTHY {
            self.backoff = FIRST_BACKOFF;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.restart_at = Some(Instant::now() + wait);
        self.log(format!(
            "[emperor] {} monitor helper: {why}; restarting it in {} s (running vassals are not touched)",
            self.scheme,
            wait.as_secs()
        ));
    }

    fn log(&mut self, msg: String) {
        self.pending.push(MonitorEvent::Warn(msg));
    }

    fn warn_once(&mut self, key: String, msg: String) {
        if self.warned.insert(key) {
            self.pending.push(MonitorEvent::Warn(msg));
        }
    }

    /// Checks one entry; a usable one comes back as (name, touch).
    fn admit(&mut self, e: Entry) -> Result<(String, Touch), Option<String>> {
        let allow_path = e.config.is_none() && self.scheme.starts_with("amqp");
        let name = match check_name(&self.opts, &e.name, allow_path) {
            Ok(n) => n,
            Err(why) => {
                let shown = String::from_utf8_lossy(&e.name).escape_debug().to_string();
                self.warn_once(
                    format!("name:{shown}:{why}"),
                    format!(
                        "[emperor] {}: invalid vassal name \"{shown}\" ({why}): skipped",
                        self.scheme
                    ),
                );
                return Err(String::from_utf8(e.name).ok());
            }
        };
        if let Some(c) = &e.config
            && c.len() > MAX_CONFIG
        {
            self.warn_once(format!("big:{name}"), format!("[emperor] {}: the config of vassal {name} is larger than {MAX_CONFIG} bytes: skipped", self.scheme));
            return Err(Some(name));
        }
        let (uid, gid) = match (e.uid, e.gid) {
            (Some(u), Some(g)) => (u, g),
            _ if self.opts.tyrant => {
                self.warn_once(
                    format!("owner:{name}"),
                    format!(
                        "[emperor-tyrant] {}: vassal {name} has no uid/gid: skipped",
                        self.scheme
                    ),
                );
                return Err(Some(name));
            }
            (u, g) => (u.unwrap_or(0), g.unwrap_or(0)),
        };
        if self.opts.tyrant && (uid == 0 || gid == 0) {
            self.warn_once(format!("root:{name}:{uid}:{gid}"), format!("[emperor-tyrant] {}: invalid permissions for vassal {name} (uid {uid} gid {gid}): refused", self.scheme));
            return Err(Some(name));
        }
        let socket = match e.socket.map(String::from_utf8) {
            None => None,
            Some(Ok(s)) if s.is_empty() => None,
            Some(Ok(s)) if !s.contains('\0') => Some(s),
            Some(_) => {
                self.warn_once(format!("sock:{name}"), format!("[emperor] {}: the on-demand socket of vassal {name} is not a valid name: skipped", self.scheme));
                return Err(Some(name));
            }
        };
        self.clear_warnings(&name);
        let t = Touch {
            name: name.clone(),
            stamp: Stamp {
                mtime_sec: e.ts,
                size: e.config.as_ref().map_or(0, |c| c.len() as u64),
                uid,
                gid,
                ..Stamp::default()
            },
            uid,
            gid,
            mtime: e.ts,
            config: e.config,
            socket,
        };
        Ok((name, t))
    }

    fn clear_warnings(&mut self, name: &str) {
        if !self.warned.is_empty() {
            let tail = format!(":{name}");
            self.warned
                .retain(|k| !(k.ends_with(&tail) || k.contains(&format!(":{name}:"))));
        }
    }

    fn known_of(t: &Touch) -> Known {
        let mut h = DefaultHasher::new();
        t.config.hash(&mut h);
        Known {
            ts: t.mtime,
            uid: t.uid,
            gid: t.gid,
            config: h.finish(),
            socket: t.socket.clone(),
        }
    }

    fn on_frame(&mut self, f: Frame, out: &mut Vec<MonitorEvent>) {
        match f {
            Frame::SnapshotBegin => self.snapshot = Some(HashSet::new()),
            Frame::Row(e) => {
                let admitted = self.admit(e);
                let Some(listed) = self.snapshot.as_mut() else {
                    return;
                };
                match admitted {
                    Ok((name, t)) => {
                        if !listed.insert(name.clone()) {
                            return; // a duplicate row: the first one wins
                        }
                        let k = Self::known_of(&t);
                        // uWSGI reloads when ts grows; a changed text or owner counts too.
                        let changed = match self.known.get(&name) {
                            None => true,
                            Some(old) => {
                                k.ts > old.ts
                                    || k.config != old.config
                                    || (k.uid, k.gid) != (old.uid, old.gid)
                                    || k.socket != old.socket
                            }
                        };
                        if changed {
                            self.known.insert(name, k);
                            out.push(MonitorEvent::Touch(t));
                        }
                    }
                    Err(Some(name)) => {
                        listed.insert(name);
                    }
                    Err(None) => {}
                }
            }
            Frame::Keep(n) => {
                if let (Some(listed), Ok(name)) = (self.snapshot.as_mut(), String::from_utf8(n)) {
                    listed.insert(name);
                }
            }
            Frame::SnapshotEnd => {
                let Some(listed) = self.snapshot.take() else {
                    return;
                };
                crate::track::sweep(&mut self.known, &listed, out);
            }
            Frame::Touch(e) => {
                if let Ok((name, t)) = self.admit(e) {
                    self.known.insert(name, Self::known_of(&t));
                    out.push(MonitorEvent::Touch(t));
                }
            }
            Frame::Destroy(n) => {
                match String::from_utf8(n) {
                    Ok(name) => {
                        self.known.remove(&name);
                        out.push(MonitorEvent::Destroy { name });
                    }
                    Err(e) => {
                        let shown = String::from_utf8_lossy(e.as_bytes())
                            .escape_debug()
                            .to_string();
                        self.warn_once(format!("name:{shown}"), format!("[emperor] {}: invalid vassal name \"{shown}\" (not UTF-8): skipped", self.scheme));
                    }
                }
            }
        }
    }

    /// Feeds raw frames as if the helper had sent them (unit tests).
    #[cfg(test)]
    fn feed(&mut self, frames: Vec<Frame>) -> Vec<MonitorEvent> {
        let mut out = Vec::new();
        for f in frames {
            self.on_frame(f, &mut out);
        }
        out.extend(std::mem::take(&mut self.pending));
        out
    }
}

/// Checks a name that came from a database row or a message: a bare name (no `/`), except
/// `allow_path` (an AMQP message carrying a config file path, uWSGI's path form), where
/// a path is allowed; `..` never is.
pub fn check_name(
    opts: &FileOptions,
    raw: &[u8],
    allow_path: bool,
) -> Result<String, &'static str> {
    let name = std::str::from_utf8(raw).map_err(|_| "not UTF-8")?;
    if name.is_empty() {
        return Err("empty");
    }
    if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("contains a control character or NUL");
    }
    if name.len() > MAX_NAME {
        return Err("longer than 254 bytes");
    }
    if name.split('/').any(|c| c == "..") {
        return Err("path traversal");
    }
    if !allow_path && name.contains('/') {
        return Err("contains '/'");
    }
    if !opts.names.has_config_extension(name) {
        return Err("no config extension");
    }
    Ok(name.to_owned())
}

/// The argument with its passwords hidden: `user:***@` in URIs, `password=***` in a
/// conninfo or a mongodb2:// key list.
pub fn redact(arg: &str) -> String {
    let mut out = arg.to_owned();
    // URI userinfo: scheme://user:secret@host (also inside pg://postgresql://...).
    let mut from = 0;
    while let Some(i) = out[from..].find("://").map(|i| i + from + 3) {
        let rest = &out[i..];
        let end = rest.find(['/', '?', ';', ',', ' ']).unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            out.replace_range(i + colon + 1..i + at, "***");
        }
        from = i;
    }
    // password=... up to a blank, a comma or a semicolon (quoted values too).
    let mut from = 0;
    while let Some(i) = out[from..].find("password=").map(|i| i + from + 9) {
        let rest = &out[i..];
        let end = if rest.starts_with('\'') {
            rest[1..].find('\'').map_or(rest.len(), |j| j + 2)
        } else {
            rest.find([' ', ',', ';', '&']).unwrap_or(rest.len())
        };
        out.replace_range(i..i + end, "***");
        from = i + 3;
    }
    out
}

impl Monitor for RemoteMonitor {
    fn arg(&self) -> &str {
        &self.shown
    }

    fn vassal_cwd(&self) -> &Path {
        &self.cwd
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.poller.fd())
    }

    fn scan(&mut self) -> Vec<MonitorEvent> {
        // The helper polls on its own (every emperor-freq, or at once on NOTIFY).
        std::mem::take(&mut self.pending)
    }

    fn on_readable(&mut self, _now: Instant) -> Vec<MonitorEvent> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut dead = None;
        // Bounded per wake-up; level-triggered epoll brings us back for the rest.
        for _ in 0..32 {
            let Some(p) = &self.pipe else { break };
            match nix::unistd::read(p, &mut buf) {
                Ok(0) => {
                    dead = Some("exited".to_owned());
                    break;
                }
                Ok(n) => self.reader.push(&buf[..n]),
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    dead = Some(format!("read(): {e}"));
                    break;
                }
            }
        }
        loop {
            match self.reader.next_frame() {
                Ok(Some(f)) => self.on_frame(f, &mut out),
                Ok(None) => break,
                Err(e) => {
                    if let Some(c) = self.child.as_mut() {
                        let _ = c.kill();
                    }
                    dead = Some(format!("protocol error ({e})"));
                    break;
                }
            }
        }
        if let Some(why) = dead {
            let pid = self.child.as_ref().map_or(0, Child::id);
            self.helper_failed(format!("pid {pid} {why}"));
        }
        self.poller.settle();
        out.extend(std::mem::take(&mut self.pending));
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.restart_at
    }

    fn on_deadline(&mut self, now: Instant) -> Vec<MonitorEvent> {
        if self.restart_at.is_some_and(|t| t <= now) {
            self.start_helper();
        }
        std::mem::take(&mut self.pending)
    }

    fn forget(&mut self, name: &str) {
        self.known.remove(name);
    }
}

impl Drop for RemoteMonitor {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(tyrant: bool) -> RemoteMonitor {
        let opts = FileOptions {
            tyrant,
            ..FileOptions::default()
        };
        RemoteMonitor::unstarted("test://", "test", opts, Path::new("/")).unwrap()
    }

    fn row(name: &str, cfg: &str, ts: i64) -> Frame {
        Frame::Row(Entry {
            name: name.into(),
            config: Some(cfg.into()),
            ts,
            ..Entry::default()
        })
    }

    fn names(evs: &[MonitorEvent]) -> Vec<String> {
        evs.iter()
            .map(|e| match e {
                MonitorEvent::Touch(t) => format!("+{}", t.name),
                MonitorEvent::Destroy { name } => format!("-{name}"),
                MonitorEvent::Warn(_) => "warn".into(),
            })
            .collect()
    }

    #[test]
    fn snapshots_add_reload_stop() {
        let mut m = monitor(false);
        let e = m.feed(vec![
            Frame::SnapshotBegin,
            row("a.ini", "x", 1),
            row("b.ini", "y", 1),
            Frame::SnapshotEnd,
        ]);
        assert_eq!(names(&e), ["+a.ini", "+b.ini"]);
        // Same rows: nothing. Older ts with the same text: nothing.
        let e = m.feed(vec![
            Frame::SnapshotBegin,
            row("a.ini", "x", 0),
            row("b.ini", "y", 1),
            Frame::SnapshotEnd,
        ]);
        assert!(e.is_empty());
        // Newer ts reloads a; b gone.
        let e = m.feed(vec![
            Frame::SnapshotBegin,
            row("a.ini", "x", 5),
            Frame::SnapshotEnd,
        ]);
        assert_eq!(names(&e), ["+a.ini", "-b.ini"]);
        // An unfinished snapshot removes nothing.
        let e = m.feed(vec![Frame::SnapshotBegin]);
        assert!(e.is_empty());
    }

    #[test]
    fn bad_rows_keep_what_runs() {
        let mut m = monitor(false);
        m.feed(vec![
            Frame::SnapshotBegin,
            row("a.ini", "x", 1),
            Frame::SnapshotEnd,
        ]);
        let big = "x".repeat(MAX_CONFIG + 1);
        let e = m.feed(vec![
            Frame::SnapshotBegin,
            row("a.ini", &big, 9),
            Frame::SnapshotEnd,
        ]);
        assert_eq!(names(&e), ["warn"]);
        let e = m.feed(vec![
            Frame::SnapshotBegin,
            Frame::Keep(b"a.ini".to_vec()),
            Frame::SnapshotEnd,
        ]);
        assert!(e.is_empty());
    }

    #[test]
    fn names_are_checked() {
        let o = FileOptions::default();
        assert!(check_name(&o, b"a.ini", false).is_ok());
        assert_eq!(check_name(&o, b"../a.ini", false), Err("path traversal"));
        assert_eq!(check_name(&o, b"x/a.ini", false), Err("contains '/'"));
        assert_eq!(
            check_name(&o, b"/etc/../a.ini", true),
            Err("path traversal")
        );
        assert!(check_name(&o, b"/etc/v/a.ini", true).is_ok());
        assert_eq!(
            check_name(&o, b"a\0.ini", false),
            Err("contains a control character or NUL")
        );
        assert_eq!(check_name(&o, b"\xff.ini", false), Err("not UTF-8"));
        assert_eq!(check_name(&o, b"a.txt", false), Err("no config extension"));
        assert!(check_name(&o, format!("{}.ini", "a".repeat(300)).as_bytes(), false).is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("amqp://u:secret@h:5672/v"), "amqp://u:***@h:5672/v");
        assert_eq!(
            redact("pg://host=h password=secret dbname=x;SELECT 1"),
            "pg://host=h password=*** dbname=x;SELECT 1"
        );
        assert_eq!(
            redact("pg://password='a b' host=h"),
            "pg://password=*** host=h"
        );
        assert_eq!(
            redact("pg://postgresql://u:pw@h/db?password=x"),
            "pg://postgresql://u:***@h/db?password=***"
        );
        assert_eq!(
            redact("mongodb2://addr=h,password=pw,username=u"),
            "mongodb2://addr=h,password=***,username=u"
        );
        assert_eq!(redact("zmq://tcp://*:5250"), "zmq://tcp://*:5250");
    }

    #[test]
    fn tyrant_rows() {
        let mut m = monitor(true);
        let e = m.feed(vec![Frame::Touch(Entry {
            name: "a.ini".into(),
            config: Some("x".into()),
            ..Entry::default()
        })]);
        assert_eq!(names(&e), ["warn"]);
        let e = m.feed(vec![Frame::Touch(Entry {
            name: "a.ini".into(),
            config: Some("x".into()),
            uid: Some(0),
            gid: Some(5),
            ..Entry::default()
        })]);
        assert_eq!(names(&e), ["warn"]);
        let e = m.feed(vec![Frame::Touch(Entry {
            name: "a.ini".into(),
            config: Some("x".into()),
            uid: Some(7),
            gid: Some(5),
            ..Entry::default()
        })]);
        assert_eq!(names(&e), ["+a.ini"]);
    }
}
