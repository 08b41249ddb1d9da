//! Errors of the configuration system. Every error names where it happened: a file and
//! line, a command-line argument, an environment variable or an option.

use crate::entry::Origin;
use std::fmt;

/// A configuration that cannot be used. Rendered as `<where>: <what>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is.
    pub origin: Option<Origin>,
    /// What went wrong, in words.
    pub message: String,
}

impl ConfigError {
    /// An error at a known place.
    pub fn at(origin: Origin, message: impl Into<String>) -> Self {
        ConfigError {
            origin: Some(origin),
            message: message.into(),
        }
    }

    /// An error that is not tied to one place.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            origin: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "{o}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}
