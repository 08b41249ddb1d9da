//! The vassal's side of the plugin C ABI: the `extern "C"` callbacks of the [`Host`]
//! table, and the calls into a loaded [`Plugin`]. With `loader.rs`, the only `unsafe` of
//! the application host; each block says why it is sound.

use super::abi::{self, Host, KeyVal, Plugin, Str, stat};
use super::exchange::Exchange;
use crate::vlog;
use std::ffi::c_void;
use std::sync::atomic::Ordering::Relaxed;

/// Borrows the bytes of a [`Str`] received from the plugin.
fn bytes<'a>(s: Str) -> &'a [u8] {
    if s.ptr.is_null() || s.len == 0 {
        return &[];
    }
    // SAFETY: the ABI says a `Str` points to `len` readable bytes that the caller keeps
    // alive for the duration of the call; the slice does not outlive the callback.
    unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
}

/// The request behind an opaque `req` handle.
fn exchange<'a>(req: *mut c_void) -> Option<&'a mut Exchange<'static>> {
    // SAFETY: `req` is the pointer `request` below made from a live `&mut Exchange`; the
    // ABI lets the plugin use it only during that call and on that thread, so no other
    // reference to the exchange exists while the callback runs. The 'static lifetime is
    // never observed: the reference does not escape the callback.
    unsafe { req.cast::<Exchange<'static>>().as_mut() }
}

extern "C" fn h_log(msg: Str) {
    let b = bytes(msg);
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    crate::log::line(&String::from_utf8_lossy(b));
}

extern "C" fn h_read(req: *mut c_void, buf: *mut u8, len: usize) -> isize {
    let Some(ex) = exchange(req) else {
        return abi::READ_ERROR;
    };
    if buf.is_null() {
        return abi::READ_ERROR;
    }
    // SAFETY: the ABI says `buf` is `len` writable bytes owned by the caller for the call.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    match ex.read(out) {
        Ok(n) => n as isize,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => abi::READ_TIMEOUT,
        Err(_) => abi::READ_ERROR,
    }
}

extern "C" fn h_start(
    req: *mut c_void,
    status: Str,
    headers: *const KeyVal,
    n: usize,
    content_length: i64,
) -> i32 {
    let Some(ex) = exchange(req) else { return -1 };
    let list: &[KeyVal] = if headers.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: the ABI says `headers` points to `n` pairs kept alive by the caller.
        unsafe { std::slice::from_raw_parts(headers, n) }
    };
    let pairs: Vec<(&[u8], &[u8])> = list
        .iter()
        .map(|kv| (bytes(kv.key), bytes(kv.val)))
        .collect();
    if ex.start(bytes(status), &pairs, content_length) {
        0
    } else {
        -1
    }
}

extern "C" fn h_write(req: *mut c_void, data: Str) -> i32 {
    let Some(ex) = exchange(req) else { return -1 };
    if ex.write(bytes(data)) { 0 } else { -1 }
}

extern "C" fn h_sendfile(req: *mut c_void, fd: i32, offset: i64, len: i64) -> i64 {
    let Some(ex) = exchange(req) else { return -1 };
    let len = if len < 0 {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a `struct stat` into the buffer; it is read only on success.
        if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
            return -1;
        }
        // SAFETY: fstat succeeded, so the struct is initialised.
        let size = unsafe { st.assume_init() }.st_size;
        (size - offset).max(0)
    } else {
        len
    };
    let mut off: libc::off_t = offset;
    let mut copy = |out: i32, left: u64| -> std::io::Result<u64> {
        let chunk = left.min(1 << 30) as usize;
        // SAFETY: sendfile(2) with two descriptors the plugin and the exchange own for the
        // duration of the call, and a live offset variable.
        let r = unsafe { libc::sendfile(out, fd, &mut off, chunk) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r as u64)
        }
    };
    ex.sendfile(len as u64, &mut copy)
}

extern "C" fn h_conn_fd(req: *mut c_void) -> i32 {
    exchange(req).map_or(-1, |ex| ex.fd())
}

extern "C" fn h_abort(req: *mut c_void) {
    if let Some(ex) = exchange(req) {
        ex.abort();
    }
}

