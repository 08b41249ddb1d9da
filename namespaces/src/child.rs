//! Creating a vassal process: `clone3` with namespace flags, `CLONE_INTO_CGROUP` and a
//! normal fork-like stack, then a fixed list of steps in the child before `execve`.
//! The only other module with `unsafe` besides `sys`.
//!
//! Everything the child needs is prepared by the parent first (C strings, pointer arrays,
//! descriptors, supplementary groups), so the child performs only async-signal-safe
//! system calls and allocates nothing. The steps, in order:
//!
//! 1. reset signal dispositions and unblock every signal;
//! 2. join the cgroups (write `0` to each pre-opened `cgroup.procs`; the v2 group was
//!    already entered by `CLONE_INTO_CGROUP` when the kernel supports it);
//! 3. wait for the parent (it writes `uid_map`/`gid_map` of a new user namespace first);
//!    in a new user namespace become its root (`setgroups`, `setresgid(0)`, `setresuid(0)`);
//!    in a new mount namespace make every mount private (nothing propagates to the host);
//! 4. shrink the bounding set (`emperor-cap`);
//! 5. tyrant credentials: `setgroups` (none, or the owner's with initgroups),
//!    `setresgid`, `setresuid`;
//! 6. `PR_SET_NO_NEW_PRIVS` for non-root vassals;
//! 7. `PR_SET_PDEATHSIG` (after the uid change, which clears it) and a re-check that the
//!    parent is still there;
//! 8. own process group, `chdir`, stdin, descriptor hygiene, `execve`.
//!
//! A failing step reports (step, errno) through a close-on-exec pipe and the child exits
//! 127; the parent reads that pipe until EOF, so `spawn` returns only when the new
//! program runs or the error is known, as `std::process::Command::spawn` does.
#![cfg(target_os = "linux")]

use crate::caps::CapSet;
use crate::nsflags::{self, NsFlags};
use std::ffi::{CString, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Credentials for the child (tyrant mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (empty: none).
    pub groups: Vec<u32>,
}

/// uid_map / gid_map contents written by the parent for a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid_map: String,
    pub gid_map: String,
}

impl IdMaps {
    /// Root inside maps to `uid`/`gid` outside.
    pub fn root_as(uid: u32, gid: u32) -> IdMaps {
        IdMaps {
            uid_map: format!("0 {uid} 1\n"),
            gid_map: format!("0 {gid} 1\n"),
        }
    }
}

/// What to start and how.
#[derive(Debug, Default)]
pub struct ChildSpec {
    /// The executable (already resolved: no PATH search happens in the child).
    pub program: PathBuf,
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// fd 0 for the child; None: /dev/null.
    pub stdin: Option<RawFd>,
    /// Descriptors the child keeps, same numbers.
    pub keep_fds: Vec<RawFd>,
    pub namespaces: NsFlags,
    /// The v2 cgroup directory to clone into.
    pub cgroup_dir: Option<RawFd>,
    /// That group's `cgroup.procs`, written by the child only when the kernel could not
    /// clone straight into the group.
    pub cgroup_dir_procs: Option<RawFd>,
    /// `cgroup.procs` files (opened for writing) the child puts itself into.
    pub cgroup_procs: Vec<RawFd>,
    /// Maps of a new user namespace (required with `user`).
    pub id_maps: Option<IdMaps>,
    /// Bounding set to keep (`emperor-cap`).
    pub bounding: Option<CapSet>,
    pub creds: Option<Creds>,
    pub no_new_privs: bool,
    /// Parent-death signal.
    pub deathsig: Option<i32>,
    pub own_group: bool,
}

/// The step that failed in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Clone,
    Signals,
    Cgroup,
    Sync,
    UserNs,
    Mounts,
    Bounding,
    Groups,
    Gid,
    Uid,
    NoNewPrivs,
    DeathSignal,
    ParentGone,
    ProcessGroup,
    Chdir,
    Stdin,
    Descriptors,
    Exec,
    IdMap,
    Prepare,
}

