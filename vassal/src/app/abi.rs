//! The C ABI between the vassal and an application plugin (the CPython plugin is the
//! first). Plain `#[repr(C)]` data and `extern "C"` function pointers only, versioned by
//! [`ABI_VERSION`]: the plugin exports one [`Plugin`] table under [`PLUGIN_SYMBOL`], the
//! vassal hands it one [`Host`] table. This file is compiled into both sides (the plugin
//! crate includes it by path), so the two can never disagree on a layout.
//!
//! Ownership: every pointer passed in a call is borrowed for that call only. `req` is an
//! opaque handle to the request being served; it is valid only while the plugin's
//! `request` call that received it runs, and only on that thread.

use std::ffi::{c_char, c_void};

/// Bumped on any change of the tables below.
pub const ABI_VERSION: u32 = 3;

/// The symbol under which a plugin exports its `&'static Plugin`.
pub const PLUGIN_SYMBOL: &[u8] = b"imperium_plugin_v3\0";

/// An optional second export (looked up apart from the table, so the table's ABI version
/// stays): `extern "C" fn(fd, core) -> i32`, the raw-socket handler (`python-raw`). It
/// hands the connection's descriptor to the application and returns 0, or -1 when the
/// plugin has no raw handler.
pub const RAW_SYMBOL: &[u8] = b"imperium_plugin_raw_v1\0";

/// The type of the [`RAW_SYMBOL`] export.
pub type RawHandler = extern "C" fn(fd: i32, core: u32) -> i32;

/// A borrowed byte string.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    pub fn new(b: &[u8]) -> Str {
        Str {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }
}

/// A borrowed key/value pair (request variables, options, headers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KeyVal {
    pub key: Str,
    pub val: Str,
}

/// One configuration entry, in configuration order.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Opt {
    /// The key as written (`wsgi`, `pp`, or a custom key).
    pub key: Str,
    /// The option it names with aliases folded (`module`, `pythonpath`); empty for a key
    /// that is no option.
    pub canonical: Str,
    pub value: Str,
    /// 1 when the option is a flag (its value in `uwsgi.opt` is `True`).
    pub flag: u32,
}

/// Facts about the instance, fixed before the first fork.
#[repr(C)]
pub struct Instance {
    pub processes: u32,
    pub threads: u32,
    /// 1 when the instance runs a master process.
    pub master: u32,
    /// 1 when apps load in each worker after fork (`lazy-apps`).
    pub lazy_apps: u32,
    pub buffer_size: u32,
    pub started_on: i64,
    /// The master's pid (0 without master).
    pub master_pid: i32,
    pub hostname: Str,
    /// The binary's path (default `sys.executable`).
    pub binary: Str,
    /// The uWSGI version whose API the instance offers (`uwsgi.version`).
    pub version: Str,
}

/// Counters and facts the plugin may ask for at any time ([`Host::stat`]).
pub mod stat {
    pub const TOTAL_REQUESTS: u32 = 1;
    /// Argument: worker id.
    pub const WORKER_PID: u32 = 2;
    pub const WORKER_REQUESTS: u32 = 3;
    pub const WORKER_DELTA_REQUESTS: u32 = 4;
    pub const WORKER_EXCEPTIONS: u32 = 5;
    pub const WORKER_RUNNING_TIME: u32 = 6;
    pub const WORKER_LAST_SPAWN: u32 = 7;
    pub const WORKER_RESPAWN_COUNT: u32 = 8;
    pub const WORKER_TX: u32 = 9;
    pub const WORKER_AVG_RT: u32 = 10;
    pub const WORKER_BUSY: u32 = 11;
    /// Count one exception for this worker (returns 0).
    pub const ADD_EXCEPTION: u32 = 12;
    /// Argument 0/1: stop/start accepting in this worker; returns the previous value.
    pub const SET_ACCEPTING: u32 = 13;
    pub const WORKER_ACCEPTING: u32 = 14;
    /// This worker ends once its current request is done (`reload-on-exception`); returns
    /// 0 (-1 from a host that predates it).
    pub const RECYCLE_WORKER: u32 = 15;
}

/// What `Host::read` returns besides a byte count.
pub const READ_ERROR: isize = -1;
pub const READ_TIMEOUT: isize = -2;

