//! The master: forks the workers, respawns the ones that die, kills the ones stuck past
//! `harakiri` or alive past `max-worker-lifetime`, serves the stats, obeys the Emperor, and
//! reacts to signals exactly as uWSGI's master does:
//!
//! | signal | action |
//! |---|---|
//! | SIGHUP | graceful reload: SIGHUP to the workers, then re-exec (sockets kept) |
//! | SIGTERM | brutal reload: SIGTERM to the workers, then re-exec; with `die-on-term`, shutdown |
//! | SIGINT | shutdown: SIGINT to the workers, then exit |
//! | SIGQUIT | shutdown; with `die-on-term`, brutal reload |
//! | SIGUSR1 | the configuration and request counters to the log |
//!
//! The loop is one poll over the signal self-pipe, the Emperor descriptor and the stats
//! socket, with a one-second tick for the checks. It never runs a thread, so forking a
//! worker is always safe.

use crate::emperor::{self, Command, Emperor};
use crate::fifo::{FifoCommand, MasterFifo};
use crate::scoreboard::Scoreboard;
use crate::settings::Settings;
use crate::sockets::{self, Listener};
use crate::stats::{self, StatsServer};
use crate::sys::{self, Forked, clock};
use crate::touch::Touches;
use crate::vlog;
use crate::worker::{self, WorkerCtx};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// What the instance is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Waiting for the workers to end, then re-exec.
    Reloading,
    /// Waiting for the workers to end, then exit with this code.
    Dying(i32),
}

/// The master's view of one worker.
#[derive(Debug, Clone, Default)]
struct WorkerState {
    pid: Option<Pid>,
    /// When the master asked it to end (SIGHUP/SIGTERM/SIGINT/SIGKILL).
    cursed_at: Option<Instant>,
    /// A respawn delayed by the fork-bomb guard.
    respawn_at: Option<Instant>,
}

/// How the master re-executes itself on reload.
pub struct ReloadPlan {
    pub binary: std::path::PathBuf,
    pub argv: Vec<std::ffi::OsString>,
    pub cwd: std::path::PathBuf,
    pub reloads: u64,
}

/// The master and everything it owns.
pub struct Master<'a> {
    pub settings: &'a Settings,
    pub config: &'a imperium_config::Config,
    pub listeners: Vec<Listener>,
    pub scoreboard: Scoreboard,
    pub emperor: Option<Emperor>,
    pub stats: Option<StatsServer>,
    pub fifo: Option<MasterFifo>,
    /// systemd's notification socket, when the instance runs under systemd.
    pub notifier: Option<imperium_systemd::Notifier>,
    pub reload: ReloadPlan,
    pub sigpipe: OwnedFd,
    workers: Vec<WorkerState>,
    phase: Phase,
    pid: Pid,
    touch_reload: Touches,
    touch_workers_reload: Touches,
    touch_chain_reload: Touches,
    /// The worker a chain reload is at (0: none running).
    chain: usize,
    /// Request count and when it last changed (`idle`).
    idle_since: (u64, Instant),
    /// Set once `die-on-idle` asked the Emperor to stop the instance.
    idle_reported: bool,
    respawns_this_second: (u64, usize),
    /// Attached daemons (vassal helper: daemons.rs).
    pub daemons: crate::daemons::Daemons,
    /// `hook-touch` (vassal helper: hooks.rs).
    touch_hooks: crate::hooks::TouchHooks,
    /// FIFO `S` (no subscription system yet: only the state is kept).
    subscriptions_blocked: bool,
    /// FIFO `C`: the workers are gone until a connection arrives.
    cheap: bool,
    /// `reload-on-rss`/`-as` and their evil forms (vassal helper: limits.rs).
    memory: crate::limits::MemoryLimits,
}

