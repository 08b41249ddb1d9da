//! Which monitor an `--emperor` value selects, as uWSGI decides it: a registered
//! `scheme://` prefix wins; otherwise the value is expanded like `glob(3)` with
//! `GLOB_MARK|GLOB_NOCHECK`: exactly one match that is a directory means a directory
//! monitor, anything else (several matches, a file, nothing at all) a glob monitor.

use crate::error::MonitorError;
use std::path::{Path, PathBuf};

/// The monitor an `--emperor` value selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorSpec {
    /// `dir://PATH` or a plain directory.
    Dir(PathBuf),
    /// `glob://PATTERN` or any other plain value.
    Glob(String),
    /// A monitor run by a helper process (`pg`, `mongodb`, `mongodb2`, `amqp`, `amqps`,
    /// `zmq`): the scheme.
    Remote(String),
}

/// Schemes served by helper processes ([`crate::remote`], [`crate::helper`]).
pub const REMOTE: [&str; 6] = ["pg", "mongodb", "mongodb2", "amqp", "amqps", "zmq"];

/// Resolves one `--emperor` value.
pub fn parse(arg: &str) -> Result<MonitorSpec, MonitorError> {
    if let Some(rest) = arg.strip_prefix("dir://") {
        return Ok(MonitorSpec::Dir(PathBuf::from(rest)));
    }
    if let Some(rest) = arg.strip_prefix("glob://") {
        return Ok(MonitorSpec::Glob(rest.to_owned()));
    }
    if let Some(i) = arg.find("://") {
        let scheme = &arg[..i];
        if !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
        {
            if REMOTE.contains(&scheme) {
                return Ok(MonitorSpec::Remote(scheme.to_owned()));
            }
            return Err(MonitorError::UnknownScheme(scheme.to_owned()));
        }
    }
    if has_magic(arg) {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let matches: Vec<PathBuf> = match glob::glob_with(arg, opts) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                return Err(MonitorError::BadPattern {
                    pattern: arg.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        if matches.len() == 1 && matches[0].is_dir() {
            return Ok(MonitorSpec::Dir(matches[0].clone()));
        }
        return Ok(MonitorSpec::Glob(arg.to_owned()));
    }
    if Path::new(arg).is_dir() {
        Ok(MonitorSpec::Dir(PathBuf::from(arg)))
    } else {
        Ok(MonitorSpec::Glob(arg.to_owned()))
    }
}

/// True when a string contains glob metacharacters.
pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(parse("dir:///x").unwrap(), MonitorSpec::Dir("/x".into()));
        assert_eq!(
            parse("glob:///x/*.ini").unwrap(),
            MonitorSpec::Glob("/x/*.ini".into())
        );
        assert_eq!(
            parse("pg://dbname=x").unwrap(),
            MonitorSpec::Remote("pg".into())
        );
        assert_eq!(
            parse("zmq://tcp://*:5250").unwrap(),
            MonitorSpec::Remote("zmq".into())
        );
        assert!(matches!(
            parse("zoo://x"),
            Err(MonitorError::UnknownScheme(_))
        ));
    }

    #[test]
    fn autodetect() {
        let d = std::env::temp_dir();
        assert_eq!(
            parse(d.to_str().unwrap()).unwrap(),
            MonitorSpec::Dir(d.clone())
        );
        // A path that does not exist is a glob, as with GLOB_NOCHECK.
        assert!(matches!(
            parse("/nonexistent/imperium/vassals").unwrap(),
            MonitorSpec::Glob(_)
        ));
        assert!(matches!(
            parse("/etc/*.conf").unwrap(),
            MonitorSpec::Glob(_)
        ));
    }
}
