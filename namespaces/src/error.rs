//! The errors of the isolation crate: a bad option value (unknown capability, unknown
//! namespace, bad cgroup key) or a system call that failed, with what was being done.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum IsolationError {
    /// An option value that cannot be used (`cap = frobnicate`, `unshare = bogus`...).
    Option {
        option: String,
        value: String,
        message: String,
    },
    /// A system call or file operation that failed.
    Sys { what: String, source: io::Error },
    /// Something the running kernel or the current privileges do not allow.
    Unsupported(String),
    /// Tyrant mode refused a config (owner root, unreadable for its owner, not a file...).
    Refused(String),
}

impl IsolationError {
    pub fn option(option: &str, value: &str, message: impl Into<String>) -> Self {
        IsolationError::Option {
            option: option.to_owned(),
            value: value.to_owned(),
            message: message.into(),
        }
    }

    pub fn sys(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        IsolationError::Sys {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The last OS error, for `what`.
    pub fn last_os(what: impl Into<String>) -> Self {
        IsolationError::Sys {
            what: what.into(),
            source: io::Error::last_os_error(),
        }
    }
}

impl fmt::Display for IsolationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsolationError::Option {
                option,
                value,
                message,
            } => write!(f, "{option} = {value}: {message}"),
            IsolationError::Sys { what, source } => write!(f, "{what}: {source}"),
            IsolationError::Unsupported(m) | IsolationError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for IsolationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IsolationError::Sys { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, IsolationError>;
