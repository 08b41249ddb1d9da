//! Process-wide isolation steps a vassal takes on itself while it is still root
//! (`unshare`, `chroot`, `pivot_root`, hostname), and the hardening it applies after its
//! privilege drop (`cap`, `NO_NEW_PRIVS`, the parent-death signal re-armed after the
//! uid change). Used by the vassal's start-up; the Emperor's equivalents run in
//! [`crate::child`].
#![cfg(target_os = "linux")]

use crate::caps::{self, CapSet};
use crate::error::{IsolationError, Result};
use crate::nsflags::NsFlags;
use crate::sys;
use std::path::Path;

/// `unshare = ...`. A new user namespace makes the caller root inside it (its maps
/// are written from inside: `0 <uid> 1`, with `setgroups` denied). A new mount namespace
/// is made private at once (`MS_REC|MS_PRIVATE`, as unshare(1) and `emperor-use-clone`
/// do), so a mount the vassal makes (its own /proc) never propagates to the host.
pub fn unshare(flags: NsFlags) -> Result<()> {
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    sys::unshare(flags.0)
        .map_err(|e| IsolationError::sys(format!("unshare({})", flags.names()), e))?;
    if flags.has(crate::nsflags::NEWNS) {
        make_root_private()?;
    }
    if flags.has(crate::nsflags::NEWUSER) {
        let w = |f: &str, v: String| {
            std::fs::write(format!("/proc/self/{f}"), v)
                .map_err(|e| IsolationError::sys(format!("writing /proc/self/{f}"), e))
        };
        w("setgroups", "deny".into())?;
        w("uid_map", format!("0 {uid} 1\n"))?;
        w("gid_map", format!("0 {gid} 1\n"))?;
    }
    Ok(())
}

/// Makes the whole mount tree private (`MS_REC|MS_PRIVATE` on `/`), so no mount made
/// from now on propagates back to the host.
fn make_root_private() -> Result<()> {
    sys::mount(
        None,
        Path::new("/"),
        None,
        (libc::MS_REC | libc::MS_PRIVATE) as u64,
        None,
    )
    .map_err(|e| IsolationError::sys("making / private", e))
}

/// `chroot = dir`.
pub fn chroot(dir: &Path) -> Result<()> {
    sys::chroot(dir).map_err(|e| IsolationError::sys(format!("chroot({})", dir.display()), e))
}

/// `pivot_root = new_root put_old`: the mount tree is made private first (so nothing
/// propagates back to the host), then `chdir(new)`, `pivot_root(".", old)`, `chdir("/")`.
pub fn pivot_root(spec: &str) -> Result<()> {
    let mut it = spec.split_whitespace();
    let (Some(new), Some(old)) = (it.next(), it.next()) else {
        return Err(IsolationError::option(
            "pivot_root",
            spec,
            "expects: <new_root> <put_old>",
        ));
    };
    let rel_old = Path::new(old).strip_prefix(new).map_err(|_| {
        IsolationError::option("pivot_root", spec, "put_old must be under new_root")
    })?;
    make_root_private()?;
    std::env::set_current_dir(new).map_err(|e| IsolationError::sys(format!("chdir({new})"), e))?;
    let rel = Path::new(".").join(rel_old);
    sys::pivot_root(Path::new("."), &rel)
        .map_err(|e| IsolationError::sys(format!("pivot_root({new}, {old})"), e))?;
    std::env::set_current_dir("/").map_err(|e| IsolationError::sys("chdir(/)", e))
}

/// `sethostname` (needs a new uts namespace to stay private).
pub fn set_hostname(name: &str) -> Result<()> {
    sys::sethostname(name).map_err(|e| IsolationError::sys(format!("sethostname({name})"), e))
}

/// Mounts a fresh `/proc` (inside a new pid + mount namespace it shows only the vassal).
pub fn mount_proc() -> Result<()> {
    make_root_private()?;
    sys::mount(
        Some("proc"),
        Path::new("/proc"),
        Some("proc"),
        (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as u64,
        None,
    )
    .map_err(|e| IsolationError::sys("mounting /proc", e))
}

/// `PR_SET_NO_NEW_PRIVS`.
pub fn no_new_privs() -> Result<()> {
    sys::set_no_new_privs().map_err(|e| IsolationError::sys("prctl(PR_SET_NO_NEW_PRIVS)", e))
}

/// Re-arms the parent-death signal (a uid change clears it) and checks the parent is
/// still `expected_parent`: false when it already died.
pub fn rearm_deathsig(sig: i32, expected_parent: i32) -> Result<bool> {
    sys::set_pdeathsig(sig).map_err(|e| IsolationError::sys("prctl(PR_SET_PDEATHSIG)", e))?;
    Ok(nix_getppid() == expected_parent)
}

fn nix_getppid() -> i32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() }
}

/// The parent-death signal currently set (0: none).
pub fn deathsig() -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int through the pointer.
    unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut sig as *mut libc::c_int) };
    sig
}

/// Makes this process a child subreaper.
pub fn subreaper() -> Result<()> {
    sys::set_child_subreaper().map_err(|e| IsolationError::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))
}

/// Drops root for `uid`/`gid` with `groups`, keeping `keep` capabilities (permitted,
/// effective, inheritable and ambient), then sets NO_NEW_PRIVS and re-arms the death
/// signal if one was set. The vassal's `uid`/`gid`/`cap` path.
pub fn drop_to(uid: u32, gid: u32, groups: &[u32], keep: CapSet) -> Result<()> {
    let sig = deathsig();
    let parent = nix_getppid();
    if !keep.is_empty() {
        caps::before_setuid(keep)?;
    }
    sys::setgroups(groups).map_err(|e| IsolationError::sys("setgroups()", e))?;
    sys::setresgid(gid).map_err(|e| IsolationError::sys(format!("setgid({gid})"), e))?;
    sys::setresuid(uid).map_err(|e| IsolationError::sys(format!("setuid({uid})"), e))?;
    if !keep.is_empty() {
        caps::after_setuid(keep)?;
    }
    if uid != 0 {
        no_new_privs()?;
    }
    if sig != 0 && !rearm_deathsig(sig, parent)? {
        return Err(IsolationError::Unsupported(
            "the parent died while this process dropped its privileges".into(),
        ));
    }
    Ok(())
}
