//! A worker process: waits on its epoll set (`park`: the shared listening sockets and the
//! connections waiting for bytes), accepts, serves, and tells the Emperor (if any) it
//! accepts (5, worker 1 only), served its first request (17) and is alive (26 every
//! `heartbeat` seconds). It ends after SIGHUP (once its current requests are done),
//! immediately on SIGINT/SIGTERM/SIGQUIT, or after `max-requests` requests.
//!
//! With `threads = N` a worker runs N request threads (cores), named
//! `uWSGIWorker<id>Core<n>` as in uWSGI; they are started only here, after the fork, so
//! the master stays single-threaded. Core 0 always takes work; the others are reserves
//! that join while the cores below them are held by slow requests (`duty`).

use crate::conn::Conn;
use crate::duty::{self, Duty};
use crate::emperor::{self, Emperor};
use crate::park::{Park, Ready};
use crate::scoreboard::Scoreboard;
use crate::settings::Settings;
use crate::sockets::Listener;
use crate::sys::{clock, fd as sys_fd, signals};
use crate::vlog;
use nix::poll::{PollTimeout, poll};
use nix::sys::socket::{SockFlag, accept4};
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Exit status of a worker that stopped gracefully (uWSGI's `UWSGI_RELOAD_CODE`).
pub const RELOAD_CODE: i32 = 17;

/// Everything a worker needs.
pub struct WorkerCtx<'a> {
    /// 1-based worker number.
    pub id: usize,
    pub settings: &'a Settings,
    pub listeners: &'a [Listener],
    pub scoreboard: Scoreboard,
    pub emperor: Option<Emperor>,
    /// `SERVER_NAME` of HTTP requests.
    pub server_name: String,
    /// Unix time this worker started.
    pub spawned_at: u64,
    /// The master's pid (`None` without a master).
    pub master: Option<nix::unistd::Pid>,
    loyal: AtomicBool,
    next_heartbeat: Mutex<Option<Instant>>,
}

impl<'a> WorkerCtx<'a> {
    pub fn new(
        id: usize,
        settings: &'a Settings,
        listeners: &'a [Listener],
        scoreboard: Scoreboard,
        emperor: Option<Emperor>,
    ) -> WorkerCtx<'a> {
        let server_name = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        WorkerCtx {
            id,
            settings,
            listeners,
            scoreboard,
            emperor,
            server_name,
            spawned_at: clock::now_secs(),
            master: None,
            loyal: AtomicBool::new(false),
            next_heartbeat: Mutex::new(None),
        }
    }

    /// True when the request being served will be this worker's last (max-requests).
    pub fn last_request_due(&self) -> bool {
        let max = self.settings.max_requests;
        max > 0
            && self.scoreboard.slot(self.id).delta_requests.load(Relaxed) + 1 >= max
            && clock::now_secs().saturating_sub(self.spawned_at)
                >= self.settings.min_worker_lifetime
    }

    /// Bookkeeping after each request: loyalty to the Emperor, max-requests,
    /// `reload-on-as`/`reload-on-rss` (checked here after every request, as uWSGI does;
    /// the master checks them too on its tick).
    pub fn after_request(&self) {
        if let Some(e) = &self.emperor
            && !self.loyal.swap(true, Relaxed)
        {
            vlog!("announcing my loyalty to the Emperor...");
            e.notify(emperor::LOYAL, "loyalty");
        }
        let slot = self.scoreboard.slot(self.id);
        let lived =
            clock::now_secs().saturating_sub(self.spawned_at) >= self.settings.min_worker_lifetime;
        let max = self.settings.max_requests;
        let memory = self.settings.memory;
        let done = lived
            && ((max > 0 && slot.delta_requests.load(Relaxed) >= max)
                || ((memory.rss > 0 || memory.vsz > 0)
                    && crate::limits::usage(std::process::id() as i32)
                        .is_some_and(|(vsz, rss)| memory.graceful_due(vsz, rss))));
        if done {
            goodbye(slot);
        }
    }

    fn heartbeat(&self) {
        let (Some(e), hb) = (&self.emperor, self.settings.heartbeat) else {
            return;
        };
        if hb == 0 {
            return;
        }
        let now = Instant::now();
        let mut next = self
            .next_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if next.is_none_or(|t| t <= now) {
            e.notify(emperor::HEARTBEAT, "heartbeat");
            *next = Some(now + Duration::from_secs(hb));
        }
    }

    /// How long the accept loop may sleep: short enough to notice a graceful stop and to
    /// send heartbeats on time.
    fn poll_timeout(&self) -> Duration {
        let mut t = Duration::from_millis(1000);
        if let Some(next) = *self
            .next_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            t = t.min(next.saturating_duration_since(Instant::now()));
        }
        t
    }
}

