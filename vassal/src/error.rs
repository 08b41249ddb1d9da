//! The instance's errors. Each names what failed (the option, the socket, the file) so the
//! one line logged before exiting is enough to fix the configuration.

use std::fmt;

/// Why the instance could not start or go on.
#[derive(Debug)]
pub enum VassalError {
    /// The configuration could not be read as typed values.
    Config(String),
    /// An option has a value imperium cannot use.
    Option {
        option: String,
        value: String,
        reason: String,
    },
    /// A listening socket could not be set up.
    Socket { name: String, reason: String },
    /// A system call on a named object failed.
    Sys { what: String, error: String },
}

impl VassalError {
    pub fn option(option: &str, value: &str, reason: &str) -> VassalError {
        VassalError::Option {
            option: option.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub fn socket(name: &str, reason: impl fmt::Display) -> VassalError {
        VassalError::Socket {
            name: name.into(),
            reason: reason.to_string(),
        }
    }

    pub fn sys(what: impl Into<String>, error: impl fmt::Display) -> VassalError {
        VassalError::Sys {
            what: what.into(),
            error: error.to_string(),
        }
    }
}

impl fmt::Display for VassalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VassalError::Config(m) => write!(f, "configuration error: {m}"),
            VassalError::Option {
                option,
                value,
                reason,
            } => write!(f, "option '{option}' = '{value}': {reason}"),
            VassalError::Socket { name, reason } => {
                write!(f, "unable to create server socket on: {name}: {reason}")
            }
            VassalError::Sys { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for VassalError {}
