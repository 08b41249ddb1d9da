//! The option table: every option name uWSGI 2.0 knows in its core and in its python and
//! http plugins, with its argument kind, short flag, value type and side effects.
//!
//! This is the one place option facts live. Loaders, the command line, `--help`,
//! `--show-config`, placeholders and the roles all consult it through [`lookup`].

mod table;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

/// Whether an option takes an argument on the command line (getopt semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// `--name value` or `--name=value`.
    Required,
    /// A bare `--name`; any value given in a config file is kept as is.
    None,
    /// `--name` alone or `--name=value` (never a separate argv word).
    Optional,
}

/// How a value is interpreted once the configuration is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A boolean: true unless the value is `false`, `off`, `no` (any case) or `0`.
    Flag,
    /// A boolean whose meaning is inverted (`disable-logging`): a bare flag turns it on.
    FlagInverted,
    /// A (possibly negative) decimal integer; the last value wins.
    Int,
    /// A string; the last value wins.
    Str,
    /// Repeatable: every value is kept, in order (`socket`, `env`, `mount`...).
    List,
    /// Acted on while the configuration is read (loaders, `set`, `for`, `if-*`...).
    Immediate,
    /// A command that does its work and exits (`--version`, `--help`, `--stop`...).
    Action,
}

/// Side effects that the mere presence of an option has, whatever its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Implies {
    /// Forces `master`.
    pub master: bool,
    /// Forces `enable-threads`.
    pub threads: bool,
    /// Forces the master logger (`log-master`), and with it `master`.
    pub log_master: bool,
    /// Forces the master request logger (`req-log-master`).
    pub req_log_master: bool,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The option name as written in configs (`--name` on the command line).
    pub name: &'static str,
    /// The primary name when this row is an alias that sets the same thing
    /// (`workers` -> `processes`, `venv` -> `home`); `None` for a primary name.
    pub alias_of: Option<&'static str>,
    /// Argument kind on the command line.
    pub arg: Arg,
    /// Short command-line flag (`-s`), if any.
    pub short: Option<char>,
    /// Value type.
    pub kind: Kind,
    /// Options turned on by the presence of this one.
    pub implies: Implies,
    /// Where uWSGI defines it: `core`, `python`, `http`.
    pub plugin: &'static str,
    /// Section used by `--help` (`sockets`, `processes`, `emperor`, `logging`...).
    pub category: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// Whether imperium acts on it. An option that is not implemented yet is still
    /// accepted, and reported once by name in the log.
    pub implemented: bool,
}

impl OptionSpec {
    /// The primary name of the setting this row controls.
    pub fn canonical(&self) -> &'static str {
        self.alias_of.unwrap_or(self.name)
    }

    /// True when the option is a boolean of either polarity.
    pub fn is_flag(&self) -> bool {
        matches!(self.kind, Kind::Flag | Kind::FlagInverted)
    }
}

/// Every option, in table order (the order `--help` prints).
pub fn all() -> &'static [OptionSpec] {
    table::OPTIONS
}

/// FNV-1a: the maps below are built from a fixed table and looked up with short option
/// names thousands of times in every process start (each `Config::get` folds aliases
/// through them), where SipHash's flooding resistance buys nothing and costs a few
/// percent of a vassal's start-up CPU.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

static BY_NAME: LazyLock<FnvMap<&'static str, &'static OptionSpec>> =
    LazyLock::new(|| table::OPTIONS.iter().map(|o| (o.name, o)).collect());

static BY_SHORT: LazyLock<FnvMap<char, &'static OptionSpec>> = LazyLock::new(|| {
    let mut m = FnvMap::default();
    // The first row that claims a short flag owns it, as with getopt.
    for o in table::OPTIONS {
        if let Some(c) = o.short {
            m.entry(c).or_insert(o);
        }
    }
    m
});

/// Finds an option by its exact name.
pub fn lookup(name: &str) -> Option<&'static OptionSpec> {
    BY_NAME.get(name).copied()
}

/// Finds the option that owns a short command-line flag.
pub fn lookup_short(c: char) -> Option<&'static OptionSpec> {
    BY_SHORT.get(&c).copied()
}

/// The boolean rule of uWSGI: a value is false only when it is `false`, `off`, `no`
/// (case-insensitive) or exactly `0`; anything else, the empty string included, is true.
pub fn parse_bool(value: &str) -> bool {
    !(value.eq_ignore_ascii_case("false")
        || value.eq_ignore_ascii_case("off")
        || value.eq_ignore_ascii_case("no")
        || value == "0")
}