/// The worker ends once its current requests are done (uWSGI's `goodbye_cruel_world`:
/// max-requests, reload-on-rss/-as, reload-on-exception); logged once.
pub fn goodbye(slot: &crate::scoreboard::Slot) {
    if slot.manage_next_request.swap(0, Relaxed) == 1 {
        vlog!(
            "...The work of process {} is done. Seeya!",
            std::process::id()
        );
    }
    signals::request_graceful();
}

/// Runs worker `ctx.id` in this (freshly forked) process; never returns.
pub fn run(ctx: WorkerCtx<'_>) -> ! {
    if let Err(e) = signals::install_worker() {
        vlog!("worker {}: cannot install signal handlers: {e}", ctx.id);
        std::process::exit(1);
    }
    // A worker does not outlive its master (uWSGI's `no-orphans`, always on): an orphan
    // would keep accepting on sockets nobody supervises any more.
    if let Some(master) = ctx.master {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        if nix::unistd::getppid() != master {
            std::process::exit(1);
        }
    }
    let slot = ctx.scoreboard.slot(ctx.id);
    slot.pid.store(std::process::id() as i32, Relaxed);
    slot.delta_requests.store(0, Relaxed);
    ctx.scoreboard.reset_requests(ctx.id);
    slot.manage_next_request.store(1, Relaxed);
    slot.accepting.store(1, Relaxed);
    if let Some(e) = &ctx.emperor
        && ctx.id == 1
        && !e.notify(emperor::ACCEPTING, "emperor-i-am-ready-to-accept")
    {
        vlog!("lost communication with the Emperor, goodbye...");
        std::process::exit(1);
    }
    if !init_app(&ctx) {
        std::process::exit(crate::FAILED_APP_CODE);
    }
    serve(&ctx);
    crate::app::atexit();
    std::process::exit(RELOAD_CODE)
}

/// Runs the application plugin's per-worker setup (post-fork hooks, lazy apps); false
/// when `need-app` is set and this worker has no app. With a plugin, SIGINT/SIGTERM/SIGQUIT
/// end the worker from a watcher thread that runs the app's atexit hooks first (as
/// uWSGI's workers do).
pub fn init_app(ctx: &WorkerCtx<'_>) -> bool {
    if crate::app::loaded() {
        match signals::end_via_pipe() {
            Ok(fd) => {
                let watcher = std::thread::Builder::new()
                    .name("uWSGIWorkerEnd".into())
                    .spawn(move || {
                        let mut b = [0u8; 1];
                        while let Err(nix::Error::EINTR) = nix::unistd::read(&fd, &mut b) {}
                        crate::app::atexit();
                        signals::end_now()
                    });
                if let Err(e) = watcher {
                    vlog!("worker {}: cannot start the end watcher: {e}", ctx.id);
                }
            }
            Err(e) => vlog!("worker {}: pipe(): {e}", ctx.id),
        }
    }
    let apps = crate::app::worker_init(ctx.id);
    if apps == 0 && ctx.settings.lazy_apps && ctx.settings.need_app {
        vlog!("*** no app loaded. GAME OVER ***");
        return false;
    }
    true
}