const STEPS: [Step; 20] = [
    Step::Clone,
    Step::Signals,
    Step::Cgroup,
    Step::Sync,
    Step::UserNs,
    Step::Mounts,
    Step::Bounding,
    Step::Groups,
    Step::Gid,
    Step::Uid,
    Step::NoNewPrivs,
    Step::DeathSignal,
    Step::ParentGone,
    Step::ProcessGroup,
    Step::Chdir,
    Step::Stdin,
    Step::Descriptors,
    Step::Exec,
    Step::IdMap,
    Step::Prepare,
];

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::Clone => "clone3()",
            Step::Signals => "resetting signals",
            Step::Cgroup => "joining the cgroup",
            Step::Sync => "waiting for the parent",
            Step::UserNs => "becoming root in the new user namespace",
            Step::Mounts => "making the new mount namespace private",
            Step::Bounding => "limiting the capability bounding set",
            Step::Groups => "setgroups()",
            Step::Gid => "setgid()",
            Step::Uid => "setuid()",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::DeathSignal => "prctl(PR_SET_PDEATHSIG)",
            Step::ParentGone => "the parent died during the spawn",
            Step::ProcessGroup => "setpgid()",
            Step::Chdir => "chdir()",
            Step::Stdin => "dup2() of stdin",
            Step::Descriptors => "closing descriptors",
            Step::Exec => "execve()",
            Step::IdMap => "writing the user namespace id maps",
            Step::Prepare => "preparing the spawn",
        }
    }
}

/// A spawn that failed: where, and the system error.
#[derive(Debug)]
pub struct SpawnError {
    pub step: Step,
    pub error: io::Error,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step.what(), self.error)
    }
}

impl std::error::Error for SpawnError {}

fn err(step: Step, error: io::Error) -> SpawnError {
    SpawnError { step, error }
}

fn cstr(b: &[u8]) -> Result<CString, SpawnError> {
    CString::new(b).map_err(|_| err(Step::Prepare, io::Error::from_raw_os_error(libc::EINVAL)))
}

/// Everything the child touches, built before the clone.
struct Prepared<'a> {
    spec: &'a ChildSpec,
    program: CString,
    cwd: CString,
    _argv: Vec<CString>,
    _env: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    env_ptrs: Vec<*const libc::c_char>,
    /// The last capability number, for the bounding-set loop.
    last_cap: u32,
    parent: libc::pid_t,
}

impl<'a> Prepared<'a> {
    fn new(spec: &'a ChildSpec) -> Result<Prepared<'a>, SpawnError> {
        let argv: Vec<CString> = spec
            .argv
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let env: Vec<CString> = spec
            .env
            .iter()
            .map(|(k, v)| {
                let mut b = k.as_bytes().to_vec();
                b.push(b'=');
                b.extend_from_slice(v.as_bytes());
                cstr(&b)
            })
            .collect::<Result<_, _>>()?;
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        Ok(Prepared {
            spec,
            program: cstr(spec.program.as_os_str().as_bytes())?,
            cwd: cstr(spec.cwd.as_os_str().as_bytes())?,
            _argv: argv,
            _env: env,
            argv_ptrs,
            env_ptrs,
            last_cap: crate::caps::last_cap(),
            // SAFETY: getpid has no preconditions.
            parent: unsafe { libc::getpid() },
        })
    }
}

/// `struct clone_args` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(err(Step::Prepare, io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Clones with fork semantics (the child continues here on a copy of the stack).
/// Returns the pid in the parent and 0 in the child.
///
/// # Safety
/// The caller must be single-threaded and, in the child, run only async-signal-safe
/// code until `execve` or `_exit`.
/// The second value says whether the child was created inside `cgroup`.
unsafe fn clone(flags: u64, cgroup: Option<RawFd>) -> io::Result<(libc::pid_t, bool)> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 reads the argument struct; stack 0 means fork-like behaviour.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r >= 0 {
        return Ok((r as libc::pid_t, cgroup.is_some()));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Old kernel (no clone3, or no CLONE_INTO_CGROUP), or the cgroup directory is
        // not on cgroup2: the child joins through cgroup.procs instead.
        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EOPNOTSUPP) if cgroup.is_some() => unsafe {
            clone(flags, None)
        },
        Some(libc::ENOSYS) => {
            // SAFETY: the legacy clone with a NULL stack is fork with flags.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok((r as libc::pid_t, false))
            }
        }
        _ => Err(e),
    }
}

