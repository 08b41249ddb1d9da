//! Which file names are vassal configurations, and which format flag each one gets.

/// uWSGI's built-in config extensions.
const BUILTIN: [&str; 6] = [".xml", ".ini", ".yml", ".yaml", ".js", ".json"];

/// The longest accepted name, in bytes (uWSGI stores names in 255 bytes with a NUL).
pub const MAX_NAME: usize = 254;

/// Naming rules: built-in extensions plus `emperor-extra-extension` values.
#[derive(Debug, Clone, Default)]
pub struct NameRules {
    pub extra: Vec<String>,
}

/// Why a name is not a vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a config name at all (other extension, directory, template): silently skipped.
    NotConfig,
    /// A hidden file or an editor temporary (`.a.ini`, `.#a.ini`, `a.ini~`, `a.ini.swp`):
    /// silently skipped.
    Temporary,
    /// A config name that is unusable: logged once.
    TooLong,
    /// Contains a NUL or a newline: logged once.
    BadBytes,
}

impl NameRules {
    /// Classifies a name (for glob monitors, the whole matched path; the hidden-file rule
    /// applies to its last component).
    pub fn check(&self, name: &str) -> Result<(), Rejection> {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.is_empty() {
            return Err(Rejection::NotConfig);
        }
        if base.starts_with('.') || base.starts_with('#') || base.ends_with('~') {
            return Err(Rejection::Temporary);
        }
        for tmp in [".swp", ".swo", ".swx", ".tmp", ".bak"] {
            if base.ends_with(tmp) {
                return Err(Rejection::Temporary);
            }
        }
        if !self.has_config_extension(name) {
            return Err(Rejection::NotConfig);
        }
        if name.bytes().any(|b| b == 0 || b == b'\n' || b == b'\r') {
            return Err(Rejection::BadBytes);
        }
        if name.len() > MAX_NAME {
            return Err(Rejection::TooLong);
        }
        Ok(())
    }

    /// True when the name ends in a known config extension.
    pub fn has_config_extension(&self, name: &str) -> bool {
        BUILTIN.iter().any(|e| name.ends_with(e))
            || self
                .extra
                .iter()
                .any(|e| !e.is_empty() && name.ends_with(e.as_str()))
    }

    /// The vassal argv flag for a name: `--xml`, `--ini`, `--yaml`, `--json`, `--config`
    /// for an extra extension, and uWSGI's fallback `--inherit`. A Broodlord zerg
    /// (`app.ini:zerg`) is judged by the part before the colon.
    pub fn format_flag(&self, name: &str) -> &'static str {
        let base = match name.rfind(':') {
            Some(i) if self.has_config_extension(&name[..i]) => &name[..i],
            _ => name,
        };
        if self
            .extra
            .iter()
            .any(|e| !e.is_empty() && base.ends_with(e.as_str()))
        {
            return "--config";
        }
        if base.ends_with(".xml") {
            "--xml"
        } else if base.ends_with(".ini") {
            "--ini"
        } else if base.ends_with(".yml") || base.ends_with(".yaml") {
            "--yaml"
        } else if base.ends_with(".js") || base.ends_with(".json") {
            "--json"
        } else {
            "--inherit"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        let r = NameRules::default();
        for n in [
            "a.ini",
            "b.xml",
            "c.yml",
            "d.yaml",
            "e.js",
            "f.json",
            "dir/x/uwsgi.ini",
        ] {
            assert_eq!(r.check(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn skipped_names() {
        let r = NameRules::default();
        assert_eq!(r.check("readme.txt"), Err(Rejection::NotConfig));
        assert_eq!(r.check("b.ini.bak"), Err(Rejection::Temporary));
        assert_eq!(r.check("app.skel"), Err(Rejection::NotConfig));
        assert_eq!(r.check(".hidden.ini"), Err(Rejection::Temporary));
        assert_eq!(r.check(".#a.ini"), Err(Rejection::Temporary));
        assert_eq!(r.check("a.ini~"), Err(Rejection::Temporary));
        assert_eq!(r.check(".a.ini.swp"), Err(Rejection::Temporary));
        assert_eq!(r.check("d/.x.ini"), Err(Rejection::Temporary));
    }

    #[test]
    fn length_limit() {
        let r = NameRules::default();
        let ok = format!("{}.ini", "a".repeat(MAX_NAME - 4));
        assert_eq!(r.check(&ok), Ok(()));
        let long = format!("{}.ini", "a".repeat(MAX_NAME - 3));
        assert_eq!(r.check(&long), Err(Rejection::TooLong));
    }

    #[test]
    fn bad_bytes() {
        assert_eq!(
            NameRules::default().check("a\nb.ini"),
            Err(Rejection::BadBytes)
        );
    }

    #[test]
    fn extra_extension() {
        let r = NameRules {
            extra: vec![".conf".into()],
        };
        assert_eq!(r.check("a.conf"), Ok(()));
        assert_eq!(r.format_flag("a.conf"), "--config");
    }

    #[test]
    fn flags() {
        let r = NameRules::default();
        assert_eq!(r.format_flag("a.ini"), "--ini");
        assert_eq!(r.format_flag("a.xml"), "--xml");
        assert_eq!(r.format_flag("a.yml"), "--yaml");
        assert_eq!(r.format_flag("a.yaml"), "--yaml");
        assert_eq!(r.format_flag("a.js"), "--json");
        assert_eq!(r.format_flag("a.json"), "--json");
        assert_eq!(r.format_flag("a.ini:zerg"), "--ini");
    }
}
