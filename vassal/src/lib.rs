//! The vassal: one uWSGI-compatible instance. A master process binds the listening sockets
//! (or takes them over after a reload, or from fd 0), forks its workers before any thread
//! exists, respawns them, kills stuck ones (`harakiri`), reloads by re-executing itself
//! with its sockets kept, serves the stats JSON, and speaks the Emperor protocol when an
//! Emperor governs it. Workers accept on the shared sockets and speak the uwsgi protocol
//! or HTTP/1.1.
//!
//! Module map: [`settings`] (options), [`addr`] and [`sockets`] (listening sockets),
//! [`proto`] (parsers and response framing, pure), [`conn`] and [`worker`] (serving),
//! [`master`] and [`reload`] (process model), [`emperor`] (the Emperor client), [`stats`],
//! [`scoreboard`] (shared counters), [`privileges`], [`log`] and [`logging`] (loggers, the
//! log master, request lines), [`hooks`] and [`waits`] (startup phases), [`daemons`]
//! (attached daemons), [`limits`] (memory limits, `limit-post`), [`patch`] (binary
//! patching), and [`sys`], the only module with `unsafe`.

pub mod addr;
pub mod app;
pub mod conn;
pub mod daemons;
pub mod duty;
pub mod emperor;
pub mod error;
pub mod fifo;
pub mod hooks;
pub mod isolation;
pub mod limits;
pub mod log;
pub mod logging;
pub mod master;
pub mod park;
pub mod patch;
pub mod privileges;
pub mod proto;
pub mod reload;
pub mod scoreboard;
pub mod settings;
pub mod sockets;
pub mod stats;
pub mod sys;
pub mod touch;
pub mod waits;
pub mod worker;

/// Re-exported for the integration tests (they build on the root package's dependencies).
pub use serde_json;

use error::VassalError;
use master::{Master, ReloadPlan};
use settings::Settings;

/// Exit status when `need-app` is set and no application could be loaded (uWSGI's
/// `UWSGI_FAILED_APP_CODE`).
pub const FAILED_APP_CODE: i32 = 22;

/// Runs the instance with its resolved configuration; returns the process exit code.
pub fn run(config: &imperium_config::Config) -> i32 {
    match start(config) {
        Ok(code) => code,
        Err(e) => {
            vlog!("imperium: {e}");
            1
        }
    }
}

/// `daemonize`: outside an Emperor, detach (fork, setsid) and log to the file; under an
/// Emperor, refuse to detach (the Emperor would lose its vassal) and only log to the file.
fn daemonize(file: &str, governed: bool) -> Result<(), VassalError> {
    if governed {
        vlog!(
            "*** daemonize = {file} refused: an Emperor governs this instance and a vassal must not detach; logging to {file} instead ***"
        );
        return Ok(());
    }
    match sys::fork().map_err(|e| VassalError::sys("daemonize: fork()", e))? {
        sys::Forked::Parent(_) => std::process::exit(0),
        sys::Forked::Child => sys::signals::unblock_all()
            .map_err(|e| VassalError::sys("daemonize: sigprocmask()", e))?,
    }
    nix::unistd::setsid().map_err(|e| VassalError::sys("daemonize: setsid()", e))?;
    Ok(())
}

