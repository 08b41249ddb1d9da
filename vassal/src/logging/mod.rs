//! Logging beyond one standard error: `logto` (file or UDP), `logto2`, `log-date`,
//! `log-format` (see [`format`]), `log-micros`, and the log master (`log-master`, implied
//! by `logger`, `req-logger` and `log-maxsize`): every process's standard output and error
//! go into a datagram socketpair that the master reads and hands to its loggers
//! ([`sinks`]); request lines go into a second one when `req-logger` is set. The master
//! writes its own lines straight to the loggers (it never waits on its own pipe).
//! `log-reopen`, `log-maxsize`/`log-backupname` and the FIFO's `l`/`L` reopen or rotate the
//! log file. In the master, lines pass `log-drain` and `log-filter`, then `log-route` sends
//! them to named loggers (or to every unnamed one), through the `log-encoder` chain.
//! With `threaded-logger` a thread of the master (`uWSGILogger`) reads the pipes and
//! writes to the loggers instead of the master's loop, so a slow logger does not hold up
//! the master (signals, harakiri, stats); see [`start_thread`].

pub mod encoders;
pub mod format;
pub mod sinks;

pub use format::{LogFormat, RequestFacts};

use crate::error::VassalError;
use crate::vlog;
use imperium_config::Config;
use sinks::Sink;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

/// Process-wide settings read by every log call.
#[derive(Debug, Default)]
struct Global {
    /// `log-date`: `Some("")` for ctime, `Some(fmt)` for a strftime format.
    date: Option<String>,
    format: Option<LogFormat>,
    micros: bool,
    /// Which requests are logged (`disable-logging`, `log-slow`, `log-4xx`...).
    when: When,
    /// `memory-report`: vsz and rss before each default line.
    memory_report: bool,
    xff: bool,
}

/// Which requests get a log line. With `disable-logging` only the ones matching one of
/// the conditions are logged (uWSGI's rule: the conditions add lines, never remove them).
#[derive(Debug, Default, Clone, Copy)]
struct When {
    enabled: bool,
    slow_ms: u64,
    status_4xx: bool,
    status_5xx: bool,
    big: u64,
    zero: bool,
    ioerror: bool,
}

impl When {
    fn from_config(c: &Config) -> When {
        let n = |k: &str| c.int_or(k, 0).unwrap_or(0).max(0) as u64;
        When {
            enabled: !c.flag("disable-logging"),
            slow_ms: n("log-slow"),
            status_4xx: c.flag("log-4xx"),
            status_5xx: c.flag("log-5xx"),
            big: n("log-big"),
            zero: c.flag("log-zero"),
            ioerror: c.flag("log-ioerror"),
        }
    }

    fn wants(&self, f: &RequestFacts<'_>) -> bool {
        let ms = f.end_micros.saturating_sub(f.start_micros) / 1000;
        self.enabled
            || (self.zero && f.body_size == 0)
            || (self.slow_ms > 0 && ms >= self.slow_ms)
            || (self.status_4xx && (400..500).contains(&f.status))
            || (self.status_5xx && (500..600).contains(&f.status))
            || (self.big > 0 && f.body_size >= self.big)
            || (self.ioerror && f.read_errors > 0 && f.write_errors > 0)
    }
}

static GLOBAL: OnceLock<Global> = OnceLock::new();
/// Where request lines go (standard error, or the request pipe of the log master).
static REQ_FD: AtomicI32 = AtomicI32::new(2);
/// The pid of the process that owns the log master (it dispatches its own lines).
static OWNER: AtomicI32 = AtomicI32::new(0);
/// `threaded-logger`: the pipes are read by the logger thread, not the master's loop.
static THREADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static MASTER: Mutex<Option<LogMaster>> = Mutex::new(None);

/// The `log-date` prefix of a line now (empty without `log-date`).
pub fn date_prefix() -> String {
    match GLOBAL.get().and_then(|g| g.date.as_deref()) {
        None => String::new(),
        Some("") => format!(
            "{} - ",
            crate::sys::clock::ctime(crate::sys::clock::now_secs())
        ),
        Some(fmt) => format!(
            "{} - ",
            crate::sys::clock::strftime(fmt, crate::sys::clock::now_secs())
        ),
    }
}

