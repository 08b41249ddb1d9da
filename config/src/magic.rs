//! Magic variables: `%n`, `%d`, `%p`... expanded on the raw text of every configuration
//! file as soon as it is read (never on command-line or environment values).
//!
//! The table has one slot per byte. Every slot starts empty, so an unknown `%X` expands to
//! nothing; `%%` gives `%` and `%(` is kept for placeholders. Per-file slots are refilled
//! each time a file is loaded; the upper-case twins keep the values of the first file
//! loaded through `--ini`/`--xml`/`--yaml`/`--json`/`--config`.

use std::path::Path;

/// The 256-slot magic table.
#[derive(Debug, Clone)]
pub struct MagicTable {
    slots: Vec<String>,
    first_round_done: bool,
}

/// Facts about the running process that fill the static slots.
#[derive(Debug, Clone, Default)]
pub struct ProcessFacts {
    pub cwd: String,
    pub hostname: String,
    pub version: String,
    pub cpus: usize,
    pub uid: u32,
    pub user: Option<String>,
    pub gid: u32,
    pub group: Option<String>,
    pub binary: String,
    pub start_secs: u64,
    pub start_micros: u64,
}

impl MagicTable {
    /// A table with the static slots (`%v %h %t %T %V %k %[ %u %U %g %G`) filled in.
    pub fn new(facts: &ProcessFacts) -> Self {
        let mut slots = vec![String::new(); 256];
        slots[b'%' as usize] = "%".into();
        slots[b'(' as usize] = "%(".into();
        slots[b'v' as usize] = facts.cwd.clone();
        slots[b'h' as usize] = facts.hostname.clone();
        slots[b't' as usize] = facts.start_secs.to_string();
        slots[b'T' as usize] = facts.start_micros.to_string();
        slots[b'V' as usize] = facts.version.clone();
        slots[b'k' as usize] = facts.cpus.to_string();
        slots[b'[' as usize] = "\x1b".into();
        slots[b'u' as usize] = facts.uid.to_string();
        slots[b'U' as usize] = facts.user.clone().unwrap_or_else(|| facts.uid.to_string());
        slots[b'g' as usize] = facts.gid.to_string();
        slots[b'G' as usize] = facts.group.clone().unwrap_or_else(|| facts.gid.to_string());
        MagicTable {
            slots,
            first_round_done: false,
        }
    }

    /// The current value of `%c`.
    pub fn get(&self, c: u8) -> &str {
        &self.slots[c as usize]
    }

    fn set(&mut self, c: u8, v: impl Into<String>) {
        self.slots[c as usize] = v.into();
    }

    /// Whether the upper-case slots have been captured already.
    pub fn first_round_done(&self) -> bool {
        self.first_round_done
    }

    /// Marks the upper-case slots as captured (or releases the mark, to restore it).
    pub fn set_first_round_done(&mut self, done: bool) {
        self.first_round_done = done;
    }

    /// Refills the per-file slots for `name` (a path, optionally `path:section`, or a URL).
    ///
    /// `cwd` prefixes relative symlink names; `binary` fills `%b`. Fails only when the file
    /// does not exist (its real path cannot be computed).
    pub fn fill_for_file(&mut self, name: &str, cwd: &str, binary: &str) -> Result<(), String> {
        self.set(b'o', name);
        if has_scheme(name) || name == "-" {
            return Ok(());
        }
        let (path, section) = match name.rfind(':') {
            Some(i) => (&name[..i], Some(&name[i + 1..])),
            None => (name, None),
        };
        if !path.is_empty() {
            self.fill_path(path, cwd, binary)?;
        }
        self.set(b'x', section.unwrap_or(""));
        if !self.first_round_done {
            for c in [b'O', b'D', b'S', b'P', b'C', b'E', b'N', b'X', b'I', b'J'] {
                let lower = c.to_ascii_lowercase();
                let v = self.slots[lower as usize].clone();
                self.set(c, v);
            }
            self.first_round_done = true;
        }
        Ok(())
    }

    fn fill_path(&mut self, path: &str, cwd: &str, binary: &str) -> Result<(), String> {
        let p = Path::new(path);
        let is_link = std::fs::symlink_metadata(p)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        // A symlinked config keeps the name it was given (so %n is the link's name).
        let full = if is_link {
            if path.starts_with('/') {
                path.to_string()
            } else {
                format!("{cwd}/{path}")
            }
        } else {
            match std::fs::canonicalize(p) {
                Ok(r) => r.to_string_lossy().into_owned(),
                Err(e) => return Err(format!("cannot resolve the path of {path}: {e}")),
            }
        };
        self.set(b'b', binary);
        self.set(
            b'j',
            format!("{:08X}", djb33x(full.as_bytes()).swap_bytes()),
        );
        if let Ok(m) = std::fs::symlink_metadata(&full) {
            use std::os::unix::fs::MetadataExt;
            self.set(b'i', m.ino().to_string());
        }
        let slash = full.rfind('/').map(|i| i + 1).unwrap_or(0);
        let s = full[slash..].to_string();
        let d = full[..slash].to_string();
        let d_trim = d.strip_suffix('/').unwrap_or(&d);
        let c = d_trim
            .rfind('/')
            .map(|i| d_trim[i + 1..].to_string())
            .unwrap_or_default();
        let mut parts = d_trim.split('/').filter(|x| !x.is_empty());
        for slot in b'0'..=b'9' {
            let v = parts.next().unwrap_or("").to_string();
            self.set(slot, v);
        }
        let (n, e) = match s.rfind('.') {
            Some(i) => (s[..i].to_string(), s[i + 1..].to_string()),
            None => (s.clone(), String::new()),
        };
        self.set(b'p', full.clone());
        self.set(b's', s);
        self.set(b'd', d);
        self.set(b'c', c);
        self.set(b'n', n);
        self.set(b'e', e);
        Ok(())
    }

    /// Expands every `%X` in `text` from the table.
    pub fn substitute(&self, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            if text[i] == b'%' && i + 1 < text.len() {
                out.extend_from_slice(self.slots[text[i + 1] as usize].as_bytes());
                i += 2;
            } else {
                out.push(text[i]);
                i += 1;
            }
        }
        out
    }
}

/// uWSGI's djb33x string hash (the `%j` slot prints its four bytes in memory order).
fn djb33x(bytes: &[u8]) -> u32 {
    let mut h: u32 = 5381;
    for &b in bytes {
        // uWSGI hashes `char`, which is signed on x86: high bytes are sign-extended.
        h = h.wrapping_mul(33) ^ (b as i8 as i32 as u32);
    }
    h
}

/// The URL schemes that name a configuration source rather than a file.
pub const SCHEMES: &[&str] = &[
    "emperor", "http", "data", "sym", "section", "fd", "exec", "call", "callint",
];

/// True when `name` starts with one of [`SCHEMES`] followed by `://`.
pub fn has_scheme(name: &str) -> bool {
    scheme_of(name).is_some()
}

/// Splits `scheme://rest` into its scheme and rest.
pub fn scheme_of(name: &str) -> Option<(&'static str, &str)> {
    SCHEMES.iter().find_map(|s| {
        name.strip_prefix(s)
            .and_then(|r| r.strip_prefix("://"))
            .map(|rest| (*s, rest))
    })
}
