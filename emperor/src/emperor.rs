//! The Emperor: start-up, the event loop, signals and Ragnarok. Vassal-level work is in
//! `lifecycle.rs`, sockets in `stats.rs`, `command.rs` and `conn.rs`.

use crate::conn::Conn;
use crate::reactor::{Kind, Reactor, token, untoken};
use crate::settings::Settings;
use crate::spawn::{self, ArgvTemplate};
use crate::state::{Input, Policy};
use crate::throttle::{Backoff, Blacklist, RespawnLimiter};
use crate::timers::{TimerKey, Timers};
use crate::vassal::Vassal;
use crate::{EmperorError, net, reaper};
use imperium_monitors::{FileOptions, Monitor, MonitorEvent, NameRules};
use imperium_systemd::Notifier;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A listening socket (stats or command).
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, Option<PathBuf>),
}

impl Listener {
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    pub fn accept(&self) -> std::io::Result<OwnedFd> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| OwnedFd::from(s)),
            Listener::Unix(l, _) => l.accept().map(|(s, _)| OwnedFd::from(s)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(p)) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A helper process (hook) the Emperor started and will reap.
pub struct Helper {
    pub what: String,
}

pub struct Emperor {
    pub settings: Settings,
    pub policy: Policy,
    pub rules: NameRules,
    pub argv: ArgvTemplate,
    pub base_env: Vec<(OsString, OsString)>,
    pub reactor: Reactor,
    pub timers: Timers,
    pub monitors: Vec<Box<dyn Monitor>>,
    pub vassals: BTreeMap<u64, Vassal>,
    pub by_name: HashMap<(usize, String), u64>,
    pub by_pid: HashMap<i32, u64>,
    pub helpers: HashMap<i32, Helper>,
    pub next_id: u64,
    pub blacklist: Blacklist,
    pub limiter: RespawnLimiter,
    pub stats: Option<Listener>,
    pub command: Option<Listener>,
    pub conns: HashMap<u64, Conn>,
    pub next_conn: u64,
    pub notifier: Option<Notifier>,
    pub watchdog: Option<Duration>,
    pub ragnarok: Option<Instant>,
    pub mercy_spent: bool,
    pub parent: Option<OwnedFd>,
    pub startup_cwd: PathBuf,
    pub last_status: Option<usize>,
    pub pid: i32,
    /// Tyrant mode, namespaces, cgroups (`isolation.rs`).
    pub isolation: crate::isolation::Isolation,
}