/// Logs one request: the `log-format` line, or uWSGI's default one, in one write.
pub fn log_request(facts: &RequestFacts<'_>) {
    let g = GLOBAL.get();
    if let Some(g) = g
        && !g.when.wants(facts)
    {
        return;
    }
    let line = match g.and_then(|g| g.format.as_ref()) {
        Some(f) => f.render(facts),
        None => {
            let line =
                format::default_line(facts, g.is_some_and(|g| g.micros), g.is_some_and(|g| g.xff));
            if g.is_some_and(|g| g.memory_report) {
                let (vsz, rss) = format::memory();
                format!(
                    "{{address space usage: {vsz} bytes/{}MB}} {{rss usage: {rss} bytes/{}MB}} {line}",
                    vsz / 1024 / 1024,
                    rss / 1024 / 1024
                )
            } else {
                line
            }
        }
    };
    let fd = REQ_FD.load(Relaxed);
    if fd == 2 && dispatch_own(line.as_bytes()) {
        return;
    }
    let _ = nix::unistd::write(crate::sys::fd::borrow(fd), line.as_bytes());
}

/// In the log master's own process, hands `line` to the loggers; false elsewhere (the
/// caller writes to standard error, which is the pipe to the master).
pub fn dispatch_own(line: &[u8]) -> bool {
    let owner = OWNER.load(Relaxed);
    if owner == 0 || owner != std::process::id() as i32 {
        return false;
    }
    match MASTER.try_lock() {
        Ok(mut m) => match m.as_mut() {
            Some(lm) => {
                lm.general(line);
                true
            }
            None => false,
        },
        Err(_) => false,
    }
}

/// A `[name ]plugin[:args]` logger spec: the name only when it is alphanumeric.
fn named(spec: &str) -> (Option<String>, &str) {
    if let Some((n, rest)) = spec.split_once(' ')
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return (Some(n.to_owned()), rest.trim());
    }
    (None, spec.trim())
}

/// The master's logger.
#[derive(Debug)]
pub struct LogMaster {
    log_rx: OwnedFd,
    req_rx: Option<OwnedFd>,
    /// Where lines go when no logger is configured (the `logto` file or standard error).
    original: Sink,
    loggers: Vec<(Option<String>, Sink)>,
    req_loggers: Vec<(Option<String>, Sink)>,
    maxsize: u64,
    backupname: Option<String>,
    touch_rotate: crate::touch::Touches,
    touch_reopen: crate::touch::Touches,
    rules: Rules,
    req_rules: Rules,
    /// `log-master-bufsize`: the longest line read (longer ones are cut).
    bufsize: usize,
}

/// Drains, filters, routes and encoders of one kind of line (general or request).
#[derive(Debug, Default)]
struct Rules {
    drains: Vec<regex::Regex>,
    filters: Vec<regex::Regex>,
    routes: Vec<(regex::Regex, String)>,
    encoders: Vec<encoders::Encoder>,
}

fn regex_of(option: &str, v: &str) -> Result<regex::Regex, VassalError> {
    regex::Regex::new(v)
        .map_err(|e| VassalError::option(option, v, &format!("invalid regexp: {e}")))
}

impl Rules {
    fn from_config(config: &Config, request: bool) -> Result<Rules, VassalError> {
        let (route_opt, enc_opt) = if request {
            ("log-req-route", "log-req-encoder")
        } else {
            ("log-route", "log-encoder")
        };
        let mut r = Rules::default();
        if !request {
            for v in config.get_all("log-drain") {
                r.drains.push(regex_of("log-drain", v)?);
            }
            for v in config.get_all("log-filter") {
                r.filters.push(regex_of("log-filter", v)?);
            }
        }
        for v in config.get_all(route_opt) {
            let (name, re) = v.trim().split_once(' ').ok_or_else(|| {
                VassalError::option(route_opt, v, "expects: <logger name> <regexp>")
            })?;
            r.routes
                .push((regex_of(route_opt, re.trim())?, name.to_owned()));
        }
        for v in config.get_all(enc_opt) {
            r.encoders.push(
                encoders::Encoder::parse(v).map_err(|e| VassalError::option(enc_opt, v, &e))?,
            );
        }
        Ok(r)
    }

