//! The plugin's view of the vassal: the [`Host`] table received at `init`, the instance
//! facts, and safe wrappers around every callback. With `interp.rs` (the CPython C API),
//! the only `unsafe` of the plugin.

use crate::abi::{self, Host, Instance, KeyVal, Opt, Str};
use std::ffi::c_void;
use std::sync::OnceLock;

static HOST: OnceLock<&'static Host> = OnceLock::new();
static FACTS: OnceLock<Facts> = OnceLock::new();

/// The instance facts, owned.
#[derive(Debug, Clone)]
pub struct Facts {
    pub processes: u32,
    pub threads: u32,
    pub master: bool,
    pub lazy_apps: bool,
    pub buffer_size: u32,
    pub started_on: i64,
    pub master_pid: i32,
    pub hostname: String,
    pub binary: String,
    pub version: String,
}

/// One configuration entry, owned.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub canonical: String,
    pub value: String,
    pub flag: bool,
}

fn bytes<'a>(s: Str) -> &'a [u8] {
    if s.ptr.is_null() || s.len == 0 {
        return &[];
    }
    // SAFETY: the ABI guarantees `len` readable bytes for the duration of the call; the
    // callers copy them out before returning.
    unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
}

fn text(s: Str) -> String {
    String::from_utf8_lossy(bytes(s)).into_owned()
}

/// Records the host table and facts; returns the options. Called once, from `init`.
pub(crate) fn install(
    host: *const Host,
    instance: *const Instance,
    opts: *const Opt,
    n: usize,
) -> Option<Vec<Entry>> {
    if host.is_null() || instance.is_null() {
        return None;
    }
    // SAFETY: the vassal passes a pointer to its `static HOST` table, valid for the life
    // of the process.
    let host: &'static Host = unsafe { &*host };
    if host.abi_version != abi::ABI_VERSION {
        return None;
    }
    // SAFETY: `instance` points to a live `Instance` for the duration of this call.
    let i = unsafe { &*instance };
    let facts = Facts {
        processes: i.processes,
        threads: i.threads,
        master: i.master != 0,
        lazy_apps: i.lazy_apps != 0,
        buffer_size: i.buffer_size,
        started_on: i.started_on,
        master_pid: i.master_pid,
        hostname: text(i.hostname),
        binary: text(i.binary),
        version: text(i.version),
    };
    let list: &[Opt] = if opts.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: `opts` points to `n` entries alive for the duration of this call.
        unsafe { std::slice::from_raw_parts(opts, n) }
    };
    let entries = list
        .iter()
        .map(|o| Entry {
            key: text(o.key),
            canonical: text(o.canonical),
            value: text(o.value),
            flag: o.flag != 0,
        })
        .collect();
    let _ = HOST.set(host);
    let _ = FACTS.set(facts);
    Some(entries)
}

fn host() -> Option<&'static Host> {
    HOST.get().copied()
}

/// The instance facts (after `init`).
pub fn facts() -> &'static Facts {
    static EMPTY: OnceLock<Facts> = OnceLock::new();
    FACTS.get().unwrap_or_else(|| {
        EMPTY.get_or_init(|| Facts {
            processes: 1,
            threads: 1,
            master: false,
            lazy_apps: false,
            buffer_size: 4096,
            started_on: 0,
            master_pid: 0,
            hostname: String::new(),
            binary: String::new(),
            version: String::new(),
        })
    })
}

/// Writes one line to the instance log.
pub fn log(msg: &str) {
    match host() {
        Some(h) => (h.log)(Str::new(msg.as_bytes())),
        None => eprintln!("{msg}"),
    }
}

/// `log` with format arguments.
#[macro_export]
macro_rules! plog {
    ($($t:tt)*) => { $crate::host::log(&format!($($t)*)) };
}

/// A counter or fact of the instance (`abi::stat`).
pub fn stat(what: u32, arg: i64) -> i64 {
    host().map_or(-1, |h| (h.stat)(what, arg))
}

pub fn reload() -> bool {
    host().is_some_and(|h| (h.reload)() == 0)
}

pub fn stop() -> bool {
    host().is_some_and(|h| (h.stop)() == 0)
}

/// The handle of the request being served. Only valid during the plugin's `request`
/// call that received it; [`crate::wsgi`] tracks that with an `alive` flag.
#[derive(Clone, Copy, Debug)]
pub struct Req(*mut c_void);

// SAFETY: the handle is an opaque token; it is only dereferenced by the vassal, on the
// thread serving the request, while that request is alive (checked by the callers).
unsafe impl Send for Req {}
unsafe impl Sync for Req {}

/// Why a body read failed.
pub enum ReadError {
    Io,
    Timeout,
}

impl Req {
    pub fn new(p: *mut c_void) -> Req {
        Req(p)
    }

    pub fn read(self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let Some(h) = host() else {
            return Err(ReadError::Io);
        };
        match (h.read)(self.0, buf.as_mut_ptr(), buf.len()) {
            n if n >= 0 => Ok(n as usize),
            abi::READ_TIMEOUT => Err(ReadError::Timeout),
            _ => Err(ReadError::Io),
        }
    }

    pub fn start(self, status: &[u8], headers: &[(Vec<u8>, Vec<u8>)], content_length: i64) -> bool {
        let Some(h) = host() else { return false };
        let kv: Vec<KeyVal> = headers
            .iter()
            .map(|(k, v)| KeyVal {
                key: Str::new(k),
                val: Str::new(v),
            })
            .collect();
        (h.start)(
            self.0,
            Str::new(status),
            kv.as_ptr(),
            kv.len(),
            content_length,
        ) == 0
    }

    pub fn write(self, data: &[u8]) -> bool {
        host().is_some_and(|h| (h.write)(self.0, Str::new(data)) == 0)
    }

    /// Sends `data` if that needs no waiting (the GIL may be held): `Some(true)` taken,
    /// `Some(false)` client gone, `None` not taken (send it with `write`, GIL released).
    pub fn write_nowait(self, data: &[u8]) -> Option<bool> {
        let h = host()?;
        match (h.write_nowait)(self.0, Str::new(data)) {
            0 => Some(true),
            1 => None,
            _ => Some(false),
        }
    }

    pub fn sendfile(self, fd: i32, offset: i64, len: i64) -> i64 {
        host().map_or(-1, |h| (h.sendfile)(self.0, fd, offset, len))
    }

    pub fn fd(self) -> i32 {
        host().map_or(-1, |h| (h.conn_fd)(self.0))
    }

    pub fn logvar(self, key: &str, value: &str) {
        if let Some(h) = host() {
            (h.logvar)(self.0, Str::new(key.as_bytes()), Str::new(value.as_bytes()));
        }
    }

    pub fn abort(self) {
        if let Some(h) = host() {
            (h.abort)(self.0);
        }
    }
}

/// Copies the request variables out of the ABI array.
pub(crate) fn vars<'a>(vars: *const KeyVal, n: usize) -> Vec<(&'a [u8], &'a [u8])> {
    if vars.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: `vars` points to `n` pairs alive for the duration of the `request` call;
    // the returned slices are used only within it.
    let list = unsafe { std::slice::from_raw_parts(vars, n) };
    list.iter()
        .map(|kv| (bytes(kv.key), bytes(kv.val)))
        .collect()
}
