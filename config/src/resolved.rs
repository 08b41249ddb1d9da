//! The resolved configuration: the ordered list of options after loading and expansion,
//! and typed accessors that the roles (Emperor, vassal) read their settings through.

use crate::entry::{Entry, Origin};
use crate::error::ConfigError;
use crate::options::{self, Kind, OptionSpec};
use std::collections::HashSet;

/// A fully loaded and expanded configuration.
///
/// Entries keep uWSGI's order and keys as written. Accessors fold aliases: asking for
/// `processes` also sees `workers`. Scalars take the last value, as uWSGI applies options
/// top to bottom.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub(crate) entries: Vec<Entry>,
    pub(crate) warnings: Vec<String>,
}

fn canonical(name: &str) -> &str {
    options::lookup(name)
        .map(OptionSpec::canonical)
        .unwrap_or(name)
}

impl Config {
    /// Builds a configuration from entries that are already expanded.
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        Config {
            entries,
            warnings: Vec::new(),
        }
    }

    /// A configuration from plain `(key, value)` pairs set internally (no file or line
    /// of origin), as unit tests of the roles build one.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::from_entries(
            pairs
                .iter()
                .map(|(k, v)| Entry {
                    key: (*k).into(),
                    value: (*v).into(),
                    origin: Origin::Internal,
                })
                .collect(),
        )
    }

    /// Every entry, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Warnings collected while loading (missing INI sections and the like), to be logged.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn matching<'a>(&'a self, name: &str) -> impl DoubleEndedIterator<Item = &'a Entry> + 'a {
        let name = name.to_owned();
        let want = canonical(&name).to_owned();
        self.entries
            .iter()
            .filter(move |e| e.key == name || canonical(&e.key) == want)
    }

    /// The last entry for `name` or one of its aliases.
    pub fn last_entry(&self, name: &str) -> Option<&Entry> {
        self.matching(name).next_back()
    }

    /// The effective value of a scalar option: the last one set, aliases included.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.last_entry(name).map(|e| e.value.as_str())
    }

    /// The effective value of a scalar option, `None` when it is unset or set blank
    /// (`chroot =` means no chroot).
    pub fn get_nonblank(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// Every value of a repeatable option, in order, aliases included.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.matching(name).map(|e| e.value.as_str()).collect()
    }

    /// Every entry of a repeatable option, with where each came from.
    pub fn get_all_entries(&self, name: &str) -> Vec<&Entry> {
        self.matching(name).collect()
    }

    /// True when the option (or an alias) appears at all.
    pub fn is_set(&self, name: &str) -> bool {
        self.last_entry(name).is_some()
    }

    /// A boolean option with uWSGI's rules, including options whose mere presence turns
    /// it on (`stats` forces `master`, `threads` forces `enable-threads`...).
    pub fn flag(&self, name: &str) -> bool {
        let explicit = match self.last_entry(name) {
            // `disable-logging = false` means logging stays on: the value is read with
            // the same rule for both polarities; callers ask for the name they mean.
            Some(e) => options::parse_bool(&e.value),
            None => false,
        };
        explicit || self.implied(canonical(name))
    }

    fn implied(&self, name: &str) -> bool {
        let mut seen = HashSet::new();
        self.entries.iter().any(|e| {
            if !seen.insert(e.key.as_str()) {
                return false;
            }
            let Some(spec) = options::lookup(&e.key) else {
                return false;
            };
            let i = spec.implies;
            match name {
                "master" => i.master || i.log_master,
                "enable-threads" => i.threads,
                "log-master" => i.log_master,
                "req-log-master" => i.req_log_master,
                _ => false,
            }
        })
    }

    /// An integer option: `Ok(None)` when unset, an error naming the file and line when the
    /// value is not a number (`processes = many`).
    pub fn get_int(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        match self.last_entry(name) {
            None => Ok(None),
            Some(e) => parse_int(&e.value).map(Some).ok_or_else(|| {
                ConfigError::at(
                    e.origin.clone(),
                    format!("option '{}' expects a number, got '{}'", e.key, e.value),
                )
            }),
        }
    }

    /// Like [`Config::get_int`] with a default for an unset option.
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, ConfigError> {
        Ok(self.get_int(name)?.unwrap_or(default))
    }

    /// Checks every typed option once: integers must be numbers. Called before anything
    /// starts, so a bad value stops the process with a message naming file and line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for e in &self.entries {
            if let Some(spec) = options::lookup(&e.key)
                && spec.kind == Kind::Int
                && parse_int(&e.value).is_none()
            {
                return Err(ConfigError::at(
                    e.origin.clone(),
                    format!("option '{}' expects a number, got '{}'", e.key, e.value),
                ));
            }
        }
        Ok(())
    }

    /// Names of options present in this configuration that imperium recognises but does
    /// not act on yet, each once, in order of first appearance.
    pub fn unimplemented(&self) -> Vec<&'static str> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for e in &self.entries {
            if let Some(spec) = options::lookup(&e.key)
                && !spec.implemented
                && seen.insert(spec.name)
            {
                out.push(spec.name);
            }
        }
        out
    }

    /// Appends an entry (used by roles that add implied settings).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.push(Entry {
            key: key.into(),
            value: value.into(),
            origin: Origin::Internal,
        });
    }
}