    /// Hands `line` to `loggers` (or `original`) by these rules.
    fn dispatch(&self, line: &[u8], loggers: &mut [(Option<String>, Sink)], original: &mut Sink) {
        let needs_text =
            !self.drains.is_empty() || !self.filters.is_empty() || !self.routes.is_empty();
        if needs_text {
            let text = String::from_utf8_lossy(line);
            if self.drains.iter().any(|r| r.is_match(&text)) {
                return;
            }
            if !self.filters.is_empty() && !self.filters.iter().any(|r| r.is_match(&text)) {
                return;
            }
            let mut routed = false;
            for (re, name) in &self.routes {
                if !re.is_match(&text) {
                    continue;
                }
                for (id, s) in loggers.iter_mut() {
                    if id.as_deref() == Some(name.as_str()) {
                        s.write(&encoders::apply(&self.encoders, Some(name), line));
                        routed = true;
                    }
                }
            }
            if routed {
                return;
            }
        }
        let mut any = false;
        for (id, s) in loggers.iter_mut() {
            if id.is_none() {
                s.write(&encoders::apply(&self.encoders, None, line));
                any = true;
            }
        }
        if !any {
            original.write(&encoders::apply(&self.encoders, None, line));
        }
    }
}

impl LogMaster {
    fn general(&mut self, line: &[u8]) {
        self.rules
            .dispatch(line, &mut self.loggers, &mut self.original);
    }

    fn request(&mut self, line: &[u8]) {
        self.req_rules
            .dispatch(line, &mut self.req_loggers, &mut self.original);
    }
}

fn socketpair() -> Result<(OwnedFd, OwnedFd), VassalError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| VassalError::sys("create_logpipe()/socketpair()", e))?;
    for fd in [&a, &b] {
        let _ = nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::SndBuf, &(1 << 20));
        let _ = nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::RcvBuf, &(1 << 20));
    }
    let fl = nix::fcntl::fcntl(&a, nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| VassalError::sys("fcntl()", e))?;
    nix::fcntl::fcntl(
        &a,
        nix::fcntl::FcntlArg::F_SETFL(
            nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK,
        ),
    )
    .map_err(|e| VassalError::sys("fcntl()", e))?;
    Ok((a, b))
}

/// Where `logto`/`daemonize` sends the log: a file (kept for the log master) or UDP.
enum LogTarget {
    File(std::fs::File, String),
    Udp(std::net::UdpSocket),
}

fn open_target(value: &str, truncate: bool) -> Result<LogTarget, VassalError> {
    if value.contains(':') {
        let s = sinks::udp_to(value).map_err(|e| {
            VassalError::option("logto", value, &format!("invalid udp address: {e}"))
        })?;
        return Ok(LogTarget::Udp(s));
    }
    let f = sinks::open_log_file(value, truncate)
        .map_err(|e| VassalError::sys(format!("logto: cannot open {value}"), e))?;
    Ok(LogTarget::File(f, value.to_owned()))
}

/// `logfile-chmod` (three octal digits) and `logfile-chown` (to `uid`/`gid`) on a log file.
fn fix_log_file(config: &Config, path: &str) -> Result<(), VassalError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(m) = config.get("logfile-chmod").filter(|v| !v.trim().is_empty()) {
        let mode = crate::settings::parse_chmod(m)
            .ok_or_else(|| VassalError::option("logfile-chmod", m, "expects three octal digits"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| VassalError::sys(format!("chmod({path})"), e))?;
    }
    if config.flag("logfile-chown") {
        let uid = config
            .get("uid")
            .map(crate::privileges::parse_uid)
            .transpose()?
            .map(|u| u.as_raw());
        let gid = config
            .get("gid")
            .map(crate::privileges::parse_gid)
            .transpose()?
            .map(|g| g.as_raw());
        std::os::unix::fs::chown(path, uid, gid)
            .map_err(|e| VassalError::sys(format!("chown({path})"), e))?;
    }
    Ok(())
}

fn onto_stdio(fd: impl AsFd) -> Result<(), VassalError> {
    nix::unistd::dup2_stdout(&fd).map_err(|e| VassalError::sys("logto: dup2()", e))?;
    nix::unistd::dup2_stderr(&fd).map_err(|e| VassalError::sys("logto: dup2()", e))?;
    Ok(())
}