impl<'a> Master<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &'a Settings,
        config: &'a imperium_config::Config,
        listeners: Vec<Listener>,
        scoreboard: Scoreboard,
        emperor: Option<Emperor>,
        reload: ReloadPlan,
        sigpipe: OwnedFd,
    ) -> Master<'a> {
        let workers = vec![WorkerState::default(); settings.processes + 1];
        Master {
            settings,
            config,
            listeners,
            scoreboard,
            emperor,
            stats: None,
            reload,
            sigpipe,
            workers,
            phase: Phase::Running,
            pid: nix::unistd::getpid(),
            fifo: None,
            notifier: None,
            touch_reload: Touches::new(&settings.touch_reload),
            touch_workers_reload: Touches::new(&settings.touch_workers_reload),
            touch_chain_reload: Touches::new(&settings.touch_chain_reload),
            chain: 0,
            idle_since: (0, Instant::now()),
            idle_reported: false,
            respawns_this_second: (0, 0),
            daemons: crate::daemons::Daemons::default(),
            touch_hooks: crate::hooks::TouchHooks::new(config),
            subscriptions_blocked: false,
            cheap: false,
            memory: settings.memory,
        }
    }

    /// Forks worker `id`. In the child this never returns.
    fn spawn(&mut self, id: usize, respawn: bool) -> bool {
        let slot = self.scoreboard.slot(id);
        slot.respawn_count.fetch_add(1, Relaxed);
        slot.last_spawn.store(clock::now_secs(), Relaxed);
        slot.accepting.store(0, Relaxed);
        self.scoreboard.reset_requests(id);
        crate::app::before_fork();
        let forked = sys::fork();
        match &forked {
            Ok(Forked::Child) => crate::app::after_fork_child(),
            _ => crate::app::after_fork_parent(),
        }
        match forked {
            Ok(Forked::Child) => {
                // The child does not serve the master's descriptors.
                let _ = nix::unistd::close(self.sigpipe.as_raw_fd());
                if let Some(s) = &self.stats {
                    s.close_in_child();
                }
                if let Some(f) = &self.fifo {
                    let _ = nix::unistd::close(f.fd.as_raw_fd());
                }
                let mut ctx = WorkerCtx::new(
                    id,
                    self.settings,
                    &self.listeners,
                    self.scoreboard,
                    self.emperor,
                );
                ctx.master = Some(self.pid);
                self.worker_hooks(id, slot.respawn_count.load(Relaxed));
                worker::run(ctx)
            }
            Ok(Forked::Parent(pid)) => {
                slot.pid.store(pid.as_raw(), Relaxed);
                self.workers[id] = WorkerState {
                    pid: Some(pid),
                    cursed_at: None,
                    respawn_at: None,
                };
                if respawn {
                    vlog!("Respawned uWSGI worker {id} (new pid: {pid})");
                } else {
                    vlog!(
                        "spawned uWSGI worker {id} (pid: {pid}, cores: {})",
                        self.settings.threads
                    );
                }
                true
            }
            Err(e) => {
                vlog!("fork() of worker {id}: {e}");
                self.workers[id].respawn_at = Some(Instant::now() + Duration::from_secs(1));
                false
            }
        }
    }

    /// In a new worker: `post-fork`, then the `accepting*` hooks (vassal helper). A fatal
    /// failure stops the whole instance, as in uWSGI.
    fn worker_hooks(&self, id: usize, spawns: u64) {
        use crate::hooks::{Phase, run};
        let mut phases = vec![Phase::PostFork, Phase::Accepting];
        if spawns == 1 {
            phases.push(Phase::AcceptingOnce);
        }
        if id == 1 {
            phases.push(Phase::Accepting1);
            if spawns == 1 {
                phases.push(Phase::Accepting1Once);
            }
        }
        for p in phases {
            if run(self.config, p).is_err() {
                let _ = kill(self.pid, Signal::SIGINT);
                std::process::exit(1);
            }
        }
    }

    /// Spawns every worker (at start and after a reload).
    pub fn spawn_all(&mut self) {
        for id in 1..=self.settings.processes {
            self.spawn(id, false);
        }
    }

    fn alive(&self) -> impl Iterator<Item = (usize, Pid)> + '_ {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.pid.map(|p| (i, p)))
    }

    fn curse_all(&mut self, sig: Signal) {
        let now = Instant::now();
        let pids: Vec<(usize, Pid)> = self.alive().collect();
        for (id, pid) in pids {
            let _ = kill(pid, sig);
            self.workers[id].cursed_at.get_or_insert(now);
        }
    }

    /// FIFO `f`: fork a copy of the master that re-executes itself as a new, independent
    /// master on the same sockets (not governed by the Emperor). Dangerous, as in uWSGI.
    fn refork(&mut self) {
        match sys::fork() {
            Ok(Forked::Child) => {
                let _ = nix::unistd::setsid();
                crate::reload::exec_copy(self)
            }
            Ok(Forked::Parent(pid)) => vlog!("new master copy spawned with pid {pid}"),
            Err(e) => vlog!("fork(): {e}"),
        }
    }

    /// `cheap`: start without workers; the first connection spawns them.
    pub fn start_cheap(&mut self) {
        self.cheap = true;
        vlog!("cheap mode enabled: waiting for socket connection...");
    }

    /// FIFO `C` (SIGKILL), `idle` without `die-on-idle` (SIGINT): end the workers and
    /// respawn them at the next connection.
    fn go_cheap(&mut self, sig: Signal) {
        if self.phase != Phase::Running || self.cheap {
            return;
        }
        vlog!("going cheap...");
        self.cheap = true;
        let pids: Vec<(usize, Pid)> = self.alive().collect();
        for (id, pid) in pids {
            let _ = kill(pid, sig);
            self.workers[id].cursed_at.get_or_insert(Instant::now());
        }
        vlog!("cheap mode enabled: waiting for socket connection...");
    }

    /// SIGUSR2: what every worker is doing, from the scoreboard: per busy core the
    /// request it serves, in the line uWSGI's `what_i_am_doing()` prints.
    fn workers_status(&self) {
        for id in 1..=self.settings.processes {
            let slot = self.scoreboard.slot(id);
            let pid = slot.pid.load(Relaxed);
            let mut told = false;
            for core in 0..self.scoreboard.cores() {
                if let Some(r) = self.scoreboard.core(id, core).current() {
                    told = true;
                    vlog!(
                        "SIGUSR2: --- {} is managing request {} since {} ---",
                        self.worker_label(id, core, pid),
                        r.uri,
                        clock::ctime(r.since)
                    );
                }
            }
            if told {
                continue;
            }
            if slot.in_request.load(Relaxed) > 0 {
                let since = clock::ctime(slot.request_start.load(Relaxed) / 1_000_000);
                vlog!(
                    "SIGUSR2: --- uWSGI worker {id} (pid: {pid}) is managing a request since {since} ---"
                );
            } else if pid > 0 {
                vlog!("SIGUSR2: --- uWSGI worker {id} (pid: {pid}) is idle ---");
            }
        }
    }

    /// `uWSGI worker W (pid: P)`, or `uWSGI worker W core C (pid: P)` with threads.
    fn worker_label(&self, id: usize, core: usize, pid: i32) -> String {
        if self.scoreboard.cores() > 1 {
            format!("uWSGI worker {id} core {core} (pid: {pid})")
        } else {
            format!("uWSGI worker {id} (pid: {pid})")
        }
    }

    /// SIGHUP: graceful reload.
    pub fn grace_them_all(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        vlog!("...gracefully killing workers...");
        self.phase = Phase::Reloading;
        self.curse_all(Signal::SIGHUP);
    }

    /// SIGTERM (without die-on-term): brutal reload.
    pub fn reap_them_all(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        vlog!("...brutally killing workers...");
        self.phase = Phase::Reloading;
        self.curse_all(Signal::SIGTERM);
    }

    /// SIGINT/SIGQUIT: shutdown.
    pub fn kill_them_all(&mut self, code: i32) {
        if matches!(self.phase, Phase::Dying(_)) {
            return;
        }
        vlog!("SIGINT/SIGTERM received...killing workers...");
        self.phase = Phase::Dying(code);
        self.curse_all(Signal::SIGINT);
    }

    /// Emperor byte 2: graceful shutdown.
    pub fn gracefully_kill_them_all(&mut self) {
        if matches!(self.phase, Phase::Dying(_)) {
            return;
        }
        vlog!("graceful shutdown triggered...");
        self.phase = Phase::Dying(0);
        self.curse_all(Signal::SIGHUP);
    }

    /// SIGTSTP, FIFO `p`: pause the workers (they stop accepting; connections wait in the
    /// backlog), or resume them.
    pub fn suspend_resume(&mut self) {
        let total = self.scoreboard.slot(0);
        let suspend = total.suspended.load(Relaxed) == 0;
        if suspend {
            vlog!(
                "*** PAUSE (press start to resume, if you do not have a joypad send SIGTSTP) ***"
            );
        } else {
            vlog!("*** (SIGTSTP received) resuming workers ***");
        }
        total.suspended.store(u32::from(suspend), Relaxed);
        for id in 1..=self.settings.processes {
            self.scoreboard
                .slot(id)
                .suspended
                .store(u32::from(suspend), Relaxed);
        }
        let pids: Vec<Pid> = self.alive().map(|(_, p)| p).collect();
        for pid in pids {
            let _ = kill(pid, Signal::SIGTSTP);
        }
    }

    /// FIFO `w`, `touch-workers-reload`: SIGHUP to every worker; the master stays.
    pub fn reload_workers(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.curse_all(Signal::SIGHUP);
    }

    /// FIFO `W`: SIGINT to every worker; they are respawned.
    pub fn brutally_reload_workers(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let pids: Vec<(usize, Pid)> = self.alive().collect();
        for (id, pid) in pids {
            vlog!("killing worker {id} (pid: {pid})");
            let _ = kill(pid, Signal::SIGINT);
            self.workers[id].cursed_at.get_or_insert(Instant::now());
        }
    }

    /// FIFO `c`, `touch-chain-reload`: reload the workers one at a time, each once the
    /// previous one's replacement accepts.
    pub fn chain_reload(&mut self) {
        if self.chain == 0 {
            vlog!("chain reload starting...");
            self.chain = 1;
        } else {
            vlog!("chain reload already running...");
        }
    }

    fn check_chain(&mut self) {
        if self.chain == 0 || self.phase != Phase::Running {
            return;
        }
        if self.chain > 1 {
            let prev = self.chain - 1;
            if self.workers[prev].pid.is_some()
                && self.scoreboard.slot(prev).accepting.load(Relaxed) == 0
            {
                return;
            }
        }
        while self.chain <= self.settings.processes {
            let id = self.chain;
            if let Some(pid) = self.workers[id].pid
                && self.scoreboard.slot(id).accepting.load(Relaxed) == 1
            {
                if self.workers[id].cursed_at.is_none() {
                    vlog!("chain next victim is worker {id}");
                    let _ = kill(pid, Signal::SIGHUP);
                    self.workers[id].cursed_at = Some(Instant::now());
                }
                return;
            }
            self.chain += 1;
        }
        self.chain = 0;
        vlog!("chain reloading complete");
    }

    /// Emperor byte 30 (Broodlord): ask for reinforcements.
    fn sos(&self) {
        match &self.emperor {
            Some(e) => {
                e.notify(emperor::BROODLORD, "vassal_sos()");
            }
            None => vlog!("[broodlord] instance not governed by an Emperor !!!"),
        }
    }

    fn update_pidfiles(&self) {
        for (p, opt) in [
            (&self.settings.pidfile, "pidfile"),
            (&self.settings.pidfile2, "pidfile2"),
        ] {
            if let Some(p) = p
                && let Err(e) = crate::privileges::write_pidfile(opt, p, self.pid.as_raw() as u32)
            {
                vlog!("{e}");
            }
        }
    }

    fn on_fifo(&mut self) {
        let Some(f) = self.fifo.as_mut() else { return };
        let cmds = f.read();
        for c in cmds {
            match c {
                FifoCommand::GracefulReload => self.grace_them_all(),
                FifoCommand::BrutalReload => self.reap_them_all(),
                FifoCommand::GracefulShutdown => self.gracefully_kill_them_all(),
                FifoCommand::Shutdown => self.kill_them_all(0),
                FifoCommand::ReloadWorkers => self.reload_workers(),
                FifoCommand::BrutalReloadWorkers => self.brutally_reload_workers(),
                FifoCommand::ChainReload => self.chain_reload(),
                FifoCommand::Stats => self.stats_to_log(),
                FifoCommand::UpdatePidfiles => self.update_pidfiles(),
                FifoCommand::Sos => self.sos(),
                FifoCommand::Pause => self.suspend_resume(),
                FifoCommand::Slot(n) => {
                    if let Some(f) = self.fifo.as_mut() {
                        match f.switch(n) {
                            Ok(()) => vlog!(
                                "[master-fifo] enabled slot {} ({})",
                                f.slot,
                                f.path().display()
                            ),
                            Err(e) => vlog!("{e}"),
                        }
                    }
                }
                // ---- the remaining letters (vassal helper) ----
                FifoCommand::ReopenLog => {
                    if !crate::logging::reopen() {
                        vlog!(
                            "[master-fifo] log reopen needs log-master and a logto file: ignored"
                        );
                    }
                }
                FifoCommand::RotateLog => {
                    if !crate::logging::rotate() {
                        vlog!(
                            "[master-fifo] log rotation needs log-master and a logto file: ignored"
                        );
                    }
                }
                FifoCommand::Refork => self.refork(),
                FifoCommand::Cheap => self.go_cheap(Signal::SIGKILL),
                FifoCommand::Subscriptions => {
                    self.subscriptions_blocked = !self.subscriptions_blocked;
                    vlog!(
                        "{}",
                        if self.subscriptions_blocked {
                            "subscriptions blocked"
                        } else {
                            "subscriptions re-enabled"
                        }
                    );
                }
                FifoCommand::EmperorRescan => match self.emperor {
                    Some(_) => {
                        vlog!("asking the Emperor for a rescan...");
                        let _ = kill(nix::unistd::getppid(), Signal::SIGWINCH);
                    }
                    None => vlog!("[master-fifo] no Emperor to ask for a rescan"),
                },
                FifoCommand::CheaperDelta(d) => {
                    vlog!(
                        "[master-fifo] cheaper mode is not enabled: '{}' ignored",
                        if d > 0 { '+' } else { '-' }
                    )
                }
            }
        }
    }

    /// `touch-*`, `idle`/`die-on-idle`, `vassal-sos-backlog`.
    fn periodic(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        // ---- daemons and hook-touch (vassal helper) ----
        self.daemons.tick();
        self.touch_hooks.check(self.config);
        if let Some(p) = self.touch_reload.check() {
            vlog!(
                "*** {} has been touched... grace them all !!! ***",
                p.display()
            );
            self.grace_them_all();
            return;
        }
        if let Some(p) = self.touch_workers_reload.check() {
            vlog!(
                "*** {} has been touched... workers reload !!! ***",
                p.display()
            );
            self.reload_workers();
            return;
        }
        if let Some(p) = self.touch_chain_reload.check() {
            if self.chain == 0 {
                vlog!(
                    "*** {} has been touched... chain reload !!! ***",
                    p.display()
                );
                self.chain = 1;
            } else {
                vlog!(
                    "*** {} has been touched... but chain reload is already running ***",
                    p.display()
                );
            }
        }
        if self.settings.idle > 0 && !self.idle_reported {
            let total = self.scoreboard.total_requests();
            let busy = (1..=self.settings.processes)
                .any(|id| self.scoreboard.slot(id).in_request.load(Relaxed) > 0);
            if total != self.idle_since.0 || busy {
                self.idle_since = (total, Instant::now());
            } else if self.idle_since.1.elapsed() > Duration::from_secs(self.settings.idle) {
                vlog!(
                    "workers have been inactive for more than {} seconds",
                    self.settings.idle
                );
                self.idle_reported = true;
                if !self.settings.die_on_idle {
                    // Cheap mode until the next connection (vassal helper).
                    self.go_cheap(Signal::SIGINT);
                } else if let Some(e) = self.emperor {
                    if !e.notify(emperor::VOLUNTARY_SHUTDOWN, "die-on-idle") {
                        self.kill_them_all(0);
                    }
                } else {
                    self.kill_them_all(0);
                }
            }
        }
        if self.settings.vassal_sos_backlog > 0 && self.emperor.is_some() {
            let backlog = self
                .listeners
                .iter()
                .filter_map(|l| sys::net::tcp_listen_queue(l.borrow()))
                .map(|(q, _)| u64::from(q))
                .max()
                .unwrap_or(0);
            if backlog >= self.settings.vassal_sos_backlog {
                vlog!("asking Emperor for reinforcements (backlog: {backlog})...");
                self.sos();
            }
        }
    }

    fn stats_to_log(&self) {
        for line in imperium_config::show::show_config(self.config).lines() {
            vlog!("{line}");
        }
        vlog!(
            "\tworkers total requests: {}",
            self.scoreboard.total_requests()
        );
        vlog!("-----------------");
        for id in 1..=self.settings.processes {
            let s = self.scoreboard.slot(id);
            vlog!(
                "\tworker {id} requests: {} (pid: {})",
                s.requests.load(Relaxed),
                s.pid.load(Relaxed)
            );
            vlog!("-----------------");
        }
        vlog!("");
    }

    fn on_signal(&mut self, sig: i32) {
        let Ok(sig) = Signal::try_from(sig) else {
            return;
        };
        match sig {
            Signal::SIGHUP => self.grace_them_all(),
            Signal::SIGTERM if self.settings.die_on_term => self.kill_them_all(0),
            Signal::SIGTERM => self.reap_them_all(),
            Signal::SIGQUIT if self.settings.die_on_term => self.reap_them_all(),
            Signal::SIGQUIT | Signal::SIGINT => self.kill_them_all(0),
            Signal::SIGUSR1 => self.stats_to_log(),
            Signal::SIGUSR2 => self.workers_status(),
            Signal::SIGTSTP => self.suspend_resume(),
            _ => {}
        }
    }

    fn on_emperor(&mut self) {
        let Some(e) = self.emperor else { return };
        match e.read_command() {
            Command::Stop => {
                vlog!("received message 0 from emperor");
                let _ = crate::hooks::run(self.config, crate::hooks::Phase::EmperorStop);
                e.close();
                self.emperor = None;
                self.kill_them_all(0);
            }
            Command::Reload => {
                vlog!("received message 1 from emperor");
                let _ = crate::hooks::run(self.config, crate::hooks::Phase::EmperorReload);
                self.grace_them_all();
            }
            Command::GracefulStop => {
                vlog!("received message 2 from emperor");
                let _ = crate::hooks::run(self.config, crate::hooks::Phase::EmperorStop);
                e.close();
                self.emperor = None;
                self.gracefully_kill_them_all();
            }
            Command::Unknown(b) => vlog!("received message {b} from emperor"),
            Command::Lost => {
                vlog!("lost connection with my emperor !!!");
                let _ = crate::hooks::run(self.config, crate::hooks::Phase::EmperorLost);
                e.close();
                self.emperor = None;
                self.kill_them_all(1);
            }
        }
    }

    /// Collects dead children and respawns workers as needed.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let (pid, signal) = match status {
                WaitStatus::Exited(p, _) => (p, None),
                WaitStatus::Signaled(p, s, _) => (p, Some(s as i32)),
                _ => continue,
            };
            let Some(id) = self.workers.iter().position(|w| w.pid == Some(pid)) else {
                // ---- attached daemons (vassal helper) ----
                match self.daemons.reaped(pid, self.phase != Phase::Running) {
                    crate::daemons::Death::Handled => continue,
                    crate::daemons::Death::Control => {
                        self.gracefully_kill_them_all();
                        continue;
                    }
                    crate::daemons::Death::Unknown => {}
                }
                match status {
                    WaitStatus::Exited(_, c) => vlog!("subprocess {pid} exited with code {c}"),
                    _ => vlog!("subprocess {pid} exited by signal {}", signal.unwrap_or(0)),
                }
                continue;
            };
            let slot = self.scoreboard.slot(id);
            slot.pid.store(0, Relaxed);
            slot.accepting.store(0, Relaxed);
            self.scoreboard.reset_requests(id);
            let cursed = self.workers[id].cursed_at.take();
            self.workers[id].pid = None;
            if self.phase != Phase::Running {
                let secs = cursed.map_or(0, |c| c.elapsed().as_secs());
                vlog!("worker {id} buried after {secs} seconds");
                continue;
            }
            if self.settings.lazy_apps
                && self.settings.need_app
                && status == WaitStatus::Exited(pid, crate::FAILED_APP_CODE)
            {
                // need-app + lazy-apps: a worker that could not load its app ends the instance.
                vlog!("OOPS ! failed loading app in worker {id} (pid {pid})");
                self.kill_them_all(crate::FAILED_APP_CODE);
                continue;
            }
            if self.cheap {
                vlog!("worker {id} (pid: {pid}) gone (cheap mode)");
                continue;
            }
            let wanted_to_go_on = slot.manage_next_request.load(Relaxed) == 1;
            if wanted_to_go_on && cursed.is_none() {
                match signal {
                    Some(s) => vlog!(
                        "DAMN ! worker {id} (pid: {pid}) died, killed by signal {s} :( trying respawn ..."
                    ),
                    None => vlog!("DAMN ! worker {id} (pid: {pid}) died :( trying respawn ..."),
                }
            } else {
                vlog!("worker {id} killed successfully (pid: {pid})");
            }
            // Fork-bomb guard: more respawns in one second than workers waits a second.
            let now = clock::now_secs();
            if self.respawns_this_second.0 == now {
                self.respawns_this_second.1 += 1;
            } else {
                self.respawns_this_second = (now, 1);
            }
            if self.chain == id {
                self.chain += 1;
            }
            if self.respawns_this_second.1 > self.settings.processes.max(1) * 2 {
                vlog!("worker respawning too fast !!! i have to sleep a bit (1 seconds)...");
                self.workers[id].respawn_at = Some(Instant::now() + Duration::from_secs(1));
            } else {
                self.spawn(id, true);
            }
        }
    }

    /// The periodic checks: harakiri, worker lifetime, reload mercy, delayed respawns.
    fn checks(&mut self) {
        let now = clock::now_secs();
        let ids: Vec<(usize, Pid)> = self.alive().collect();
        for (id, pid) in ids {
            let slot = self.scoreboard.slot(id);
            // Harakiri per core: one stuck request thread condemns its worker.
            if let Some(core) = self.scoreboard.harakiri_due(id, now) {
                vlog!("*** HARAKIRI ON WORKER {id} (pid: {pid}, try: 1) ***");
                if self.settings.harakiri_verbose {
                    for what in ["syscall", "wchan"] {
                        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/{what}")) {
                            vlog!("HARAKIRI: -- {what}> {}", s.trim_end());
                        }
                    }
                }
                // What the stuck core was doing (uWSGI's worker prints this on the SIGUSR2
                // its master sends before the SIGKILL).
                let label = self.worker_label(id, core, pid.as_raw());
                if let Some(r) = self.scoreboard.core(id, core).current() {
                    vlog!(
                        "HARAKIRI: --- {label} WAS managing request {} since {} ---",
                        r.uri,
                        clock::ctime(r.since)
                    );
                }
                // With `py-tracebacker`, every thread's stack (uWSGI's Python harakiri hook).
                if let Some(base) = self.config.get("py-tracebacker").filter(|b| !b.is_empty()) {
                    crate::app::tracebacker::log_harakiri_traceback(
                        base,
                        id,
                        Duration::from_secs(self.settings.socket_timeout),
                    );
                }
                vlog!("HARAKIRI triggered by worker {id} core {core} !!!");
                self.scoreboard.disarm_harakiri(id);
                slot.harakiri_count.fetch_add(1, Relaxed);
                let _ = kill(pid, Signal::SIGKILL);
                self.workers[id].cursed_at.get_or_insert(Instant::now());
                continue;
            }
            // ---- memory limits (vassal helper) ----
            if self.memory.any()
                && self.workers[id].cursed_at.is_none()
                && let Some((vsz, rss)) = crate::limits::usage(pid.as_raw())
            {
                let lived = now.saturating_sub(slot.last_spawn.load(Relaxed))
                    >= self.settings.min_worker_lifetime;
                match self.memory.judge(vsz, rss, lived) {
                    crate::limits::Verdict::Fine => {}
                    crate::limits::Verdict::Kill(what, n) => {
                        vlog!("*** EVIL RELOAD ON WORKER {id} {what}: {n} (pid: {pid}) ***");
                        let _ = kill(pid, Signal::SIGKILL);
                        self.workers[id].cursed_at = Some(Instant::now());
                        continue;
                    }
                    crate::limits::Verdict::Recycle(what, n) => {
                        vlog!(
                            "worker {id} (pid: {pid}) {what} usage {n} bytes is over its limit: recycling it"
                        );
                        let _ = kill(pid, Signal::SIGHUP);
                        self.workers[id].cursed_at = Some(Instant::now());
                    }
                }
            }
            let lifetime = self.settings.max_worker_lifetime;
            let spawned = slot.last_spawn.load(Relaxed);
            if lifetime > 0
                && self.phase == Phase::Running
                && self.workers[id].cursed_at.is_none()
                && now.saturating_sub(spawned) >= lifetime
            {
                vlog!(
                    "worker {id} lifetime reached, it was running for {} second(s)",
                    now.saturating_sub(spawned)
                );
                let _ = kill(pid, Signal::SIGHUP);
                self.workers[id].cursed_at = Some(Instant::now());
            }
            if let Some(c) = self.workers[id].cursed_at
                && c.elapsed() > Duration::from_secs(self.settings.worker_reload_mercy)
            {
                vlog!("worker {id} (pid: {pid}) is taking too much time to die...NO MERCY !!!");
                let _ = kill(pid, Signal::SIGKILL);
            }
            if let Phase::Dying(_) | Phase::Reloading = self.phase
                && self.settings.reload_mercy > 0
                && let Some(c) = self.workers[id].cursed_at
                && c.elapsed() > Duration::from_secs(self.settings.reload_mercy)
            {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        if self.phase == Phase::Running {
            for id in 1..self.workers.len() {
                if self.workers[id].pid.is_none()
                    && self.workers[id]
                        .respawn_at
                        .is_some_and(|t| t <= Instant::now())
                {
                    self.spawn(id, true);
                }
            }
        }
    }

    /// The loop; returns the exit code (a reload does not return).
    pub fn run(&mut self) -> i32 {
        let mut last_check = Instant::now();
        // ---- master start: daemons, then `master-start` hooks (vassal helper) ----
        self.daemons.spawn_all();
        if crate::hooks::run(self.config, crate::hooks::Phase::MasterStart).is_err() {
            self.kill_them_all(1);
        }
        loop {
            if self.phase != Phase::Running && self.alive().next().is_none() {
                // ---- before exit or reload: stop the daemons, `as-user-atexit` (vassal helper) ----
                self.daemons.stop_all(self.phase == Phase::Reloading);
                let _ = crate::hooks::run(self.config, crate::hooks::Phase::AsUserAtexit);
                match self.phase {
                    Phase::Reloading => {
                        crate::logging::drain();
                        crate::logging::before_exec();
                        crate::reload::exec(self)
                    }
                    Phase::Dying(code) => {
                        if let Some(n) = &self.notifier {
                            let _ = n.stopping("uWSGI is shutting down");
                        }
                        self.shutdown_cleanup();
                        vlog!("goodbye to uWSGI.");
                        crate::logging::drain();
                        return code;
                    }
                    Phase::Running => unreachable!(),
                }
            }
            let stats_fds: Vec<std::os::fd::BorrowedFd<'_>> = self
                .stats
                .as_ref()
                .map(|s| s.poll_fds())
                .unwrap_or_default();
            let mut fds = vec![PollFd::new(self.sigpipe.as_fd(), PollFlags::POLLIN)];
            let emperor_at = self.emperor.map(|e| {
                fds.push(PollFd::new(sys::fd::borrow(e.fd), PollFlags::POLLIN));
                fds.len() - 1
            });
            let fifo_at = self.fifo.as_ref().map(|f| {
                fds.push(PollFd::new(f.fd.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            // ---- cheap mode: the listeners wake the master (vassal helper) ----
            let cheap_at = fds.len();
            if self.cheap {
                for l in &self.listeners {
                    fds.push(PollFd::new(l.fd.as_fd(), PollFlags::POLLIN));
                }
            }
            // ---- the log master's pipes (vassal helper) ----
            let log_fds = crate::logging::poll_fds();
            let log_at = fds.len();
            for f in &log_fds {
                fds.push(PollFd::new(sys::fd::borrow(*f), PollFlags::POLLIN));
            }
            let stats_at = fds.len();
            for f in &stats_fds {
                fds.push(PollFd::new(*f, PollFlags::POLLIN));
            }
            let tick = Duration::from_secs(self.settings.check_interval)
                .saturating_sub(last_check.elapsed());
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(tick.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX),
            );
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            drop(stats_fds);

            if ready[0] {
                let mut buf = [0u8; 64];
                while let Ok(n) = nix::unistd::read(&self.sigpipe, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    for &s in &buf[..n] {
                        self.on_signal(i32::from(s));
                    }
                }
            }
            if self.cheap
                && ready[cheap_at..log_at].iter().any(|r| *r)
                && self.alive().next().is_none()
            {
                vlog!("[cheap] a connection arrived: spawning the workers");
                self.cheap = false;
                self.idle_reported = false;
                self.idle_since = (self.scoreboard.total_requests(), Instant::now());
                self.spawn_all();
            }
            if ready[log_at..stats_at].iter().any(|r| *r) {
                crate::logging::drain();
            }
            if let Some(i) = emperor_at
                && ready[i]
            {
                self.on_emperor();
            }
            if let Some(i) = fifo_at
                && ready[i]
            {
                self.on_fifo();
            }
            if let Some(mut st) = self.stats.take() {
                let src = stats::Sources {
                    listeners: &self.listeners,
                    scoreboard: self.scoreboard,
                };
                st.serve(
                    &ready[stats_at..],
                    &|| stats::document(&src),
                    Duration::from_secs(self.settings.socket_timeout),
                );
                self.stats = Some(st);
            }
            self.reap();
            self.check_chain();
            if last_check.elapsed() >= Duration::from_secs(self.settings.check_interval) {
                last_check = Instant::now();
                self.checks();
                self.periodic();
                crate::logging::tick();
            }
        }
    }

    /// At exit: `vacuum` removes the sockets and pidfiles.
    pub fn shutdown_cleanup(&self) {
        if !self.settings.vacuum {
            return;
        }
        sockets::vacuum(&self.listeners);
        if let Some(st) = &self.stats
            && let Some((p, _)) = &st.unix_path
            && std::fs::remove_file(p).is_ok()
        {
            vlog!("VACUUM: unix socket {} (stats) removed.", p.display());
        }
        for (p, what) in [
            (&self.settings.pidfile, "pidfile"),
            (&self.settings.pidfile2, "pidfile2"),
        ] {
            if let Some(p) = p
                && std::fs::remove_file(p).is_ok()
            {
                vlog!("VACUUM: {what} removed.");
            }
        }
    }

    /// Tells the Emperor (byte 1) and systemd (`READY=1`) the instance is ready.
    pub fn notify_ready(&self) {
        if let Some(n) = &self.notifier {
            let _ = n.ready("uWSGI is ready");
        }
        if let Some(e) = &self.emperor
            && !e.notify(emperor::READY, "emperor_notify_ready()")
        {
            std::process::exit(1);
        }
    }
}
