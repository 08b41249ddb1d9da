//! Errors that stop the Emperor before its loop starts (bad settings, sockets that cannot
//! be bound, monitors that cannot be built). Once running, problems are logged instead.

use std::fmt;

#[derive(Debug)]
pub enum EmperorError {
    /// An option value that cannot be used.
    Setting { option: String, message: String },
    /// An `--emperor` value whose monitor cannot be built.
    Monitor {
        arg: String,
        source: imperium_monitors::MonitorError,
    },
    /// A system call that failed during start-up.
    Sys {
        what: String,
        source: std::io::Error,
    },
}

impl EmperorError {
    pub fn setting(option: &str, message: impl Into<String>) -> Self {
        EmperorError::Setting {
            option: option.to_owned(),
            message: message.into(),
        }
    }

    pub fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        EmperorError::Sys {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl fmt::Display for EmperorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmperorError::Setting { option, message } => write!(f, "option '{option}': {message}"),
            EmperorError::Monitor { arg, source } => write!(f, "--emperor {arg}: {source}"),
            EmperorError::Sys { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for EmperorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EmperorError::Monitor { source, .. } => Some(source),
            EmperorError::Sys { source, .. } => Some(source),
            EmperorError::Setting { .. } => None,
        }
    }
}

impl From<nix::Error> for EmperorError {
    fn from(e: nix::Error) -> Self {
        EmperorError::Sys {
            what: "system call".into(),
            source: e.into(),
        }
    }
}
