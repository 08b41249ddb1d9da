//! The only place with `unsafe`: fork, signal handlers, the shared-memory scoreboard
//! mapping, and two libc calls std has no wrapper for (localtime_r, TCP_INFO). Each unsafe
//! block says why it is sound. Everything above this module is safe Rust.

pub mod clock;
pub mod dl;
pub mod env;
pub mod fd;
pub mod net;
pub mod shm;
pub mod signals;

use nix::unistd::{ForkResult, Pid};

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
