//! Errors a monitor reports when it cannot be built.

use std::fmt;

/// Why a monitor could not be set up.
#[derive(Debug)]
pub enum MonitorError {
    /// An unknown `scheme://`.
    UnknownScheme(String),
    /// A `glob://` pattern that does not parse.
    BadPattern { pattern: String, reason: String },
    /// inotify could not be initialised.
    Inotify(nix::Error),
    /// The epoll instance of a helper-backed monitor could not be created.
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
            MonitorError::Inotify(e) => write!(f, "inotify_init(): {e}"),
            MonitorError::Helper(e) => write!(f, "epoll_create(): {e}"),
            MonitorError::BadSpec { scheme, reason } => {
                write!(f, "invalid {scheme}:// monitor argument: {reason}")
            }
        }
    }
}

impl std::error::Error for MonitorError {}
