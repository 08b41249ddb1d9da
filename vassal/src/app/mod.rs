//! The application host: loads a language plugin (the CPython plugin, `python3`) at run
//! time and calls it at the points of the process model: `init` in the master (or the only
//! process) after the sockets are bound, `load_apps` before the workers are forked (or in
//! each worker with `lazy-apps`), the fork hooks around every fork, `worker_init` and
//! `thread_init` in the workers, `request` once per request, `atexit` when a worker ends.
//! The binary itself never links a language runtime: the Emperor and an instance without
//! applications never map libpython.
//!
//! Modules: [`abi`] (the C ABI, shared with the plugin source), [`loader`] (finding and
//! opening plugins), [`host`] (the callbacks, the only unsafe part besides `loader`),
//! [`exchange`] (one request's body and response framing) and [`tracebacker`] (harakiri
//! tracebacks from `py-tracebacker`).

pub mod abi;
pub mod exchange;
pub mod host;
pub mod loader;
pub mod tracebacker;

use crate::error::VassalError;
use crate::scoreboard::Scoreboard;
use crate::settings::Settings;
use crate::vlog;
use imperium_config::Config;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::Relaxed};

static PLUGIN: OnceLock<loader::Loaded> = OnceLock::new();
static BOARD: OnceLock<(Scoreboard, usize)> = OnceLock::new();
static WORKER_ID: AtomicUsize = AtomicUsize::new(0);
static MASTER_PID: AtomicI32 = AtomicI32::new(0);

/// The loaded plugin, if any.
pub fn plugin() -> Option<&'static abi::Plugin> {
    PLUGIN.get().map(|l| l.table)
}

/// Hands a raw-socket connection (`raw-socket`, `protocol = raw`) to the plugin's raw
/// handler (`python-raw`); false when there is none.
pub fn raw(fd: i32, core: usize) -> bool {
    match PLUGIN.get().and_then(|l| l.raw) {
        Some(h) => h(fd, core as u32) == 0,
        None => false,
    }
}

/// True once a plugin is loaded (its runtime may run threads of its own, e.g. started by
/// an application at import time).
pub fn loaded() -> bool {
    PLUGIN.get().is_some()
}

pub(crate) fn scoreboard() -> Option<Scoreboard> {
    BOARD.get().map(|b| b.0)
}

pub(crate) fn workers() -> usize {
    BOARD.get().map_or(0, |b| b.1)
}

/// The worker this process is (0 in the master).
pub fn worker_id() -> usize {
    WORKER_ID.load(Relaxed)
}

pub(crate) fn master_pid() -> Option<nix::unistd::Pid> {
    match MASTER_PID.load(Relaxed) {
        0 => None,
        p => Some(nix::unistd::Pid::from_raw(p)),
    }
}

/// The plugins the configuration asks for: `plugins`/`plugin`/`need-plugin(s)` values
/// (comma- or space-separated), with whether each is required, plus `python` when an
/// option of the Python plugin (or `mount`) is used without naming it.
pub fn wanted(config: &Config) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for e in config.entries() {
        let Some(spec) = imperium_config::options::lookup(&e.key) else {
            continue;
        };
        let need = match spec.canonical() {
            "plugins" => false,
            "need-plugins" => true,
            _ => continue,
        };
        for n in e
            .value
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            out.push((n.to_string(), need));
        }
    }
    let python_option = config.entries().iter().any(|e| {
        imperium_config::options::lookup(&e.key).is_some_and(|s| {
            s.plugin == "python" || matches!(s.canonical(), "mount" | "worker-mount")
        })
    });
    if python_option && !out.iter().any(|(n, _)| loader::is_python(n)) {
        out.push(("python".into(), true));
    }
    out
}

