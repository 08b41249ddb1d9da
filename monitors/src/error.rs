//! Errors a monitor reports when it cannot be built.

use std::fmt;

/// Why a monitor could not be set up.
#[derive(Debug)]
pub enum MonitorError {
    /// An unknown `scheme://`.
    UnknownScheme(String),
    /// A `glob://` pattern that does not parse.
    BadPattern { pattern: String, reason: String },
    /// The change notification (inotify, kqueue on FreeBSD) could not be initialised.
    Watch(nix::Error),
    /// The epoll instance (kqueue on FreeBSD) of a helper-backed monitor could not be
    /// created.
    Helper(nix::Error),
    /// A `pg://`, `amqp://`, `zmq://` or `mongodb://` argument that does not parse.
    BadSpec { scheme: String, reason: String },
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorError::UnknownScheme(s) => write!(f, "unknown imperial monitor scheme {s}://"),
            MonitorError::BadPattern { pattern, reason } => {
                write!(f, "invalid glob pattern {pattern:?}: {reason}")
            }
            MonitorError::Watch(e) if cfg!(target_os = "freebsd") => write!(f, "kqueue(): {e}"),
            MonitorError::Watch(e) => write!(f, "inotify_init(): {e}"),
            MonitorError::Helper(e) => write!(f, "{}: {e}", crate::poller::NEW_CALL),
            MonitorError::BadSpec { scheme, reason } => {
                write!(f, "invalid {scheme}:// monitor argument: {reason}")
            }
        }
    }
}

impl std::error::Error for MonitorError {}
