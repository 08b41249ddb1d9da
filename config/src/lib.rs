//! uWSGI-exact configuration for imperium.
//!
//! Reads options from `UWSGI_*` environment variables, the command line and configuration
//! files (INI, XML, YAML, JSON) from every source uWSGI knows (`file`, `-`, `fd://N`,
//! `exec://cmd`, `http://url`, `emperor://name`, `data://N`), applies config logic
//! (`for`, `if-*`), custom options and placeholders, and runs the `$(ENV)`, `@(file)` and
//! `%(placeholder)` passes in uWSGI's order. The result is a [`Config`]: the ordered list
//! of `key = value` entries (what `--show-config` prints) with typed accessors.
//!
//! INI and YAML are parsed by hand, as uWSGI's own line parsers read them (YAML configs
//! repeat keys to repeat options, which real YAML parsers reject). JSON uses serde_json
//! (document order kept) and XML roxmltree; both report the line of a syntax error.

pub mod entry;
pub mod error;
pub mod expand;
pub mod formats;
pub mod logic;
pub mod magic;
pub mod options;
pub mod resolved;
pub mod show;
pub mod source;
pub mod wire;

mod builder;
mod cli;
mod facts;

pub use entry::{Entry, Origin};
pub use error::ConfigError;
pub use resolved::Config;

use builder::{Builder, Halt};

/// The version imperium reports (`--version`, `%V`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the configuration is read from: the process's arguments and environment.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Arguments after argv[0].
    pub args: Vec<String>,
    /// The environment, in order.
    pub env: Vec<(String, String)>,
    /// The binary path (`%b`, `data://`).
    pub binary: String,
}

impl Invocation {
    /// The invocation of the running process.
    pub fn from_process() -> Self {
        let args = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let binary = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|_| std::env::args().next().ok_or(()))
            .unwrap_or_else(|_| "imperium".into());
        Invocation { args, env, binary }
    }
}

/// Something the configuration asked for instead of (or before) running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `exit` was met: stop with this code.
    Exit(i32),
    /// `--help`/`--usage`.
    Help,
    /// `--version`.
    Version,
}

/// Everything loading produced.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The resolved configuration (complete unless `action` is set).
    pub config: Config,
    /// Lines for the log, in the order they happened.
    pub log: Vec<String>,
    /// Lines for standard output (`print`, `iprint`).
    pub stdout: Vec<String>,
    /// An action that ends the process before any role starts.
    pub action: Option<Action>,
}

/// Loads the configuration exactly as uWSGI does: environment, then the command line
/// (with files spliced in where they are named), then the expansion passes, then the
/// configure pass (`inherit`, `declare-option2`, `print`).
pub fn load(inv: &Invocation) -> Result<Loaded, ConfigError> {
    let facts = facts::process_facts(&inv.binary);
    let src = source::SourceContext {
        emperor_fd_config: inv
            .env
            .iter()
            .find(|(k, _)| k == "UWSGI_EMPEROR_FD_CONFIG")
            .and_then(|(_, v)| v.trim().parse().ok()),
        binary: inv.binary.clone(),
        hostname: facts.hostname.clone(),
    };
    let mut b = Builder::new(facts, src, inv.env.clone());
    let run = |b: &mut Builder| -> Result<(), Halt> {
        b.add_env()?;
        cli::parse(b, &inv.args)?;
        b.expand()?;
        b.configure()
    };
    let halted = run(&mut b);
    let out = std::mem::take(&mut b.out);
    let action = match halted {
        Ok(()) => None,
        Err(Halt::Error(e)) => return Err(e),
        Err(Halt::Exit(code)) => Some(Action::Exit(code)),
        Err(Halt::Help) => Some(Action::Help),
        Err(Halt::Version) => Some(Action::Version),
    };
    let entries = b.into_entries();
    Ok(Loaded {
        config: Config::from_entries(entries),
        log: out.log,
        stdout: out.stdout,
        action,
    })
}