/// Parses an integer the way an operator expects: optional sign, decimal digits, and
/// surrounding whitespace tolerated. An empty value counts as 0, as in uWSGI.
pub fn parse_int(v: &str) -> Option<i64> {
    let t = v.trim();
    if t.is_empty() {
        return Some(0);
    }
    t.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_entries(
            pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                    origin: Origin::File {
                        path: "t.ini".into(),
                        line: i + 1,
                    },
                })
                .collect(),
        )
    }

    #[test]
    fn aliases_fold_and_last_scalar_wins() {
        let c = cfg(&[("processes", "2"), ("workers", "4")]);
        assert_eq!(c.get("processes"), Some("4"));
        assert_eq!(c.get("workers"), Some("4"));
        assert_eq!(c.get_int("processes").unwrap(), Some(4));
    }

    #[test]
    fn lists_keep_every_value_in_order() {
        let c = cfg(&[("socket", "/a"), ("master", ""), ("socket", "/b")]);
        assert_eq!(c.get_all("socket"), vec!["/a", "/b"]);
    }

    #[test]
    fn boolean_rules() {
        for (v, want) in [
            ("", true),
            ("1", true),
            ("yes", true),
            ("2", true),
            ("false", false),
            ("OFF", false),
            ("no", false),
            ("0", false),
        ] {
            assert_eq!(cfg(&[("master", v)]).flag("master"), want, "master = {v:?}");
        }
        assert!(!cfg(&[]).flag("master"));
    }

    #[test]
    fn presence_implies_master_and_threads() {
        assert!(cfg(&[("stats", "/tmp/s")]).flag("master"));
        assert!(cfg(&[("threads", "4")]).flag("enable-threads"));
        assert!(!cfg(&[("threads", "4")]).flag("master"));
    }

    #[test]
    fn bad_integers_name_file_and_line() {
        let c = cfg(&[("master", "1"), ("processes", "many")]);
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:2: option 'processes' expects a number, got 'many'"
        );
        assert!(c.get_int("processes").is_err());
        assert_eq!(
            cfg(&[("processes", " 3 ")]).get_int("processes").unwrap(),
            Some(3)
        );
    }

    #[test]
    fn unimplemented_options_are_listed_once() {
        let c = cfg(&[
            ("snmp-community", "a"),
            ("snmp-community", "b"),
            ("ini", "x.ini"),
            ("my-placeholder", "1"),
        ]);
        assert_eq!(c.unimplemented(), vec!["snmp-community"]);
    }
}
