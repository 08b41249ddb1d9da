//! Process setup done once by the master: `chdir`, `env`/`unenv`, pidfiles, and the
//! parsing of users and groups. The privilege drop itself is in `isolation.rs`.

use crate::error::VassalError;
use crate::vlog;
use nix::unistd::{Gid, Group, Uid, User};
use std::path::Path;

/// A user given by name or number.
pub fn parse_uid(v: &str) -> Result<Uid, VassalError> {
    if let Ok(n) = v.trim().parse::<u32>() {
        return Ok(Uid::from_raw(n));
    }
    match User::from_name(v.trim()) {
        Ok(Some(u)) => Ok(u.uid),
        _ => Err(VassalError::option("uid", v, "no such user")),
    }
}

/// A group given by name or number.
pub fn parse_gid(v: &str) -> Result<Gid, VassalError> {
    if let Ok(n) = v.trim().parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(v.trim()) {
        Ok(Some(g)) => Ok(g.gid),
        _ => Err(VassalError::option("gid", v, "no such group")),
    }
}

/// `chown-socket = user[:group]`.
pub fn parse_owner(v: &str) -> Result<(Option<Uid>, Option<Gid>), VassalError> {
    let (u, g) = v.split_once(':').map_or((v, None), |(u, g)| (u, Some(g)));
    let uid = parse_uid(u).map_err(|_| VassalError::option("chown-socket", v, "no such user"))?;
    let gid = match g {
        Some(g) => Some(
            parse_gid(g).map_err(|_| VassalError::option("chown-socket", v, "no such group"))?,
        ),
        None => None,
    };
    Ok((Some(uid), gid))
}

/// `env = NAME=value` (a bare `NAME` sets it empty) and `unenv = NAME`, in order.
pub fn apply_env(env: &[String], unenv: &[String]) {
    for e in env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        if !k.is_empty() {
            crate::sys::env::set(k, v);
        }
    }
    for k in unenv {
        crate::sys::env::remove(k);
    }
}

/// `chdir`/`chdir2`.
pub fn chdir(option: &str, dir: &Path) -> Result<(), VassalError> {
    std::env::set_current_dir(dir)
        .map_err(|e| VassalError::option(option, &dir.to_string_lossy(), &format!("chdir(): {e}")))
}

/// Writes `pid` into a pidfile.
pub fn write_pidfile(option: &str, path: &Path, pid: u32) -> Result<(), VassalError> {
    vlog!("writing pidfile to {}", path.display());
    std::fs::write(path, format!("{pid}\n")).map_err(|e| {
        VassalError::option(
            option,
            &path.to_string_lossy(),
            &format!("cannot write: {e}"),
        )
    })
}