/// Serves with `threads` request threads (the calling thread is core 0, the others its
/// reserves: `duty`); returns when the worker must stop and every thread has finished its
/// request.
pub fn serve(ctx: &WorkerCtx<'_>) {
    let threads = ctx.settings.threads.max(1);
    let park = match Park::new(ctx.listeners.iter().map(|l| l.fd.as_fd())) {
        Ok(p) => p,
        Err(e) => {
            vlog!("worker {}: epoll: {e}", ctx.id);
            std::process::exit(1);
        }
    };
    let (park, duty) = (&park, &Duty::new(threads));
    if threads == 1 {
        crate::app::thread_init(0);
        serve_loop(ctx, park, duty);
        finish(ctx, park, 0);
        return;
    }
    std::thread::scope(|scope| {
        let mut reserves = Vec::new();
        for core in 1..threads {
            let name = format!("uWSGIWorker{}Core{core}", ctx.id);
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, move || {
                    crate::app::thread_init(core);
                    reserve_loop(ctx, park, duty, core);
                    finish(ctx, park, core);
                });
            match spawned {
                Ok(t) => reserves.push(t.thread().clone()),
                Err(e) => vlog!("worker {}: cannot start request thread {core}: {e}", ctx.id),
            }
        }
        duty.set_reserves(reserves);
        crate::app::thread_init(0);
        serve_loop(ctx, park, duty);
        finish(ctx, park, 0);
    });
}

/// How often parked connections are checked for their deadline.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How often an idle worker may hand its free heap pages back.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// One request thread as it takes work from the park.
struct Core<'w, 'c> {
    ctx: &'w WorkerCtx<'c>,
    park: &'w Park,
    duty: &'w Duty,
    core: usize,
    /// Changes with every connection this core serves (what a reserve watches).
    stamp: u64,
    next_sweep: Instant,
    /// Connections served since the heap was last trimmed, and when that was.
    untrimmed: u64,
    trimmed_at: Instant,
}

impl<'w, 'c> Core<'w, 'c> {
    fn new(ctx: &'w WorkerCtx<'c>, park: &'w Park, duty: &'w Duty, core: usize) -> Self {
        Core {
            ctx,
            park,
            duty,
            core,
            stamp: 0,
            next_sweep: Instant::now() + SWEEP_EVERY,
            untrimmed: 0,
            trimmed_at: Instant::now(),
        }
    }