impl Emperor {
    /// Everything before the loop: signals, monitors, sockets, pidfile, first scan.
    pub fn boot(settings: Settings) -> Result<Emperor, EmperorError> {
        let activated = imperium_systemd::listen_fds();
        spawn::fixed_mmap_threshold();
        let reactor = Reactor::new().map_err(|e| EmperorError::sys("signalfd/epoll", e))?;
        // Orphaned workers of dead vassals come back to us, so nothing escapes Ragnarok.
        let _ = nix::sys::prctl::set_child_subreaper(true);
        if let Some(name) = &settings.procname
            && let Ok(c) = std::ffi::CString::new(
                name.as_bytes()
                    .iter()
                    .take(15)
                    .copied()
                    .collect::<Vec<u8>>(),
            )
        {
            let _ = nix::sys::prctl::set_name(&c);
        }
        if let Some(pf) = &settings.pidfile {
            std::fs::write(pf, format!("{}\n", std::process::id()))
                .map_err(|e| EmperorError::sys(format!("emperor-pidfile {pf}"), e))?;
        }
        let parent = std::env::var("UWSGI_EMPEROR_FD")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .and_then(spawn::adopt_inherited_fd);
        if parent.is_some() {
            log!("*** starting uWSGI sub-Emperor ***");
        } else {
            log!("*** starting uWSGI Emperor ***");
        }
        let startup_cwd = std::env::current_dir().map_err(|e| EmperorError::sys("getcwd()", e))?;
        let rules = NameRules {
            extra: settings.extra_extensions.clone(),
        };
        let fopts = FileOptions {
            names: rules.clone(),
            nofollow: settings.nofollow,
            owner_nofollow: settings.tyrant_nofollow,
            // [monitors] database/queue monitors: tyrant rules and their poll period.
            tyrant: settings.tyrant,
            freq: settings.freq,
        };
        let mut monitors = Vec::new();
        for arg in &settings.monitors {
            let m = imperium_monitors::build(arg, &fopts, &startup_cwd).map_err(|source| {
                EmperorError::Monitor {
                    arg: arg.clone(),
                    source,
                }
            })?;
            monitors.push(m);
        }
        let binary = match &settings.binary_path {
            Some(b) if b.contains('/') && !b.starts_with('/') => {
                startup_cwd.join(b).to_string_lossy().into_owned()
            }
            Some(b) => b.clone(),
            None => std::env::current_exe()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "uwsgi".into()),
        };
        let argv = ArgvTemplate {
            argv0: settings.wrapper.clone().unwrap_or(binary),
            inherit_before: settings.inherit_before.clone(),
            include_before: settings.include_before.clone(),
            vassal_set: settings.vassal_set.clone(),
            inherit: settings.inherit.clone(),
            include: settings.include.clone(),
        };
        let mut activated = activated;
        let stats = match &settings.stats {
            Some(addr) => Some(net::listen(
                addr,
                &["stats", "emperor-stats"],
                &mut activated,
                settings.listen,
                settings.chmod_socket,
            )?),
            None => None,
        };
        let command = match &settings.command_socket {
            Some(addr) => Some(net::listen(
                addr,
                &["command", "emperor-command"],
                &mut activated,
                settings.listen,
                settings.chmod_socket,
            )?),
            None => None,
        };
        drop(activated);
        // After the sockets are bound, before any vassal exists: the Emperor's own
        // privilege drop, the tyrant capability check, the cgroup base.
        let isolation = crate::isolation::Isolation::boot(settings.isolation.clone())?;
        let now = Instant::now();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let mut e = Emperor {
            policy: Policy {
                graceful_shutdown: settings.graceful_shutdown,
                curse_tolerance: settings.curse_tolerance,
                heartbeat: settings.heartbeat,
            },
            rules,
            argv,
            base_env: spawn::base_env(std::env::vars_os()),
            reactor,
            timers: Timers::default(),
            monitors,
            vassals: BTreeMap::new(),
            by_name: HashMap::new(),
            by_pid: HashMap::new(),
            helpers: HashMap::new(),
            next_id: 1,
            blacklist: Blacklist::new(
                Backoff {
                    step_ms: settings.throttle_ms,
                    max_ms: settings.max_throttle_ms,
                },
                settings.no_blacklist,
            ),
            limiter: RespawnLimiter::new(cpus * 4, cpus * 2, now),
            stats,
            command,
            conns: HashMap::new(),
            next_conn: 1,
            notifier: Notifier::from_env(),
            watchdog: imperium_systemd::watchdog_interval(),
            ragnarok: None,
            mercy_spent: false,
            parent,
            startup_cwd,
            last_status: None,
            pid: std::process::id() as i32,
            isolation,
            settings,
        };
        if let Some(l) = &e.stats {
            let _ = e.reactor.add(l.fd(), token(Kind::Stats, 0));
            log!(
                "*** Emperor stats server enabled on {} fd: {} ***",
                e.settings.stats.as_deref().unwrap_or(""),
                std::os::fd::AsRawFd::as_raw_fd(&l.fd())
            );
        }
        if let Some(l) = &e.command {
            let _ = e.reactor.add(l.fd(), token(Kind::Command, 0));
            log!(
                "*** Emperor command socket enabled on {} ***",
                e.settings.command_socket.as_deref().unwrap_or("")
            );
        }
        for i in 0..e.monitors.len() {
            if let Some(fd) = e.monitors[i].fd() {
                let _ = e.reactor.add(fd, token(Kind::Monitor, i as u64));
            }
        }
        if let Some(p) = &e.parent {
            let _ = e.reactor.add(p.as_fd(), token(Kind::Parent, 0));
        }
        // The first full scan, then READY.
        for i in 0..e.monitors.len() {
            let evs = e.monitors[i].scan();
            e.on_monitor_events(i, evs);
            e.timers
                .set(TimerKey::Rescan(i), Instant::now() + e.settings.freq);
        }
        if let Some(n) = &e.notifier {
            let _ = n.ready(&e.status_line());
        }
        if let Some(w) = e.watchdog {
            if let Some(n) = &e.notifier {
                let _ = n.watchdog();
            }
            e.timers.set(TimerKey::Watchdog, Instant::now() + w);
        }
        if let Some(p) = &e.parent {
            log!("announcing my loyalty to the Emperor...");
            let _ = nix::unistd::write(p, &[crate::protocol::LOYAL]);
        }
        Ok(e)
    }

    /// The loop. Returns the exit code.
    pub fn run(&mut self) -> i32 {
        loop {
            if let Some(code) = self.finished() {
                return code;
            }
            let deadline = self.next_deadline();
            let ready = self.reactor.wait(deadline);
            for (tok, flags) in ready {
                let (kind, id) = untoken(tok);
                match kind {
                    Some(Kind::Signal) => self.on_signals(),
                    Some(Kind::Monitor) => {
                        let i = id as usize;
                        if i < self.monitors.len() {
                            let evs = self.monitors[i].on_readable(Instant::now());
                            self.on_monitor_events(i, evs);
                        }
                    }
                    Some(Kind::Pipe) => self.on_pipe(id),
                    Some(Kind::OnDemand) => self.on_connection(id),
                    Some(Kind::Stats) => self.accept_client(false),
                    Some(Kind::Command) => self.accept_client(true),
                    Some(Kind::Conn) => self.on_conn(id, flags),
                    Some(Kind::Parent) => self.on_parent(),
                    None => {}
                }
            }
            self.run_timers();
            self.update_status();
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let monitors = self.monitors.iter().filter_map(|m| m.next_deadline()).min();
        [self.timers.earliest(), monitors]
            .into_iter()
            .flatten()
            .min()
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        for i in 0..self.monitors.len() {
            if self.monitors[i].next_deadline().is_some_and(|t| t <= now) {
                let evs = self.monitors[i].on_deadline(now);
                self.on_monitor_events(i, evs);
            }
        }
        for key in self.timers.due(now) {
            match key {
                TimerKey::Vassal(id) => self.on_vassal_timer(id),
                TimerKey::Rescan(i) => {
                    if i < self.monitors.len() {
                        let evs = self.monitors[i].scan();
                        self.on_monitor_events(i, evs);
                        self.timers
                            .set(TimerKey::Rescan(i), Instant::now() + self.settings.freq);
                        if i == 0 {
                            self.check_isolation();
                        }
                    }
                }
                TimerKey::Watchdog => {
                    if let Some(n) = &self.notifier {
                        let _ = n.watchdog();
                    }
                    if let Some(w) = self.watchdog {
                        self.timers.set(TimerKey::Watchdog, now + w);
                    }
                }
                TimerKey::Mercy => self.no_mercy(),
                TimerKey::Conn(id) => self.close_conn(id),
            }
        }
    }

    pub fn on_monitor_events(&mut self, midx: usize, events: Vec<MonitorEvent>) {
        for ev in events {
            match ev {
                MonitorEvent::Warn(w) => vlog!("{w}"),
                MonitorEvent::Touch(t) => self.touch(midx, t),
                MonitorEvent::Destroy { name } => {
                    if let Some(id) = self.by_name.get(&(midx, name)).copied() {
                        self.apply(id, Input::ConfigRemoved);
                    }
                }
            }
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.reactor.signals.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGINT | Signal::SIGTERM | Signal::SIGQUIT => self.begin_ragnarok(),
                Signal::SIGHUP => self.reload_all(),
                Signal::SIGUSR1 => self.log_status(),
                Signal::SIGURG => self.clear_blacklist(),
                Signal::SIGWINCH => self.rescan_all(),
                Signal::SIGCHLD => self.reap(),
                _ => {}
            }
        }
    }

    pub fn rescan_all(&mut self) {
        for i in 0..self.monitors.len() {
            let evs = self.monitors[i].scan();
            self.on_monitor_events(i, evs);
        }
    }

    pub fn reload_all(&mut self) {
        if self.ragnarok.is_some() {
            return;
        }
        if let Some(n) = &self.notifier {
            let _ = n.reloading("The Emperor is reloading its vassals");
        }
        let ids: Vec<u64> = self.vassals.keys().copied().collect();
        for id in ids {
            self.apply(id, Input::Reload);
        }
        if let Some(n) = &self.notifier {
            let _ = n.ready(&self.status_line());
        }
    }

    fn log_status(&self) {
        for v in self.vassals.values() {
            let status = match v.life.phase {
                crate::state::Phase::Stopping(crate::state::AfterStop::OnDemand) => 2,
                crate::state::Phase::Stopping(_) => 1,
                _ => 0,
            };
            log!(
                "vassal instance {} (last modified {}) status {} loyal {} zerg {} state {} pid {}",
                v.name,
                v.life.last_mod,
                status,
                u8::from(v.life.loyal),
                u8::from(v.name.contains(':')),
                v.life.state_name(),
                v.pid.unwrap_or(-1)
            );
        }
    }

    pub fn clear_blacklist(&mut self) {
        vlog!("[emperor] cleaning up blacklist ...");
        self.blacklist.clear();
        let ids: Vec<u64> = self.vassals.keys().copied().collect();
        for id in ids {
            if matches!(
                self.vassals.get(&id).map(|v| v.life.phase),
                Some(crate::state::Phase::Throttled(_))
            ) {
                self.apply(id, Input::ResetBackoff);
            }
        }
    }

    fn begin_ragnarok(&mut self) {
        if let Some(t) = self.ragnarok {
            let left = (t + self.settings.reload_mercy)
                .saturating_duration_since(Instant::now())
                .as_secs();
            log!("[emperor] *** RAGNAROK ALREADY EVOKED (mercyless in {left} seconds)***");
            return;
        }
        log!("[emperor] *** RAGNAROK EVOKED ***");
        let now = Instant::now();
        self.ragnarok = Some(now);
        if let Some(n) = &self.notifier {
            let _ = n.stopping("The Emperor is stopping its vassals");
        }
        self.timers
            .set(TimerKey::Mercy, now + self.settings.reload_mercy);
        let ids: Vec<u64> = self.vassals.keys().copied().collect();
        for id in ids {
            self.apply(id, Input::Ragnarok);
        }
    }

    fn no_mercy(&mut self) {
        if self.ragnarok.is_none() {
            return;
        }
        if self.mercy_spent {
            return;
        }
        self.mercy_spent = true;
        let pids: Vec<(String, i32)> = self
            .vassals
            .values()
            .filter_map(|v| v.pid.map(|p| (v.name.clone(), p)))
            .collect();
        for (name, pid) in pids {
            vlog!("[emperor] NO MERCY for vassal {name} !!!");
            reaper::kill_tree(pid);
            self.isolation.kill(&name);
        }
        // SIGKILL cannot be ignored; give the kernel a moment, then leave regardless.
        self.timers
            .set(TimerKey::Mercy, Instant::now() + Duration::from_secs(5));
    }

    /// Some(exit code) when the loop should end.
    fn finished(&mut self) -> Option<i32> {
        let started = self.ragnarok?;
        let all_gone = self.vassals.values().all(|v| v.pid.is_none());
        let hard_stop = started + self.settings.reload_mercy + Duration::from_secs(5)
            <= Instant::now()
            && self.mercy_spent;
        if !(hard_stop || all_gone && self.helpers.is_empty()) {
            return None;
        }
        // Whatever the vassals left behind (reparented to us as subreaper) goes too.
        reaper::exterminate(&self.helpers.keys().copied().collect::<Vec<_>>());
        let names: Vec<String> = self.vassals.values().map(|v| v.name.clone()).collect();
        for name in names {
            self.isolation.vassal_removed(&name);
        }
        self.vassals.clear();
        vlog!("The Emperor is buried.");
        if let Some(n) = &self.notifier {
            let _ = n.status("The Emperor is buried.");
        }
        Some(0)
    }

    pub fn status_line(&self) -> String {
        format!("The Emperor is governing {} vassals", self.governed())
    }

    fn governed(&self) -> usize {
        self.vassals.values().filter(|v| v.pid.is_some()).count()
    }

    fn update_status(&mut self) {
        let n = self.governed();
        if self.last_status != Some(n) {
            self.last_status = Some(n);
            if let Some(no) = &self.notifier
                && self.ragnarok.is_none()
            {
                let _ = no.status(&self.status_line());
            }
        }
    }

    /// Our own Emperor spoke (sub-Emperor mode).
    fn on_parent(&mut self) {
        let Some(p) = &self.parent else { return };
        let mut buf = [0u8; 64];
        match nix::unistd::read(p, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::ECONNRESET) => {
                log!("lost connection with my emperor !!!");
                if let Some(p) = self.parent.take() {
                    self.reactor.delete(p.as_fd());
                }
                self.begin_ragnarok();
            }
            Ok(n) => {
                for &b in &buf[..n] {
                    match b {
                        crate::protocol::STOP | crate::protocol::GRACEFUL_STOP => {
                            self.begin_ragnarok()
                        }
                        crate::protocol::RELOAD => self.reload_all(),
                        _ => {}
                    }
                }
            }
            Err(_) => {}
        }
    }
}