/// Starts the process described by `spec`; returns its pid once it has exec-ed.
/// The caller must be single-threaded (the Emperor is).
pub fn spawn(spec: &ChildSpec) -> Result<i32, SpawnError> {
    let p = Prepared::new(spec)?;
    let null = if spec.stdin.is_none() {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .open("/dev/null")
            .map_err(|e| err(Step::Prepare, e))?;
        Some(OwnedFd::from(f))
    } else {
        None
    };
    let (err_r, err_w) = pipe()?;
    let (sync_r, sync_w) = pipe()?;
    // Block every signal across the clone so the child never runs the parent's handlers.
    // SAFETY: sigset_t is plain data initialised by sigfillset; the old mask is restored below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: single-threaded caller; the child runs only child_main (async-signal-safe).
    let r = unsafe { clone(spec.namespaces.0, spec.cgroup_dir) };
    match r {
        Ok((0, into)) => {
            let stdin = spec
                .stdin
                .or(null.as_ref().map(|n| n.as_raw_fd()))
                .unwrap_or(-1);
            child_main(
                &p,
                stdin,
                into,
                sync_r.as_raw_fd(),
                sync_w.as_raw_fd(),
                err_w.as_raw_fd(),
            )
        }
        Ok((pid, _)) => {
            // SAFETY: restoring the mask saved above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            drop(err_w);
            drop(sync_r);
            let map_result = match &spec.id_maps {
                Some(m) => write_id_maps(pid, m),
                None => Ok(()),
            };
            if let Err(e) = map_result {
                drop(sync_w);
                // SAFETY: kill and waitpid on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return Err(err(Step::IdMap, e));
            }
            // Release the child.
            // SAFETY: a one-byte write to our pipe.
            unsafe { libc::write(sync_w.as_raw_fd(), b"1".as_ptr().cast(), 1) };
            drop(sync_w);
            let mut buf = [0u8; 8];
            let mut got = 0;
            while got < buf.len() {
                // SAFETY: reading into the unfilled tail of buf.
                let n = unsafe {
                    libc::read(
                        err_r.as_raw_fd(),
                        buf[got..].as_mut_ptr().cast(),
                        buf.len() - got,
                    )
                };
                if n == 0 {
                    break;
                }
                if n < 0 {
                    if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    break;
                }
                got += n as usize;
            }
            if got == 0 {
                return Ok(pid);
            }
            // SAFETY: reaping our own failed child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            let step = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            Err(err(
                STEPS.get(step as usize).copied().unwrap_or(Step::Exec),
                io::Error::from_raw_os_error(errno),
            ))
        }
        Err(e) => {
            // SAFETY: restoring the mask saved above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            Err(err(Step::Clone, e))
        }
    }
}

fn write_id_maps(pid: i32, m: &IdMaps) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/uid_map"), &m.uid_map)?;
    std::fs::write(format!("/proc/{pid}/gid_map"), &m.gid_map)
}

/// Reports a failed step to the parent and exits. Async-signal-safe.
fn fail(err_w: RawFd, step: Step) -> ! {
    // SAFETY: errno read, a write to our pipe and _exit: all async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        let idx = STEPS.iter().position(|s| *s == step).unwrap_or(0) as u32;
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&idx.to_ne_bytes());
        buf[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(err_w, buf.as_ptr().cast(), 8);
        libc::_exit(127)
    }
}