    /// Waits up to `timeout` for the next ready listener or connection (taking up to
    /// `batch` from the kernel at once) and serves it, accepting up to `accepts`
    /// connections for a listener; then closes the parked connections past their deadline
    /// if a sweep is due.
    fn serve_next(&mut self, batch: usize, accepts: usize, timeout: Duration) {
        let timeout = timeout.min(self.next_sweep.saturating_duration_since(Instant::now()));
        match self.wait(batch, timeout) {
            Ok(Some(Ready::Listener(pos))) => self.accept(pos, accepts),
            Ok(Some(Ready::Conn(token))) => {
                if let Some(p) = self.park.take(token) {
                    self.serve(Conn::resume(self.ctx, self.core, p));
                }
            }
            Ok(None) => {}
            Err(e) => {
                vlog!("worker {}: epoll_wait(): {e}", self.ctx.id);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let now = Instant::now();
        if now >= self.next_sweep {
            for p in self.park.expired(now) {
                Conn::expire(self.ctx, p);
            }
            self.next_sweep = now + SWEEP_EVERY;
        }
    }

    /// The next ready listener or connection (`Park::next`). The lead is inactive in the
    /// roster while it blocks, so the reserves sleep meanwhile.
    fn wait(&mut self, batch: usize, timeout: Duration) -> nix::Result<Option<Ready>> {
        if self.core != 0 {
            return self.park.next(batch, timeout);
        }
        if let Some(r) = self.park.next(batch, Duration::ZERO)? {
            return Ok(Some(r));
        }
        // About to sleep: the memory a burst of connections needed goes back to the
        // kernel (at most once a second).
        if self.untrimmed > 0 && self.trimmed_at.elapsed() >= TRIM_EVERY {
            crate::sys::trim_heap();
            (self.untrimmed, self.trimmed_at) = (0, Instant::now());
        }
        self.duty.set_active(0, false);
        let r = self.park.next(batch, timeout);
        self.duty.set_active(0, true);
        r
    }

    /// Accepts up to `max` connections from listener `pos` and serves each.
    fn accept(&mut self, pos: usize, max: usize) {
        let listener = &self.ctx.listeners[pos];
        for _ in 0..max {
            match accept4(listener.raw(), SockFlag::SOCK_CLOEXEC) {
                Ok(raw) => self.serve(Conn::new(self.ctx, self.core, pos, sys_fd::take(raw))),
                Err(nix::Error::EAGAIN) => return,
                Err(nix::Error::EINTR | nix::Error::ECONNABORTED) => {}
                Err(e) => {
                    vlog!("accept(): {e} on socket {}", listener.name);
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
            if signals::graceful_requested() {
                return;
            }
        }
    }

    /// Serves a connection with this core marked busy in the roster.
    fn serve(&mut self, conn: Conn<'_>) {
        self.stamp += 1;
        self.untrimmed += 1;
        self.duty.begin(self.core, self.stamp);
        serve_conn(self.ctx, self.park, self.core, conn);
        self.duty.free(self.core);
    }
}

/// The loop of the lead request thread (core 0): wait for a listening socket or a parked
/// connection to be ready, serve it, repeat until the worker must stop.
fn serve_loop(ctx: &WorkerCtx<'_>, park: &Park, duty: &Duty) {
    // One kernel wake-up hands over up to 64 ready connections; one listener event
    // accepts up to 64 connections unless other workers share the socket.
    let accepts = if ctx.settings.processes <= 1 { 64 } else { 1 };
    let mut lead = Core::new(ctx, park, duty, 0);
    loop {
        if signals::graceful_requested() {
            return;
        }
        if signals::take_usr1() {
            vlog!(
                "worker {} total requests: {}",
                ctx.id,
                ctx.scoreboard.slot(ctx.id).requests.load(Relaxed)
            );
        }
        ctx.heartbeat();
        if ctx.scoreboard.slot(ctx.id).suspended.load(Relaxed) == 1 {
            // Paused: accept nothing until the master resumes (it sends SIGTSTP to wake us).
            let _ = poll(
                &mut [],
                PollTimeout::try_from(ctx.poll_timeout().as_millis() as i32)
                    .unwrap_or(PollTimeout::MAX),
            );
            continue;
        }
        lead.serve_next(64, accepts, ctx.poll_timeout());
    }
}

/// The loop of a reserve request thread (cores 1..N): off duty while a core below it is
/// free; on duty, serving like the lead, while every core below it stays in the request
/// it was in for `duty::PATIENCE` or more.
fn reserve_loop(ctx: &WorkerCtx<'_>, park: &Park, duty: &Duty, core: usize) {
    let mut reserve = Core::new(ctx, park, duty, core);
    loop {
        if signals::graceful_requested() {
            return;
        }
        let seen = duty.lower(core);
        if !seen.all_busy() {
            duty.rest(core, ctx.poll_timeout());
            continue;
        }
        std::thread::sleep(duty::PATIENCE);
        duty.set_active(core, true);
        while duty.lower(core) == seen && !signals::graceful_requested() {
            if ctx.scoreboard.slot(ctx.id).suspended.load(Relaxed) == 1 {
                break;
            }
            reserve.serve_next(1, 1, duty::PATIENCE);
        }
        duty.set_active(core, false);
    }
}

/// Serves a connection, and parks it when it waits for more bytes (serving it again at once
/// if its client sent more while it was being served and another thread saw that).
fn serve_conn<'a>(ctx: &'a WorkerCtx<'a>, park: &Park, core: usize, mut conn: Conn<'a>) {
    loop {
        let token = conn.token();
        let Some(p) = conn.serve() else {
            if let Some(t) = token {
                park.forget(t);
            }
            return;
        };
        match park.park(p) {
            Ok(None) => return,
            Ok(Some(p)) => conn = Conn::resume(ctx, core, p),
            Err((_, e)) => {
                vlog!("epoll_ctl(): {e}: closing a kept-alive connection");
                return;
            }
        }
    }
}

/// After the loop of a stopping worker: the connections still parked are served once
/// more (a stopping connection is never parked again): a client already accepted gets
/// its first request answered, an idle kept-alive one is closed.
fn finish(ctx: &WorkerCtx<'_>, park: &Park, core: usize) {
    for p in park.drain() {
        serve_conn(ctx, park, core, Conn::resume(ctx, core, p));
    }
}
