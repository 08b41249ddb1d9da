//! uWSGI-exact configuration for imperium.
//!
//! Reads options from `UWSGI_*` environment variables, the command line and configuration
//! files (INI, XML, YAML, JSON) from every source uWSGI knows (`file`, `-`, `fd://N`,
//! `exec://cmd`, `http://url`, `emperor://name`, `data://`), applies config logic
//! (`for`, `if-*`), custom options and placeholders, and runs the `$(ENV)`, `@(file)` and
//! `%(placeholder)` passes in uWSGI's order. The result is a [`Config`]: the ordered list of
//! `key = value` entries, exactly what `--show-config` prints, with typed accessors.
//!
//! No dependency beyond the standard library and `libc`-free std APIs: the formats are
//! parsed the way uWSGI's own hand-written parsers do (a line-based YAML subset, INI without
//! escapes), which no general-purpose parser reproduces.

pub mod entry;
pub mod error;
pub mod options;
pub mod resolved;

pub use entry::{Entry, Origin};
pub use error::ConfigError;
pub use resolved::Config;

/// What the configuration is read from: the process's arguments and environment.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Arguments after argv[0].
    pub args: Vec<String>,
    /// The environment, in order.
    pub env: Vec<(String, String)>,
    /// The binary path (`%b`), as uWSGI detects it.
    pub binary: String,
}