fn start(config: &imperium_config::Config) -> Result<i32, VassalError> {
    let mut settings = Settings::from_config(config)?;
    // ---- hooks: `asap` runs before anything else, logging included (vassal helper) ----
    hooks::validate(config).map_err(|e| VassalError::Config(e.0))?;
    hooks::run_or_exit(config, hooks::Phase::Asap);
    let emperor = emperor::Emperor::from_env();
    if let Some(e) = &emperor {
        settings.master = true;
        vlog!("*** has_emperor mode detected (fd: {}) ***", e.fd);
    }
    // ---- logging: logto/daemonize, log-date, log-format, the log master (vassal helper) ----
    let reloading = std::env::var_os("UWSGI_RELOADS").is_some();
    if let Some(file) = settings.daemonize.clone() {
        if !reloading {
            daemonize(&file, emperor.is_some())?;
        }
        logging::setup(config, Some(&file), reloading)?;
    } else {
        logging::setup(config, settings.logto.as_deref(), reloading)?;
    }

    let notifier = imperium_systemd::Notifier::from_env();
    if let Some(n) = &notifier {
        let _ = n.status("initializing uWSGI");
    }

    // Facts for the banner and for the reload.
    let reloads: Option<u64> = std::env::var("UWSGI_RELOADS")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let cwd = std::env::current_dir().map_err(|e| VassalError::sys("getcwd()", e))?;
    // `binary-path` names what a reload re-executes (uWSGI's "force binary path").
    let binary = match config.get("binary-path").filter(|b| !b.is_empty()) {
        Some(b) => std::path::PathBuf::from(b),
        None => {
            std::env::current_exe().map_err(|e| VassalError::sys("detecting the binary path", e))?
        }
    };
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    sys::env::set("UWSGI_RELOADS", &reloads.unwrap_or(0).to_string());

    vlog!(
        "*** Starting imperium {} (uWSGI-compatible) on [{}] ***",
        imperium_config::VERSION,
        sys::clock::ctime(sys::clock::now_secs())
    );
    vlog!("current working directory: {}", cwd.display());
    vlog!("detected binary path: {}", binary.display());
    if let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
    {
        vlog!("your processes number limit is {soft}");
    }
    if let Ok((soft, _)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        vlog!("detected max file descriptor number: {soft}");
    }

    // ---- hooks and binary patching around the jail (vassal helper) ----
    if reloads.is_none() {
        hooks::run_or_exit(config, hooks::Phase::PreJail);
    }
    patch::apply(config, patch::When::Privileged, &argv);
    // The jail (cgroup, namespaces, FreeBSD jail); `post-jail` runs after it when it did.
    let isolation = isolation::Isolation::from_config(config)?;
    let jailed = isolation.jail(reloads.is_some())?;
    if jailed {
        hooks::run_or_exit(config, hooks::Phase::PostJail);
    }
    // The re-forks happen once; a reload re-executes the process they produced.
    let first_start = reloads.is_none();
    if first_start {
        isolation.refork(isolation::ReforkPoint::PostJail, jailed)?;
    }
    hooks::run_or_exit(config, hooks::Phase::InJail);
    // chroot, then pivot_root.
    isolation.rootfs()?;
    if first_start {
        isolation.refork(isolation::ReforkPoint::AsRoot, jailed)?;
    }
    if !waits::sockets(config) {
        return Ok(1);
    }
    // ---- end of hooks ----

    if let Some(dir) = &settings.chdir {
        vlog!("chdir() to {}", dir.display());
        privileges::chdir("chdir", dir)?;
    }
    privileges::apply_env(&settings.env, &settings.unenv);

    let pid = std::process::id();
    if let Some(p) = &settings.pidfile {
        privileges::write_pidfile("pidfile", p, pid)?;
    }
    let listeners = sockets::setup(&settings)?;
    if listeners.is_empty() {
        vlog!("The -s/--socket option is missing and stdin is not a socket.");
        return Ok(1);
    }
    // `as-root` runs only as root, the last thing before the drop (as in uWSGI).
    if !waits::before_root(config) {
        return Ok(1);
    }
    if nix::unistd::getuid().is_root() {
        hooks::run_or_exit(config, hooks::Phase::AsRoot);
    }
    isolation.drop_privileges(settings.uid.as_deref(), settings.gid.as_deref())?;
    if first_start {
        isolation.refork(isolation::ReforkPoint::AfterDrop, jailed)?;
    }
    // After `refork` this is the instance, not the parent the `pidfile` above names (that
    // parent forwards signals to it).
    let pid = std::process::id();
    hooks::run_or_exit(config, hooks::Phase::AsUser);
    logging::setup_after_drop(config)?;
    patch::apply(config, patch::When::Unprivileged, &argv);
    if let Some(p) = &settings.pidfile2 {
        privileges::write_pidfile("pidfile2", p, pid)?;
    }
    let workers = settings.processes.max(1);
    let scoreboard = scoreboard::Scoreboard::shared(workers, settings.threads.max(1))
        .map_err(|e| VassalError::sys("mmap() of the scoreboard", e))?;
    // The application plugin (Python) starts its runtime here, in the master.
    let has_plugin = app::load(config, &settings, scoreboard)?;
    vlog!(
        "your server socket listen backlog is limited to {} connections",
        settings.listen
    );
    vlog!(
        "your mercy for graceful operations on workers is {} seconds",
        settings.worker_reload_mercy
    );

    let mapped = (workers + 1) * std::mem::size_of::<scoreboard::Slot>();
    vlog!(
        "mapped {mapped} bytes ({} KB) for {} cores",
        mapped / 1024,
        workers * settings.threads
    );
    let mode = match (workers > 1, settings.threads > 1) {
        (true, true) => "preforking+threaded",
        (true, false) => "preforking",
        (false, true) => "threaded",
        (false, false) => "single process",
    };
    vlog!("*** Operational MODE: {mode} ***");

    hooks::run_or_exit(config, hooks::Phase::PreApp);
    // Preload then fork: the apps are loaded here unless lazy-apps loads them in each worker.
    if !(has_plugin && settings.lazy_apps) {
        let apps = if has_plugin { app::load_apps() } else { 0 };
        if apps <= 0 {
            if settings.need_app {
                vlog!("*** no app loaded. GAME OVER ***");
                return Ok(FAILED_APP_CODE);
            }
            vlog!("*** no app loaded. going in full dynamic mode ***");
        }
    }
    hooks::run_or_exit(config, hooks::Phase::PostApp);
    if let Some(dir) = &settings.chdir2 {
        privileges::chdir("chdir2", dir)?;
    }

    if !settings.master {
        return Ok(run_without_master(&settings, &listeners, scoreboard));
    }

    let sigpipe = sys::signals::install_master()
        .map_err(|e| VassalError::sys("installing the signal handlers", e))?;
    if reloads.is_some() {
        vlog!("gracefully (RE)spawned uWSGI master process (pid: {pid})");
    } else {
        vlog!("spawned uWSGI master process (pid: {pid})");
    }
    let plan = ReloadPlan {
        binary,
        argv,
        cwd,
        reloads: reloads.unwrap_or(0),
    };
    let settings_ref = &settings;
    let mut master = Master::new(
        settings_ref,
        config,
        listeners,
        scoreboard,
        emperor,
        plan,
        sigpipe,
    );
    master.notifier = notifier;
    if !settings.master_fifo.is_empty() {
        master.fifo = Some(fifo::MasterFifo::new(settings.master_fifo.clone())?);
    }
    if let Some(addr) = &settings.stats {
        master.stats = Some(stats::StatsServer::bind(
            addr,
            settings.stats_http,
            settings.stats_minified,
        )?);
    }
    master.daemons =
        daemons::Daemons::new(config, settings.reload_mercy).map_err(VassalError::Config)?;
    master.notify_ready();
    if config.flag("cheap") {
        master.start_cheap();
    } else {
        master.spawn_all();
    }
    Ok(master.run())
}