/// Sends standard output and error to `logto`'s target (a file or `host:port` over UDP).
pub fn logto(value: &str) -> Result<(), VassalError> {
    match open_target(value, false)? {
        LogTarget::File(f, _) => onto_stdio(f),
        LogTarget::Udp(s) => onto_stdio(s),
    }
}

/// Sets logging up, right after the `asap` hooks: `logto`/`daemonize` (the caller passes
/// the file `daemonize` degrades to), `log-date`, `log-format`, and the log master.
/// `reload`: this is a re-executed master (the log file is inherited on standard error
/// and reopened only with `log-reopen`).
pub fn setup(config: &Config, logfile: Option<&str>, reload: bool) -> Result<(), VassalError> {
    let date = config.last_entry("logdate").map(|e| {
        let v = e.value.trim();
        if v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true") {
            String::new()
        } else {
            v.to_owned()
        }
    });
    let strftime = if config.flag("logformat-strftime") {
        date.clone().filter(|d| !d.is_empty())
    } else {
        None
    };
    let xff = config.flag("log-x-forwarded-for");
    let format = config.get("log-format").filter(|f| !f.is_empty()).map(|f| {
        let mut lf = LogFormat::parse(f, strftime);
        lf.xff = xff;
        lf
    });
    let _ = GLOBAL.set(Global {
        date,
        format,
        micros: config.flag("log-micros"),
        when: When::from_config(config),
        memory_report: config.flag("memory-report"),
        xff,
    });

    let reopen = !reload || config.flag("log-reopen");
    let truncate = config.flag("log-truncate") && !reload;
    let target = match logfile {
        Some(f) if reopen => Some(open_target(f, truncate)?),
        _ => None,
    };
    if let Some(LogTarget::File(_, path)) = &target {
        fix_log_file(config, path)?;
    }
    let log_master = config.flag("log-master");
    if !log_master {
        match target {
            Some(LogTarget::File(f, _)) => onto_stdio(f)?,
            Some(LogTarget::Udp(s)) => onto_stdio(s)?,
            None => {}
        }
        return Ok(());
    }
    let original = match target {
        Some(LogTarget::File(file, path)) => Sink::File {
            path: path.into(),
            file,
        },
        Some(LogTarget::Udp(s)) => Sink::Udp(s),
        None => match logfile {
            // Inherited across the reload on standard error, but reopenable by path.
            Some(path) if !path.contains(':') => Sink::File {
                path: path.into(),
                file: std::fs::File::from(
                    crate::sys::fd::dup_cloexec(crate::sys::fd::borrow(2))
                        .map_err(|e| VassalError::sys("dup()", e))?,
                ),
            },
            _ => Sink::Fd(
                crate::sys::fd::dup_cloexec(crate::sys::fd::borrow(2))
                    .map_err(|e| VassalError::sys("dup()", e))?,
            ),
        },
    };
    let mut loggers = Vec::new();
    for spec in config.get_all("logger") {
        let (id, s) = named(spec);
        loggers.push((id, Sink::from_spec(s)?));
    }
    for v in config.get_all("log-syslog") {
        let v = v.trim();
        let spec = if v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true") {
            "syslog".to_owned()
        } else {
            format!("syslog:{v}")
        };
        loggers.push((None, Sink::from_spec(&spec)?));
    }
    for v in config.get_all("log-socket") {
        loggers.push((None, Sink::from_spec(&format!("socket:{}", v.trim()))?));
    }
    let mut req_loggers = Vec::new();
    for spec in config.get_all("req-logger") {
        let (id, s) = named(spec);
        req_loggers.push((id, Sink::from_spec(s)?));
    }
    // Everything that can fail is read before standard error becomes the pipe.
    let rules = Rules::from_config(config, false)?;
    let req_rules = Rules::from_config(config, true)?;
    let (log_rx, log_tx) = socketpair()?;
    onto_stdio(&log_tx)?;
    drop(log_tx);
    let req_rx = if config.flag("req-log-master")
        || !req_loggers.is_empty()
        || config.is_set("log-req-encoder")
        || config.is_set("log-req-route")
    {
        let (rx, tx) = socketpair()?;
        // Kept open (without close-on-exec: workers are forked, not executed).
        let raw = tx.as_raw_fd();
        std::mem::forget(tx);
        REQ_FD.store(raw, Relaxed);
        Some(rx)
    } else {
        None
    };
    let maxsize = config.int_or("log-maxsize", 0).unwrap_or(0).max(0) as u64;
    let lm = LogMaster {
        log_rx,
        req_rx,
        original,
        loggers,
        req_loggers,
        maxsize,
        backupname: config.get("log-backupname").map(str::to_owned),
        touch_rotate: crate::touch::Touches::new(&paths(config, "touch-logrotate")),
        touch_reopen: crate::touch::Touches::new(&paths(config, "touch-logreopen")),
        rules,
        req_rules,
        bufsize: match config.int_or("log-master-bufsize", 0).unwrap_or(0) {
            n if n > 0 => (n as usize).min(1 << 20),
            _ => 65536,
        },
    };
    if let Ok(mut m) = MASTER.lock() {
        *m = Some(lm);
    }
    OWNER.store(std::process::id() as i32, Relaxed);
    if config.flag("threaded-logger") {
        start_thread()?;
    }
    Ok(())
}

