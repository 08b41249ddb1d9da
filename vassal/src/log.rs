//! Log lines. Every process of the instance (master and workers) writes to the same
//! standard error; each line goes out in one write(2), so lines never interleave. With
//! `log-date` each line gets its date prefix; in the log master's own process the line
//! goes straight to the loggers (see `logging`).

/// Writes one line (a newline is added).
pub fn line(text: &str) {
    let prefix = crate::logging::date_prefix();
    let mut b = Vec::with_capacity(prefix.len() + text.len() + 1);
    b.extend_from_slice(prefix.as_bytes());
    b.extend_from_slice(text.as_bytes());
    b.push(b'\n');
    if crate::logging::dispatch_own(&b) {
        return;
    }
    // Straight write(2)s, no std lock: a fork while the `threaded-logger` thread logs
    // must not leave the child a held lock.
    let mut rest = &b[..];
    while !rest.is_empty() {
        match nix::unistd::write(std::io::stderr(), rest) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(nix::Error::EINTR) => {}
            Err(_) => break,
        }
    }
}

/// `vlog!("...", args)`: formats and logs one line.
#[macro_export]
macro_rules! vlog {
    ($($t:tt)*) => { $crate::log::line(&format!($($t)*)) };
}

/// Sends standard output and standard error to `logto`'s target: a file (appending, mode
/// 0640) or a `host:port` UDP address.
pub fn logto(path: &str) -> Result<(), crate::error::VassalError> {
    crate::logging::logto(path)
}