/// Without a master the process is worker 1 itself (more workers are forked beside it,
/// and nobody respawns them), as in uWSGI.
fn run_without_master(
    settings: &Settings,
    listeners: &[sockets::Listener],
    scoreboard: scoreboard::Scoreboard,
) -> i32 {
    let pid = std::process::id();
    let cores = settings.threads;
    if settings.processes <= 1 {
        vlog!("spawned uWSGI worker 1 (and the only) (pid: {pid}, cores: {cores})");
    } else {
        vlog!("spawned uWSGI worker 1 (pid: {pid}, cores: {cores})");
        for id in 2..=settings.processes {
            app::before_fork();
            let forked = sys::fork();
            match &forked {
                Ok(sys::Forked::Child) => app::after_fork_child(),
                _ => app::after_fork_parent(),
            }
            match forked {
                Ok(sys::Forked::Child) => worker::run(worker::WorkerCtx::new(
                    id, settings, listeners, scoreboard, None,
                )),
                Ok(sys::Forked::Parent(p)) => {
                    vlog!("spawned uWSGI worker {id} (pid: {p}, cores: {cores})")
                }
                Err(e) => vlog!("fork() of worker {id}: {e}"),
            }
        }
    }
    if let Err(e) = sys::signals::install_single() {
        vlog!("cannot install signal handlers: {e}");
        return 1;
    }
    let ctx = worker::WorkerCtx::new(1, settings, listeners, scoreboard, None);
    let slot = scoreboard.slot(1);
    slot.pid
        .store(pid as i32, std::sync::atomic::Ordering::Relaxed);
    slot.manage_next_request
        .store(1, std::sync::atomic::Ordering::Relaxed);
    slot.accepting
        .store(1, std::sync::atomic::Ordering::Relaxed);
    if !worker::init_app(&ctx) {
        return FAILED_APP_CODE;
    }
    worker::serve(&ctx);
    app::atexit();
    if settings.vacuum {
        sockets::vacuum(listeners);
    }
    0
}