/// Whether this process runs the `threaded-logger` thread.
pub fn threaded() -> bool {
    THREADED.load(Relaxed) && owner()
}

/// `threaded-logger`: starts the `uWSGILogger` thread that polls the log pipes, hands the
/// lines to the loggers and runs the once-a-second file checks (the master's loop then
/// leaves them alone). The thread blocks every signal (they are the main thread's) and
/// ends when this process stops owning the log master (before a reload's exec). Workers
/// forked later do not inherit it; they never touch the log master's state.
fn start_thread() -> Result<(), VassalError> {
    THREADED.store(true, Relaxed);
    let spawned = std::thread::Builder::new()
        .name("uWSGILogger".into())
        .spawn(|| {
            let _ = crate::sys::signals::block_all();
            let mut last_tick = std::time::Instant::now();
            while owner() {
                let fds = pipe_fds();
                let mut polled: Vec<nix::poll::PollFd<'_>> = fds
                    .iter()
                    .map(|f| {
                        nix::poll::PollFd::new(
                            crate::sys::fd::borrow(*f),
                            nix::poll::PollFlags::POLLIN,
                        )
                    })
                    .collect();
                let _ = nix::poll::poll(&mut polled, nix::poll::PollTimeout::from(1000u16));
                drop(polled);
                drain_pipes();
                if last_tick.elapsed() >= std::time::Duration::from_secs(1) {
                    last_tick = std::time::Instant::now();
                    file_checks();
                }
            }
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => {
            THREADED.store(false, Relaxed);
            Err(VassalError::sys("starting the threaded logger", e))
        }
    }
}

fn paths(config: &Config, name: &str) -> Vec<std::path::PathBuf> {
    config
        .get_all(name)
        .into_iter()
        .filter(|v| !v.trim().is_empty())
        .map(std::path::PathBuf::from)
        .collect()
}

/// `logto2`: the same as `logto`, once the privileges are dropped.
pub fn setup_after_drop(config: &Config) -> Result<(), VassalError> {
    match config.get("logto2").filter(|v| !v.trim().is_empty()) {
        Some(v) if OWNER.load(Relaxed) == 0 => logto(v.trim()),
        Some(v) => {
            let t = match open_target(v.trim(), false)? {
                LogTarget::File(file, path) => Sink::File {
                    path: path.into(),
                    file,
                },
                LogTarget::Udp(s) => Sink::Udp(s),
            };
            if let Ok(mut m) = MASTER.lock()
                && let Some(lm) = m.as_mut()
            {
                lm.original = t;
            }
            Ok(())
        }
        None => Ok(()),
    }
}

/// The log master's pipes, for the master's poll (none with `threaded-logger`: its
/// thread polls them).
pub fn poll_fds() -> Vec<RawFd> {
    if THREADED.load(Relaxed) {
        return Vec::new();
    }
    pipe_fds()
}

/// The log master's pipes.
fn pipe_fds() -> Vec<RawFd> {
    if !owner() {
        return Vec::new();
    }
    let Ok(m) = MASTER.lock() else {
        return Vec::new();
    };
    let Some(lm) = m.as_ref() else {
        return Vec::new();
    };
    let mut v = vec![lm.log_rx.as_raw_fd()];
    if let Some(r) = &lm.req_rx {
        v.push(r.as_raw_fd());
    }
    v
}

/// After a re-fork (`refork*`) the child goes on as the instance: it takes over the log
/// master (the parent left behind logs nothing more).
pub fn adopt() {
    if OWNER.load(Relaxed) != 0 {
        OWNER.store(std::process::id() as i32, Relaxed);
    }
}

/// Whether this process owns the log master (a forked worker inherits its memory, not
/// its role).
fn owner() -> bool {
    let o = OWNER.load(Relaxed);
    o != 0 && o == std::process::id() as i32
}

/// Reads every pending line from the pipes and hands them to the loggers (with
/// `threaded-logger`, what the thread has not read yet: the master calls this before it
/// exits or re-executes itself).
pub fn drain() {
    drain_pipes()
}

fn drain_pipes() {
    if !owner() {
        return;
    }
    let Ok(mut m) = MASTER.lock() else { return };
    let Some(lm) = m.as_mut() else { return };
    let mut buf = vec![0u8; lm.bufsize];
    loop {
        match nix::unistd::read(&lm.log_rx, &mut buf) {
            Ok(n) if n > 0 => lm.general(&buf[..n]),
            _ => break,
        }
    }
    while let Some(r) = &lm.req_rx {
        match nix::unistd::read(r, &mut buf) {
            Ok(n) if n > 0 => lm.request(&buf[..n]),
            _ => break,
        }
    }
}

/// What to do with the log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileOp {
    Reopen,
    Rotate,
}