extern "C" fn h_stat(what: u32, arg: i64) -> i64 {
    let Some(board) = super::scoreboard() else {
        return -1;
    };
    let wid = if arg > 0 {
        arg as usize
    } else {
        super::worker_id()
    };
    if what == stat::TOTAL_REQUESTS {
        return board.slot(0).requests.load(Relaxed) as i64;
    }
    if wid == 0 || wid > super::workers() {
        return -1;
    }
    let s = board.slot(wid);
    match what {
        stat::WORKER_PID => s.pid.load(Relaxed) as i64,
        stat::WORKER_REQUESTS => s.requests.load(Relaxed) as i64,
        stat::WORKER_DELTA_REQUESTS => s.delta_requests.load(Relaxed) as i64,
        stat::WORKER_EXCEPTIONS => s.exceptions.load(Relaxed) as i64,
        stat::WORKER_RUNNING_TIME => s.running_time.load(Relaxed) as i64,
        stat::WORKER_LAST_SPAWN => s.last_spawn.load(Relaxed) as i64,
        stat::WORKER_RESPAWN_COUNT => s.respawn_count.load(Relaxed) as i64,
        stat::WORKER_TX => s.tx.load(Relaxed) as i64,
        stat::WORKER_AVG_RT => s.avg_rt.load(Relaxed) as i64,
        stat::WORKER_BUSY => s.in_request.load(Relaxed).min(1) as i64,
        stat::WORKER_ACCEPTING => s.accepting.load(Relaxed) as i64,
        stat::ADD_EXCEPTION => {
            let me = board.slot(super::worker_id().max(1));
            me.exceptions.fetch_add(1, Relaxed);
            0
        }
        stat::RECYCLE_WORKER => {
            crate::worker::goodbye(board.slot(super::worker_id().max(1)));
            0
        }
        stat::SET_ACCEPTING => {
            let me = board.slot(super::worker_id().max(1));
            me.accepting.swap(u32::from(arg != 0), Relaxed) as i64
        }
        _ => -1,
    }
}

fn signal_master(sig: nix::sys::signal::Signal) -> i32 {
    match super::master_pid() {
        Some(pid) => match nix::sys::signal::kill(pid, sig) {
            Ok(()) => 0,
            Err(e) => {
                vlog!("kill({pid}, {sig}): {e}");
                -1
            }
        },
        None => -1,
    }
}

extern "C" fn h_reload() -> i32 {
    signal_master(nix::sys::signal::Signal::SIGHUP)
}

extern "C" fn h_stop() -> i32 {
    signal_master(nix::sys::signal::Signal::SIGQUIT)
}

extern "C" fn h_write_nowait(req: *mut c_void, data: Str) -> i32 {
    let Some(ex) = exchange(req) else { return -1 };
    ex.write_nowait(bytes(data))
}

extern "C" fn h_logvar(req: *mut c_void, key: Str, value: Str) {
    if let Some(ex) = exchange(req) {
        ex.set_logvar(
            String::from_utf8_lossy(bytes(key)).into_owned(),
            String::from_utf8_lossy(bytes(value)).into_owned(),
        );
    }
}

/// The table handed to plugins.
pub static HOST: Host = Host {
    abi_version: abi::ABI_VERSION,
    log: h_log,
    read: h_read,
    start: h_start,
    write: h_write,
    sendfile: h_sendfile,
    conn_fd: h_conn_fd,
    abort: h_abort,
    stat: h_stat,
    reload: h_reload,
    stop: h_stop,
    logvar: h_logvar,
    write_nowait: h_write_nowait,
};

/// Serves `ex` with the plugin: the request variables as pairs, the core number.
pub fn request(p: &Plugin, ex: &mut Exchange<'_>, vars: &crate::proto::Vars, core: usize) -> i32 {
    let pairs: Vec<KeyVal> = vars
        .iter()
        .map(|(k, v)| KeyVal {
            key: Str::new(k),
            val: Str::new(v),
        })
        .collect();
    let req = (ex as *mut Exchange<'_>).cast::<c_void>();
    (p.request)(req, pairs.as_ptr(), pairs.len(), core as u32)
}

/// Calls the plugin's `init` with every option of the instance.
pub fn init(p: &Plugin, instance: &abi::Instance, config: &imperium_config::Config) -> i32 {
    let opts: Vec<abi::Opt> = config
        .entries()
        .iter()
        .map(|e| {
            let spec = imperium_config::options::lookup(&e.key);
            abi::Opt {
                key: Str::new(e.key.as_bytes()),
                canonical: Str::new(spec.map_or("", |s| s.canonical()).as_bytes()),
                value: Str::new(e.value.as_bytes()),
                flag: u32::from(
                    spec.is_some_and(|s| s.kind == imperium_config::options::Kind::Flag),
                ),
            }
        })
        .collect();
    (p.init)(&HOST, instance, opts.as_ptr(), opts.len())
}