/// Services of the vassal, given to the plugin once at `init`.
#[repr(C)]
pub struct Host {
    pub abi_version: u32,
    /// Writes one log line (a newline is added).
    pub log: extern "C" fn(msg: Str),
    /// Reads request-body bytes (chunked bodies arrive decoded); 0 at the end of the body,
    /// [`READ_ERROR`] or [`READ_TIMEOUT`] on failure.
    pub read: extern "C" fn(req: *mut c_void, buf: *mut u8, len: usize) -> isize,
    /// Sends the response head. `content_length` is the body length when the plugin knows
    /// it (-1 otherwise); the vassal frames the body (Content-Length, chunked or close).
    /// 0 on success, -1 when the client is gone.
    pub start: extern "C" fn(
        req: *mut c_void,
        status: Str,
        headers: *const KeyVal,
        n: usize,
        content_length: i64,
    ) -> i32,
    /// Sends body bytes (after `start`); 0 on success, -1 when the client is gone.
    pub write: extern "C" fn(req: *mut c_void, data: Str) -> i32,
    /// Sends `len` bytes (-1: up to the end) of the file `fd` from `offset` with sendfile(2);
    /// the number of bytes sent, or -1.
    pub sendfile: extern "C" fn(req: *mut c_void, fd: i32, offset: i64, len: i64) -> i64,
    /// The request's socket descriptor.
    pub conn_fd: extern "C" fn(req: *mut c_void) -> i32,
    /// The response cannot be completed (an exception after the head went out): the
    /// connection is closed after the request, without a chunked trailer.
    pub abort: extern "C" fn(req: *mut c_void),
    /// A counter or fact ([`stat`]); -1 when unknown.
    pub stat: extern "C" fn(what: u32, arg: i64) -> i64,
    /// Asks the master for a graceful reload (0 on success).
    pub reload: extern "C" fn() -> i32,
    /// Asks the master to stop the instance (0 on success).
    pub stop: extern "C" fn() -> i32,
    /// Sets a request log variable (`uwsgi.set_logvar`), printed by `log-format`'s
    /// `%(name)`.
    pub logvar: extern "C" fn(req: *mut c_void, key: Str, value: Str),
    /// Sends body bytes (after `start`) only if that needs no waiting, so the caller may
    /// hold a lock (the GIL) across it: 0 when taken (sent, or the part the socket could
    /// not take yet kept to go out before anything else), 1 when not taken because
    /// earlier bytes still wait (use `write`, without the lock), -1 when the client is
    /// gone. Meant for small chunks: what is kept is at most one chunk.
    pub write_nowait: extern "C" fn(req: *mut c_void, data: Str) -> i32,
}

/// What a plugin exports.
#[repr(C)]
pub struct Plugin {
    pub abi_version: u32,
    /// NUL-terminated plugin name, e.g. `python`.
    pub name: *const c_char,
    /// NUL-terminated language version, e.g. `3.11` (matched against `python311`).
    pub version: *const c_char,
    /// Starts the language runtime in the master (or the only process). Every option of
    /// the instance is passed. 0 on success.
    pub init: extern "C" fn(
        host: *const Host,
        instance: *const Instance,
        opts: *const Opt,
        n: usize,
    ) -> i32,
    /// Loads the applications; returns how many were loaded.
    pub load_apps: extern "C" fn() -> i32,
    /// Around every fork of a worker.
    pub before_fork: extern "C" fn(),
    pub after_fork_parent: extern "C" fn(),
    pub after_fork_child: extern "C" fn(),
    /// In a worker (after fork, or in the process itself without a master), before it
    /// serves: post-fork hooks, lazy app loading. Returns how many apps the worker has.
    pub worker_init: extern "C" fn(worker_id: u32) -> i32,
    /// In each request thread of a worker, before its first request (core 0 included).
    pub thread_init: extern "C" fn(core: u32),
    /// Serves one request. Returns the id of the app that served it, or -1 when no app
    /// could (the vassal then answers 500 if the plugin sent nothing).
    pub request: extern "C" fn(req: *mut c_void, vars: *const KeyVal, n: usize, core: u32) -> i32,
    /// The worker ends (atexit hooks).
    pub atexit: extern "C" fn(),
}

// SAFETY: a `Plugin` is an immutable table of function pointers and pointers to static
// strings, shared read-only by every thread.
unsafe impl Sync for Plugin {}
unsafe impl Send for Plugin {}
// SAFETY: the same holds for the host's table.
unsafe impl Sync for Host {}
unsafe impl Send for Host {}
