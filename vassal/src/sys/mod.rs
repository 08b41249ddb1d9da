//! The only place with `unsafe`: fork, signal handlers, the shared-memory scoreboard
//! mapping, and three libc calls std has no wrapper for (localtime_r, TCP_INFO,
//! malloc_trim). Each unsafe
//! block says why it is sound. Everything above this module is safe Rust.

pub mod clock;
pub mod dl;
pub mod env;
pub mod fd;
pub mod net;
pub mod shm;
pub mod signals;

use nix::unistd::{ForkResult, Pid};

/// Hands the allocator's free pages back to the kernel (glibc's `malloc_trim`). Before a
/// fork, so a child does not start with them resident (what the master freed after
/// reading its configuration and loading the application would otherwise count in every
/// worker's RSS); in an idle worker, after a burst of connections.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's own free
    // lists, under the allocator's lock.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Which side of a fork this is.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Forks the process, with every signal blocked across the fork.
///
/// The child starts with all signals blocked (its parent's handlers are still installed
/// and would act on the parent's behalf); it must install its own handlers and then call
/// [`signals::unblock_all`]. The parent's mask is restored before this returns.
///
/// The caller must be single-threaded: the instance never starts a thread in the master
/// (its loop is one poll), so the child gets a consistent copy of every lock and of the
/// allocator, and may go on running ordinary Rust code (the prefork model) rather than
/// only async-signal-safe calls before an exec.
pub fn fork() -> nix::Result<Forked> {
    // (Unknown after a chroot without /proc.) An application plugin's runtime may hold
    // threads the application started at import time; the plugin's fork hooks
    // (PyOS_BeforeFork...) make that fork safe for it. The `threaded-logger` thread
    // holds only the log master's state, which a child never touches (logging.rs), and
    // writes with write(2).
    debug_assert!(
        matches!(thread_count(), None | Some(1))
            || crate::app::loaded()
            || crate::logging::threaded(),
        "fork() from a multi-threaded process"
    );
    trim_heap();
    let old = signals::block_all()?;
    // SAFETY: the process is single-threaded (see above), which is the condition under
    // which POSIX allows the child to use any function, not only async-signal-safe ones.
    let r = unsafe { nix::unistd::fork() };
    match r {
        Ok(ForkResult::Parent { child }) => {
            signals::set_mask(&old)?;
            Ok(Forked::Parent(child))
        }
        Ok(ForkResult::Child) => Ok(Forked::Child),
        Err(e) => {
            signals::set_mask(&old)?;
            Err(e)
        }
    }
}

/// The number of threads of this process (from /proc), when it can be read.
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `refork*`: what the process left behind by the extra fork does until the instance
/// (`child`) ends. It holds no descriptor but standard input, output and error (sockets and
/// the Emperor's channel belong to the child), forwards every signal it can catch to the
/// child (so the pid the Emperor and any pidfile written before the fork know keeps
/// working), reaps it, and ends as it ended: same exit code, or killed by the same signal.
/// uWSGI's re-fork parent blocks every signal and always exits 0.
pub fn keep(child: Pid) -> ! {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    // Block first, then look: a SIGCHLD raised in between stays pending (it is blocked,
    // so not discarded even with the default disposition) and `wait` sees it.
    let all = SigSet::all();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None);
    // SAFETY: close_range(2) only closes this process's descriptors above 2; nothing in
    // this process uses them any more (failure on an old kernel leaves them open: harmless).
    #[cfg(target_os = "linux")]
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32)
    };
    // SAFETY: as above.
    #[cfg(target_os = "freebsd")]
    unsafe {
        libc::close_range(3, u32::MAX, 0)
    };
    loop {
        loop {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                // SAFETY: _exit(2) never returns and needs no cleanup of Rust state.
                Ok(WaitStatus::Exited(_, code)) => unsafe { libc::_exit(code) },
                Ok(WaitStatus::Signaled(_, sig, _)) => die_like(sig),
                Err(nix::errno::Errno::EINTR) => continue,
                // SAFETY: as above (the child is gone without a status we could read).
                Err(nix::errno::Errno::ECHILD) => unsafe { libc::_exit(1) },
                _ => break,
            }
        }
        match all.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = kill(child, sig);
            }
        }
    }
}

/// Ends this process with `sig` (default disposition, unblocked), as its child ended.
fn die_like(sig: nix::sys::signal::Signal) -> ! {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, raise, sigprocmask};
    // SAFETY: restoring the default disposition installs no handler.
    let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    let mut only = SigSet::empty();
    only.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = raise(sig);
    // A signal whose default action is not to end the process gets here.
    let code = 128 + sig as i32;
    // SAFETY: _exit(2) never returns and needs no cleanup of Rust state.
    unsafe { libc::_exit(code) }
}
