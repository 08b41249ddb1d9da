//! The namespace list of `unshare` and `emperor-use-clone` (`fs,net,ipc,pid,uts,user,
//! cgroup,time`, plus uWSGI's `files`, `io`, `parent`, `sysvsem`), as clone flags. An
//! unknown name is an error ("unknown namespace subsystem"), as in uWSGI.

use crate::error::{IsolationError, Result};

pub const NEWNS: u64 = 0x0002_0000;
pub const NEWCGROUP: u64 = 0x0200_0000;
pub const NEWUTS: u64 = 0x0400_0000;
pub const NEWIPC: u64 = 0x0800_0000;
pub const NEWUSER: u64 = 0x1000_0000;
pub const NEWPID: u64 = 0x2000_0000;
pub const NEWNET: u64 = 0x4000_0000;
pub const NEWTIME: u64 = 0x0000_0080;
pub const FILES: u64 = 0x0000_0400;
pub const IO: u64 = 0x8000_0000;
pub const PARENT: u64 = 0x0000_8000;
pub const SYSVSEM: u64 = 0x0004_0000;

const TABLE: [(&str, u64); 15] = [
    ("fs", NEWNS),
    ("ns", NEWNS),
    ("mount", NEWNS),
    ("mnt", NEWNS),
    ("ipc", NEWIPC),
    ("pid", NEWPID),
    ("uts", NEWUTS),
    ("net", NEWNET),
    ("user", NEWUSER),
    ("cgroup", NEWCGROUP),
    ("time", NEWTIME),
    ("files", FILES),
    ("io", IO),
    ("parent", PARENT),
    ("sysvsem", SYSVSEM),
];

/// Namespace flags, as passed to clone3/unshare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NsFlags(pub u64);

impl NsFlags {
    pub fn has(self, f: u64) -> bool {
        self.0 & f != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The canonical names, comma-separated.
    pub fn names(self) -> String {
        let mut out: Vec<&str> = Vec::new();
        for (n, f) in TABLE {
            if self.0 & f != 0
                && !out
                    .iter()
                    .any(|o| TABLE.iter().any(|(m, g)| m == o && *g == f))
            {
                out.push(n);
            }
        }
        out.join(",")
    }

    /// Only the flags that create a namespace (what `/proc/<pid>/ns/*` can show).
    pub fn namespaces(self) -> NsFlags {
        NsFlags(
            self.0 & (NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME),
        )
    }
}

/// Parses one or more comma-separated lists (each value of a repeatable option).
pub fn parse<S: AsRef<str>>(option: &str, values: &[S]) -> Result<NsFlags> {
    let mut flags = 0;
    for v in values {
        for part in v
            .as_ref()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match TABLE.iter().find(|(n, _)| n.eq_ignore_ascii_case(part)) {
                Some((_, f)) => flags |= f,
                None => {
                    return Err(IsolationError::option(
                        option,
                        v.as_ref(),
                        format!("unknown namespace subsystem: {part}"),
                    ));
                }
            }
        }
    }
    Ok(NsFlags(flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_aliases() {
        let f = parse("unshare", &["fs,net", "ipc, pid,uts", "mnt"]).unwrap();
        assert_eq!(f.0, NEWNS | NEWNET | NEWIPC | NEWPID | NEWUTS);
        assert_eq!(f.names(), "fs,ipc,pid,uts,net");
        assert_eq!(
            parse("unshare", &["user,cgroup,time"]).unwrap().0,
            NEWUSER | NEWCGROUP | NEWTIME
        );
        assert_eq!(
            parse("unshare", &["files,sysvsem"]).unwrap().namespaces(),
            NsFlags(0)
        );
    }

    #[test]
    fn unknown_is_an_error() {
        let e = parse("emperor-use-clone", &["pid,bogus"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown namespace subsystem: bogus"), "{e}");
    }

    #[test]
    fn flags_match_the_kernel() {
        assert_eq!(NEWNS, libc::CLONE_NEWNS as u64);
        assert_eq!(NEWPID, libc::CLONE_NEWPID as u64);
        assert_eq!(NEWUSER, libc::CLONE_NEWUSER as u64);
        assert_eq!(NEWCGROUP, libc::CLONE_NEWCGROUP as u64);
        assert_eq!(NEWNET, libc::CLONE_NEWNET as u64);
        assert_eq!(IO, libc::CLONE_IO as u32 as u64);
    }
}
