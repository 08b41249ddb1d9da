//! Log lines. Every process of the instance (master and workers) writes to the same
//! standard error; each line goes out in one write(2), so lines never interleave.

use std::io::Write;

/// Writes one line (a newline is added).
pub fn line(text: &str) {
    let mut b = Vec::with_capacity(text.len() + 1);
    b.extend_from_slice(text.as_bytes());
    b.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&b);
}

/// `vlog!("...", args)`: formats and logs one line.
#[macro_export]
macro_rules! vlog {
    ($($t:tt)*) => { $crate::log::line(&format!($($t)*)) };
}

/// Sends standard output and standard error to `path` (appending, mode 0640), as
/// `logto` does. A `host:port` UDP target is not supported yet.
pub fn logto(path: &str) -> Result<(), crate::error::VassalError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.contains(':') {
        return Err(crate::error::VassalError::option("logto", path, "logging to a UDP address is not implemented yet"));
    }
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| crate::error::VassalError::sys(format!("logto: cannot open {path}"), e))?;
    nix::unistd::dup2_stdout(&f).map_err(|e| crate::error::VassalError::sys("logto: dup2()", e))?;
    nix::unistd::dup2_stderr(&f).map_err(|e| crate::error::VassalError::sys("logto: dup2()", e))?;
    Ok(())
}
