//! Harakiri tracebacks: before the master kills a worker stuck past `harakiri`, it reads
//! the worker's `py-tracebacker` socket (`<base><worker id>`, served by a thread of the
//! worker) and logs every thread's stack, as uWSGI's Python plugin does in its harakiri
//! hook. The read is bounded by `socket-timeout` (a worker whose stuck thread holds the
//! GIL cannot answer).

use crate::vlog;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Logs the tracebacks of worker `id` from the socket `<base><id>`; nothing when it does
/// not answer.
pub fn log_harakiri_traceback(base: &str, id: usize, timeout: Duration) {
    let Ok(mut s) = UnixStream::connect(format!("{base}{id}")) else {
        return;
    };
    let end = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    for line in String::from_utf8_lossy(&out).lines() {
        vlog!("{line}");
    }
}