/// The child, between clone and exec. Only async-signal-safe system calls; no
/// allocation, no panics (every slice was prepared by the parent).
fn child_main(
    p: &Prepared<'_>,
    stdin: RawFd,
    in_cgroup: bool,
    sync_r: RawFd,
    sync_w: RawFd,
    err_w: RawFd,
) -> ! {
    let s = p.spec;
    // SAFETY: every call below is a raw, async-signal-safe system call on integers or on
    // memory prepared before the clone that stays valid in this copy of the address space.
    unsafe {
        libc::close(sync_w);
        // 1. Signals: default dispositions, nothing blocked.
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        for sig in 1..65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(err_w, Step::Signals);
        }
        // 2. cgroups (each move into a v2 group waits for an RCU grace period: the
        // clone already did it when it could).
        if let Some(fd) = s.cgroup_dir_procs
            && !in_cgroup
            && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
        {
            fail(err_w, Step::Cgroup);
        }
        for &fd in &s.cgroup_procs {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(err_w, Step::Cgroup);
            }
        }
        // 3. Wait for the parent (id maps).
        let mut b = [0u8; 1];
        loop {
            let n = libc::read(sync_r, b.as_mut_ptr().cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            fail(err_w, Step::Sync);
        }
        libc::close(sync_r);
        if s.namespaces.has(nsflags::NEWUSER) {
            if libc::setgroups(0, std::ptr::null()) != 0 && *libc::__errno_location() != libc::EPERM
            {
                fail(err_w, Step::UserNs);
            }
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                fail(err_w, Step::UserNs);
            }
        }
        // A new mount namespace starts as a copy whose mounts may still propagate to the
        // host (shared mounts under systemd): make it private first, so the vassal's own
        // mounts (a fresh /proc, bind mounts) stay its own.
        if s.namespaces.has(nsflags::NEWNS)
            && libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
        {
            fail(err_w, Step::Mounts);
        }
        // 4. Bounding set.
        if let Some(keep) = s.bounding {
            let keep = keep.with(crate::caps::SETPCAP);
            for c in 0..=p.last_cap {
                if !keep.contains(c)
                    && libc::prctl(libc::PR_CAPBSET_READ, c as libc::c_ulong, 0, 0, 0) == 1
                    && libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) != 0
                {
                    fail(err_w, Step::Bounding);
                }
            }
        }
        // 5. Tyrant credentials (in a new user namespace the maps already did it).
        if let Some(c) = &s.creds
            && !s.namespaces.has(nsflags::NEWUSER)
        {
            if libc::setgroups(c.groups.len(), c.groups.as_ptr()) != 0 {
                fail(err_w, Step::Groups);
            }
            if libc::setresgid(c.gid, c.gid, c.gid) != 0 {
                fail(err_w, Step::Gid);
            }
            if libc::setresuid(c.uid, c.uid, c.uid) != 0 {
                fail(err_w, Step::Uid);
            }
            // Nothing the Emperor held may leak into a tenant's process (an unprivileged
            // Emperor keeps setuid/setgid, which a non-root to non-root switch keeps).
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            );
            let mut h = CapHeader {
                version: 0x2008_0522,
                pid: 0,
            };
            let d = [0u32; 6];
            if libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) != 0 {
                fail(err_w, Step::Uid);
            }
        }
        // 6. No new privileges.
        if s.no_new_privs
            && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0
        {
            fail(err_w, Step::NoNewPrivs);
        }
        // 7. Death signal, after the uid change that would have cleared it.
        if let Some(sig) = s.deathsig {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) != 0 {
                fail(err_w, Step::DeathSignal);
            }
            // In a new pid namespace the parent is outside it: getppid() is 0.
            let expected = if s.namespaces.has(nsflags::NEWPID) {
                0
            } else {
                p.parent
            };
            if libc::getppid() != expected {
                *libc::__errno_location() = libc::ESRCH;
                fail(err_w, Step::ParentGone);
            }
        }
        // 8. Process group, cwd, stdin, descriptors, exec.
        if s.own_group && libc::setpgid(0, 0) != 0 {
            fail(err_w, Step::ProcessGroup);
        }
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            fail(err_w, Step::Chdir);
        }
        if stdin >= 0 {
            if stdin == 0 {
                libc::fcntl(0, libc::F_SETFD, 0);
            } else if libc::dup2(stdin, 0) != 0 {
                fail(err_w, Step::Stdin);
            }
        }
        if libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        ) != 0
        {
            // Old kernel: mark what we know is open.
            for fd in 3..4096 {
                if fd != err_w {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
        }
        for &fd in &s.keep_fds {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                fail(err_w, Step::Descriptors);
            }
        }
        libc::execve(
            p.program.as_ptr(),
            p.argv_ptrs.as_ptr(),
            p.env_ptrs.as_ptr(),
        );
        fail(err_w, Step::Exec)
    }
}