/// Loads the wanted plugins and initialises the language runtime. Returns whether an
/// application plugin is now loaded. A missing `plugins` entry is logged; a missing
/// `need-plugin` (or the Python plugin needed by a Python option) stops the instance.
pub fn load(config: &Config, settings: &Settings, board: Scoreboard) -> Result<bool, VassalError> {
    let dirs: Vec<String> = config
        .get_all("plugins-dir")
        .into_iter()
        .map(str::to_owned)
        .collect();
    for (name, need) in wanted(config) {
        if !loader::is_python(&name) {
            // Everything else uWSGI ships as a plugin (http, router_*, emperor monitors...)
            // is built into imperium or not available at all.
            vlog!("plugin {name} is built into imperium or not available: nothing to load");
            continue;
        }
        if let Some(l) = PLUGIN.get() {
            let (_, digits) = loader::split_name(&name);
            if !loader::version_matches(&l.version, &digits) {
                return Err(VassalError::Config(format!(
                    "plugin {name} asked for, but {} (Python {}) is already loaded: one Python per instance",
                    l.path.display(),
                    l.version
                )));
            }
            continue;
        }
        match find(&name, &dirs) {
            Ok(l) => {
                vlog!(
                    "loaded plugin {} (Python {}) from {}",
                    name,
                    l.version,
                    l.path.display()
                );
                let _ = PLUGIN.set(l);
            }
            Err(e) if need => {
                return Err(VassalError::Config(format!(
                    "!!! UNABLE to load uWSGI plugin: {name}: {e} !!!"
                )));
            }
            Err(e) => vlog!("!!! UNABLE to load uWSGI plugin: {name}: {e} !!!"),
        }
    }
    let Some(l) = PLUGIN.get() else {
        return Ok(false);
    };
    let _ = BOARD.set((board, settings.processes.max(1)));
    let pid = std::process::id() as i32;
    if settings.master {
        MASTER_PID.store(pid, Relaxed);
    }
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let binary = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let instance = abi::Instance {
        processes: settings.processes.max(1) as u32,
        threads: settings.threads.max(1) as u32,
        master: u32::from(settings.master),
        lazy_apps: u32::from(settings.lazy_apps),
        buffer_size: settings.buffer_size as u32,
        started_on: crate::sys::clock::now_secs() as i64,
        master_pid: if settings.master { pid } else { 0 },
        hostname: abi::Str::new(hostname.as_bytes()),
        binary: abi::Str::new(binary.as_bytes()),
        version: abi::Str::new(UWSGI_API_VERSION.as_bytes()),
    };
    if host::init(l.table, &instance, config) != 0 {
        return Err(VassalError::Config(format!(
            "the {} plugin failed to initialise",
            l.name
        )));
    }
    Ok(true)
}

/// The uWSGI release whose Python API the instance offers (`uwsgi.version`).
pub const UWSGI_API_VERSION: &str = "2.0.31";

fn find(name: &str, dirs: &[String]) -> Result<loader::Loaded, String> {
    let (_, digits) = loader::split_name(name);
    let mut last = format!(
        "no {name}_plugin.so in {}",
        loader::search_dirs(dirs)
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for path in loader::candidates(name, dirs) {
        if !path.exists() {
            continue;
        }
        match loader::open(&path) {
            Ok(l) if loader::version_matches(&l.version, &digits) => return Ok(l),
            Ok(l) => last = format!("{} is Python {}", path.display(), l.version),
            Err(e) => last = format!("{}: {e}", path.display()),
        }
    }
    Err(last)
}

/// Loads the applications (in the master, or in a worker with lazy-apps); how many.
pub fn load_apps() -> i32 {
    plugin().map_or(0, |p| (p.load_apps)())
}

/// Before a worker is forked.
pub fn before_fork() {
    if let Some(p) = plugin() {
        (p.before_fork)();
    }
}

/// In the master after forking a worker.
pub fn after_fork_parent() {
    if let Some(p) = plugin() {
        (p.after_fork_parent)();
    }
}

/// In a freshly forked worker.
pub fn after_fork_child() {
    if let Some(p) = plugin() {
        (p.after_fork_child)();
    }
}

/// A worker starts serving (post-fork hooks, lazy apps); how many apps it has (-1: no plugin).
pub fn worker_init(id: usize) -> i32 {
    WORKER_ID.store(id, Relaxed);
    plugin().map_or(-1, |p| (p.worker_init)(id as u32))
}

/// A request thread starts.
pub fn thread_init(core: usize) {
    if let Some(p) = plugin() {
        (p.thread_init)(core as u32);
    }
}

/// A worker ends.
pub fn atexit() {
    if let Some(p) = plugin() {
        (p.atexit)();
    }
}