/// Applies `op` to the original log when it is a file; false when there is none. The
/// lock is released before an error is logged (the log goes through it).
fn file_op(lm: &mut LogMaster, op: FileOp) -> Result<(), String> {
    match op {
        FileOp::Reopen => lm
            .original
            .reopen()
            .map_err(|e| format!("unable to reopen the log file: {e}")),
        FileOp::Rotate => {
            let backup = lm.backupname.clone();
            lm.original
                .rotate(backup.as_deref())
                .map_err(|e| format!("unable to rotate log: rename(): {e}"))
        }
    }
}

/// Runs `op` when `wanted(lm)` says so; false when there is no log master or no file.
fn with_file(wanted: impl FnOnce(&mut LogMaster) -> Option<FileOp>) -> bool {
    if !owner() {
        return false;
    }
    let Ok(mut m) = MASTER.lock() else {
        return false;
    };
    let Some(lm) = m.as_mut() else { return false };
    if !matches!(lm.original, Sink::File { .. }) {
        return false;
    }
    let Some(op) = wanted(lm) else { return true };
    let r = file_op(lm, op);
    drop(m);
    if let Err(e) = r {
        vlog!("{e}");
    }
    true
}

/// Once a second in the master: `log-maxsize`, `touch-logrotate`, `touch-logreopen` (the
/// logger thread's job with `threaded-logger`).
pub fn tick() {
    if !THREADED.load(Relaxed) {
        file_checks();
    }
}

fn file_checks() {
    with_file(|lm| {
        let touched_rotate = lm.touch_rotate.check().is_some();
        let touched_reopen = lm.touch_reopen.check().is_some();
        if touched_rotate || (lm.maxsize > 0 && lm.original.size().is_some_and(|s| s > lm.maxsize))
        {
            Some(FileOp::Rotate)
        } else if touched_reopen {
            Some(FileOp::Reopen)
        } else {
            None
        }
    });
}

/// FIFO `l`: reopen the log file. False when there is none to reopen (no log master or
/// no `logto` file).
pub fn reopen() -> bool {
    with_file(|_| Some(FileOp::Reopen))
}

/// FIFO `L`: rotate the log file (to `log-backupname` or `<file>.<unixtime>`).
pub fn rotate() -> bool {
    with_file(|_| Some(FileOp::Rotate))
}

/// Before the master re-executes itself: standard output and error go back to the
/// original log (the log pipe does not survive the exec).
pub fn before_exec() {
    if !owner() {
        return;
    }
    let Ok(mut m) = MASTER.lock() else { return };
    let Some(lm) = m.as_mut() else { return };
    let _ = match &lm.original {
        Sink::Fd(fd) => onto_stdio(fd),
        Sink::File { file, .. } => onto_stdio(file),
        Sink::Udp(s) => onto_stdio(s),
        _ => Ok(()),
    };
    OWNER.store(0, Relaxed);
}
