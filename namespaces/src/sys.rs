//! Thin, safe wrappers over the Linux system calls the isolation features need and that
//! neither std nor a small dependency offers: prctl (capability sets, no-new-privs, death
//! signal, subreaper), capget/capset, set*id, unshare, mount, pivot_root, statfs. One of
//! the two modules of this crate with `unsafe` (the other is `child`, the clone path).
#![cfg(target_os = "linux")]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn check(r: libc::c_int) -> io::Result<()> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `prctl(option, arg2, 0, 0, 0)`.
fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: prctl with integer arguments only; no memory is passed to the kernel.
    let r = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Removes one capability from the bounding set.
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0).map(drop)
}

/// Whether a capability is in the bounding set.
pub fn capbset_read(cap: u32) -> io::Result<bool> {
    prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0).map(|r| r == 1)
}

/// Keep permitted capabilities across a switch from uid 0 to non-zero uids.
pub fn set_keepcaps(on: bool) -> io::Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0).map(drop)
}

/// Adds a capability to the ambient set (it must be permitted and inheritable).
pub fn ambient_raise(cap: u32) -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        cap as libc::c_ulong,
    )
    .map(drop)
}

/// Empties the ambient set.
pub fn ambient_clear() -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map(drop)
}

/// `PR_SET_NO_NEW_PRIVS`: execve can never grant privileges again (setuid bits, file caps).
pub fn set_no_new_privs() -> io::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop)
}

/// `PR_SET_PDEATHSIG`.
pub fn set_pdeathsig(sig: i32) -> io::Result<()> {
    prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0).map(drop)
}

/// `PR_SET_CHILD_SUBREAPER`: orphaned descendants are reparented to this process.
pub fn set_child_subreaper() -> io::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0).map(drop)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The three capability sets of this thread: (effective, permitted, inheritable).
pub fn capget() -> io::Result<(u64, u64, u64)> {
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: the header and a two-element data array, as version 3 requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| (lo as u64) | ((hi as u64) << 32);
    Ok((
        join(d[0].effective, d[1].effective),
        join(d[0].permitted, d[1].permitted),
        join(d[0].inheritable, d[1].inheritable),
    ))
}

/// Sets the three capability sets of this thread.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let d = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: as in capget; the kernel only reads the data array.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `setresgid(g, g, g)`.
pub fn setresgid(g: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresgid(g, g, g) })
}

/// `setresuid(u, u, u)`.
pub fn setresuid(u: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresuid(u, u, u) })
}

/// `setgroups(groups)`.
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length of a live slice of gid_t (u32).
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
}

/// `unshare(flags)`.
pub fn unshare(flags: u64) -> io::Result<()> {
    // SAFETY: integer argument only.
    check(unsafe { libc::unshare(flags as libc::c_int) })
}

/// `sethostname(name)`.
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live byte slice.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// `chroot(dir)` then `chdir("/")`.
pub fn chroot(dir: &Path) -> io::Result<()> {
    let c = cpath(dir)?;
    // SAFETY: a NUL-terminated path that lives across the call.
    check(unsafe { libc::chroot(c.as_ptr()) })?;
    std::env::set_current_dir("/")
}

/// `mount(source, target, fstype, flags, data)`, every string optional.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let opt = |s: Option<&str>| {
        s.map(CString::new)
            .transpose()
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (src, fs, dat) = (opt(source)?, opt(fstype)?, opt(data)?);
    let tgt = cpath(target)?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: NUL-terminated strings (or NULL) that live across the call.
    check(unsafe {
        libc::mount(
            p(&src),
            tgt.as_ptr(),
            p(&fs),
            flags as libc::c_ulong,
            p(&dat).cast(),
        )
    })
}

/// `umount2(target, flags)`.
pub fn umount(target: &Path, flags: i32) -> io::Result<()> {
    let tgt = cpath(target)?;
    // SAFETY: a NUL-terminated path that lives across the call.
    check(unsafe { libc::umount2(tgt.as_ptr(), flags) })
}

/// `pivot_root(new_root, put_old)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let (n, o) = (cpath(new_root)?, cpath(put_old)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The filesystem magic number of the filesystem holding `p` (`statfs`).
pub fn fs_magic(p: &Path) -> io::Result<i64> {
    let c = cpath(p)?;
    // SAFETY: statfs fills a zeroed struct we own; the path is NUL-terminated.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statfs(c.as_ptr(), &mut s) })?;
    Ok(s.f_type as i64)
}

/// The supplementary groups of a user (`getgrouplist`), `base` included.
pub fn grouplist(user: &str, base: u32) -> io::Result<Vec<u32>> {
    let name = CString::new(user).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut n: libc::c_int = 64;
    loop {
        let mut buf = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: buf has room for n gids; getgrouplist writes at most n and updates n.
        let r = unsafe { libc::getgrouplist(name.as_ptr(), base, buf.as_mut_ptr(), &mut n) };
        if r >= 0 {
            buf.truncate(n.max(0) as usize);
            return Ok(buf);
        }
        if n <= before {
            n = before * 2;
        }
        if n > 65536 {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
    }
}

/// The name of a user id (`getpwuid_r`), when it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: passwd is plain data filled by getpwuid_r; buf outlives the use of pw_name.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
