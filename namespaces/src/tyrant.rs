//! Tyrant mode: who a vassal runs as, decided from the config file the Emperor opened
//! itself, so nothing can be swapped between the check and the spawn.
//!
//! The Emperor opens the config once, takes owner and mtime from the open descriptor
//! (`fstat`), reads the content from that same descriptor and pushes it to the vassal
//! over the config channel (`emperor://name`): the vassal never reopens the path. With
//! `emperor-tyrant-nofollow` the owner is the symlink's own (`lstat` on an `O_PATH |
//! O_NOFOLLOW` descriptor); the content then comes from the link's target and is handed
//! over only if the link owner could read it anyway (it owns the target, or the target
//! is world-readable), so a tenant's link cannot pull a root-only file into its vassal.

use crate::caps;
use crate::error::{IsolationError, Result};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Largest config the Emperor reads for a tyrant vassal.
pub const MAX_CONFIG: u64 = 16 << 20;

/// A config as the tyrant Emperor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TyrantConfig {
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub content: Vec<u8>,
}

fn open_flags(nofollow: bool) -> i32 {
    libc::O_CLOEXEC
        | libc::O_NOCTTY
        | libc::O_NONBLOCK
        | if nofollow { libc::O_NOFOLLOW } else { 0 }
}

/// Opens `path` with these `open(2)` flags and reads its metadata from the open
/// descriptor (never from the path again).
fn open_stat(path: &Path, flags: i32) -> Result<(File, std::fs::Metadata)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| IsolationError::sys(format!("open {}", path.display()), e))?;
    let md = f
        .metadata()
        .map_err(|e| IsolationError::sys(format!("fstat {}", path.display()), e))?;
    Ok((f, md))
}

fn read_all(mut f: &File, what: &Path) -> Result<Vec<u8>> {
    let mut content = Vec::new();
    f.by_ref()
        .take(MAX_CONFIG + 1)
        .read_to_end(&mut content)
        .map_err(|e| IsolationError::sys(format!("reading {}", what.display()), e))?;
    if content.len() as u64 > MAX_CONFIG {
        return Err(IsolationError::Refused(format!(
            "{} is larger than {MAX_CONFIG} bytes",
            what.display()
        )));
    }
    Ok(content)
}

/// Opens and reads a vassal config for tyrant mode. `owner_nofollow` is
/// `emperor-tyrant-nofollow`. Refuses uid or gid 0, anything but a regular file (or a
/// symlink to one), and content its owner could not read.
pub fn open_config(path: &Path, owner_nofollow: bool) -> Result<TyrantConfig> {
    let refuse = |m: String| Err(IsolationError::Refused(m));
    let (uid, gid, mtime, content, mode) = if owner_nofollow {
        // The link (or file) itself, never followed.
        let (_link, lmd) = open_stat(path, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)?;
        if lmd.file_type().is_file() {
            let (f, md) = open_stat(path, open_flags(true))?;
            if (md.dev(), md.ino()) != (lmd.dev(), lmd.ino()) {
                return refuse(format!(
                    "{} was replaced while it was being opened",
                    path.display()
                ));
            }
            (
                md.uid(),
                md.gid(),
                md.mtime(),
                read_all(&f, path)?,
                md.mode(),
            )
        } else if lmd.file_type().is_symlink() {
            let (f, md) = open_stat(path, open_flags(false))?;
            if !md.file_type().is_file() {
                return refuse(format!(
                    "{} does not point to a regular file",
                    path.display()
                ));
            }
            if md.uid() != lmd.uid() && md.mode() & 0o004 == 0 {
                return refuse(format!(
                    "{} is a symlink owned by uid {} to a file owned by uid {} that it cannot read",
                    path.display(),
                    lmd.uid(),
                    md.uid()
                ));
            }
            (
                lmd.uid(),
                lmd.gid(),
                md.mtime().max(lmd.mtime()),
                read_all(&f, path)?,
                md.mode(),
            )
        } else {
            return refuse(format!("{} is not a regular file", path.display()));
        }
    } else {
        let (f, md) = open_stat(path, open_flags(false))?;
        if !md.file_type().is_file() {
            return refuse(format!("{} is not a regular file", path.display()));
        }
        (
            md.uid(),
            md.gid(),
            md.mtime(),
            read_all(&f, path)?,
            md.mode(),
        )
    };
    if uid == 0 || gid == 0 {
        return refuse(format!(
            "invalid permissions for vassal {}: owned by uid {uid} gid {gid} (tyrant mode never runs a vassal as root)",
            path.display()
        ));
    }
    if mode & 0o002 != 0 {
        return refuse(format!(
            "{} is writable by every user: refusing to run it as uid {uid} (anyone could choose what runs as that user)",
            path.display()
        ));
    }
    Ok(TyrantConfig {
        uid,
        gid,
        mtime,
        content,
    })
}

