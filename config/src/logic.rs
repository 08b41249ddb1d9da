//! Config logic: `for`, `for-glob`, `for-times`, `for-readline` and the `if-*` family.
//!
//! A logic option opens a block; every option read until `end`/`endfor`/`endif` (any of
//! them closes any block) is handed to the block, which adds it zero or more times with
//! `%(_)` replaced in its value. Blocks do not nest.

/// The kind of an open block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicKind {
    For,
    ForGlob,
    ForTimes,
    ForReadline,
    IfOpt,
    IfNotOpt,
    IfEnv,
    IfNotEnv,
    IfReload,
    IfNotReload,
    IfExists,
    IfNotExists,
    IfFile,
    IfNotFile,
    IfDir,
    IfNotDir,
    IfPlugin,
    IfNotPlugin,
    IfHostname,
    IfNotHostname,
}

impl LogicKind {
    /// The block an option name opens, if it is a logic option.
    pub fn from_option(name: &str) -> Option<LogicKind> {
        use LogicKind::*;
        Some(match name {
            "for" => For,
            "for-glob" => ForGlob,
            "for-times" => ForTimes,
            "for-readline" => ForReadline,
            "if-opt" => IfOpt,
            "if-not-opt" => IfNotOpt,
            "if-env" | "ifenv" => IfEnv,
            "if-not-env" => IfNotEnv,
            "if-reload" => IfReload,
            "if-not-reload" => IfNotReload,
            "if-exists" | "ifexists" => IfExists,
            "if-not-exists" => IfNotExists,
            "if-file" => IfFile,
            "if-not-file" => IfNotFile,
            "if-dir" | "ifdir" | "if-directory" => IfDir,
            "if-not-dir" => IfNotDir,
            "if-plugin" | "ifplugin" => IfPlugin,
            "if-not-plugin" => IfNotPlugin,
            "if-hostname" => IfHostname,
            "if-not-hostname" => IfNotHostname,
            _ => return None,
        })
    }
}

/// Option names that close the open block.
pub fn closes_block(key: &str) -> bool {
    matches!(key, "end" | "endfor" | "endif" | "end-if" | "end-for")
}

/// Replaces every `%(_)` in `value` with `with`.
pub fn substitute_underscore(value: &str, with: &str) -> String {
    value.replace("%(_)", with)
}

/// `access(path, R_OK)`: readable by this process.
pub fn readable(path: &str) -> bool {
    std::fs::File::open(path).is_ok() || std::fs::read_dir(path).is_ok()
}

/// True for an existing regular file (symlinks followed).
pub fn is_file(path: &str) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file())
        .unwrap_or(false)
}

/// True for an existing directory (symlinks followed).
pub fn is_dir(path: &str) -> bool {
    std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

/// Expands a glob like libc's `glob(GLOB_MARK | GLOB_NOCHECK)`: sorted matches,
/// directories with a trailing `/`, and the pattern itself when nothing matches.
pub fn glob_paths(pattern: &str) -> Vec<String> {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut out: Vec<String> = match glob::glob_with(pattern, opts) {
        Ok(paths) => paths
            .filter_map(Result::ok)
            .map(|p| {
                let mut s = p.to_string_lossy().into_owned();
                if p.is_dir() && !s.ends_with('/') {
                    s.push('/');
                }
                s
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    if out.is_empty() {
        out.push(pattern.to_string());
    }
    out
}