/// Checks, at start-up, that this process can switch vassals to their owners.
pub fn check_capabilities() -> Result<()> {
    let missing: Vec<&str> = [(caps::SETUID, "CAP_SETUID"), (caps::SETGID, "CAP_SETGID")]
        .into_iter()
        .filter(|(c, _)| !caps::have(*c))
        .map(|(_, n)| n)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(IsolationError::Unsupported(format!(
        "emperor-tyrant needs {} to run vassals as the owners of their configs, and this process (uid {}) does not have {}: run the Emperor as root, or keep them with `cap = setgid,setuid`",
        missing.join(" and "),
        real_uid(),
        if missing.len() == 1 { "it" } else { "them" }
    )))
}

fn real_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .and_then(|v| v.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(u32::MAX)
}

/// The supplementary groups of a tyrant vassal: with `emperor-tyrant-initgroups`, those
/// of the owner's user name (`getgrouplist`, resolved in the Emperor before the fork);
/// otherwise none.
pub fn groups_for(uid: u32, gid: u32, initgroups: bool) -> Vec<u32> {
    if !initgroups {
        return Vec::new();
    }
    #[cfg(target_os = "linux")]
    if let Some(name) = crate::sys::user_name(uid) {
        return crate::sys::grouplist(&name, gid)
            .unwrap_or_default()
            .into_iter()
            .filter(|g| *g != 0)
            .collect();
    }
    let _ = (uid, gid);
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("imperium-tyrant-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn chown(p: &Path, u: u32, g: u32, follow: bool) {
        let r = if follow {
            std::os::unix::fs::chown(p, Some(u), Some(g))
        } else {
            std::os::unix::fs::lchown(p, Some(u), Some(g))
        };
        r.unwrap();
    }

    #[test]
    fn owner_and_content_from_the_open_file() {
        let d = tmp("plain");
        let f = d.join("a.ini");
        std::fs::write(&f, "[uwsgi]\nsocket = :0\n").unwrap();
        chown(&f, 4321, 4322, true);
        let c = open_config(&f, false).unwrap();
        assert_eq!((c.uid, c.gid), (4321, 4322));
        assert_eq!(c.content, b"[uwsgi]\nsocket = :0\n");
        chown(&f, 0, 0, true);
        let e = open_config(&f, false).unwrap_err().to_string();
        assert!(e.contains("invalid permissions"), "{e}");
        chown(&f, 4321, 0, true);
        assert!(open_config(&f, false).is_err(), "gid 0 is refused too");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn symlinks() {
        let d = tmp("links");
        let secret = d.join("secret.ini");
        std::fs::write(&secret, "[uwsgi]\n").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let link = d.join("evil.ini");
        symlink(&secret, &link).unwrap();
        chown(&link, 4321, 4321, false);
        // Following: the root-owned target decides, and is refused.
        assert!(
            open_config(&link, false)
                .unwrap_err()
                .to_string()
                .contains("invalid permissions")
        );
        // Not following: the link owner cannot read the 0600 root file.
        assert!(
            open_config(&link, true)
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
        // A world-readable shared template is fine, run as the link owner.
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        chown(&secret, 1234, 1234, true);
        let c = open_config(&link, true).unwrap();
        assert_eq!((c.uid, c.gid), (4321, 4321));
        assert_eq!(open_config(&link, false).unwrap().uid, 1234);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn world_writable_configs_are_refused() {
        let d = tmp("writable");
        let f = d.join("a.ini");
        std::fs::write(&f, "[uwsgi]\n").unwrap();
        chown(&f, 4321, 4321, true);
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        assert!(
            open_config(&f, false)
                .unwrap_err()
                .to_string()
                .contains("writable by every user")
        );
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o664)).unwrap();
        assert!(
            open_config(&f, false).is_ok(),
            "group-writable stays allowed (shared groups)"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn not_a_file() {
        let d = tmp("dir");
        assert!(open_config(&d, false).is_err());
        assert!(open_config(&d.join("missing.ini"), false).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
