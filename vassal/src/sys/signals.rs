//! Signal handling without work in handlers.
//!
//! The master's handlers only write the signal number into a non-blocking self-pipe that
//! its poll loop reads (the classic self-pipe trick), so every reaction runs in normal
//! code. A worker's handlers set a flag (graceful stop on SIGHUP, stats on SIGUSR1) or
//! call `_exit` (SIGINT, SIGTERM, SIGQUIT: uWSGI's "end_me"), both async-signal-safe.
//! Handlers are installed without `SA_RESTART`, so a blocked poll/accept/read returns
//! `EINTR` and the loop looks at the flags at once.

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static GRACEFUL: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);
/// When set (a worker hosting an application plugin), SIGINT/SIGTERM/SIGQUIT write here
/// and a watcher thread ends the worker after the application's atexit hooks.
static END_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Exit status of a worker ended by a signal, uWSGI's `UWSGI_END_CODE`.
pub const END_CODE: i32 = 30;

/// The signals the master reacts to.
pub const MASTER_SIGNALS: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCHLD,
    Signal::SIGTSTP,
];

extern "C" fn to_pipe(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte. A full
        // pipe (EAGAIN) only drops a duplicate wake-up, which is harmless. errno is saved
        // and restored so the interrupted code does not see it change.
        unsafe {
            let saved = *libc::__errno_location();
            libc::write(fd, (&b as *const u8).cast(), 1);
            *libc::__errno_location() = saved;
        }
    }
}

extern "C" fn worker_graceful(_: libc::c_int) {
    GRACEFUL.store(true, Ordering::SeqCst);
}

extern "C" fn worker_usr1(_: libc::c_int) {
    USR1.store(true, Ordering::SeqCst);
}

extern "C" fn worker_wakeup(_: libc::c_int) {
    // Only interrupts a blocking call (SIGTSTP from the master: pause state changed).
}

extern "C" fn worker_end(_: libc::c_int) {
    let fd = END_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte.
        if unsafe { libc::write(fd, (&b as *const u8).cast(), 1) } == 1 {
            return;
        }
    }
    // SAFETY: _exit(2) is async-signal-safe and never returns.
    unsafe { libc::_exit(END_CODE) }
}

/// Routes this worker's SIGINT/SIGTERM/SIGQUIT to the returned descriptor (one byte per
/// signal) instead of ending at once: the caller's watcher ends the worker with
/// [`end_now`] after running the application's atexit hooks.
pub fn end_via_pipe() -> nix::Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    END_PIPE.store(w.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(w); // lives as long as the process: the handler writes to it
    Ok(r)
}

/// Ends the process at once with uWSGI's `UWSGI_END_CODE`.
pub fn end_now() -> ! {
    // SAFETY: _exit(2) never returns and needs no cleanup of Rust state.
    unsafe { libc::_exit(END_CODE) }
}

fn install(sig: Signal, handler: SigHandler) -> nix::Result<()> {
    let act = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handlers above only touch atomics and call async-signal-safe functions.
    unsafe { sigaction(sig, &act) }.map(drop)
}

/// Installs the master's handlers; returns the read end of the self-pipe to poll. Each
/// readable byte is the number of a signal received.
pub fn install_master() -> nix::Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
    let old = PIPE_WRITE.swap(w.as_raw_fd(), Ordering::SeqCst);
    debug_assert_eq!(old, -1, "master signal handlers installed twice");
    std::mem::forget(w); // lives as long as the process: the handler writes to it
    for s in MASTER_SIGNALS {
        install(s, SigHandler::Handler(to_pipe))?;
    }
    install(Signal::SIGPIPE, SigHandler::SigIgn)?;
    Ok(r)
}

/// Installs a worker's handlers (right after fork, replacing the master's), and closes
/// the worker's copy of the self-pipe.
pub fn install_worker() -> nix::Result<()> {
    let fd = PIPE_WRITE.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        let _ = nix::unistd::close(fd);
    }
    install(Signal::SIGHUP, SigHandler::Handler(worker_graceful))?;
    install(Signal::SIGUSR1, SigHandler::Handler(worker_usr1))?;
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGQUIT] {
        install(s, SigHandler::Handler(worker_end))?;
    }
    install(Signal::SIGTSTP, SigHandler::Handler(worker_wakeup))?;
    install(Signal::SIGCHLD, SigHandler::SigDfl)?;
    // SIGUSR2 sent to every process (`pkill -USR2 imperium`) must not kill a worker: the
    // master reports what each worker does (vassal helper).
    install(Signal::SIGUSR2, SigHandler::SigIgn)?;
    install(Signal::SIGPIPE, SigHandler::SigIgn)?;
    unblock_all()
}

/// Blocks every signal; returns the previous mask.
pub fn block_all() -> nix::Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Restores a signal mask.
pub fn set_mask(mask: &SigSet) -> nix::Result<()> {
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(mask), None)
}

/// Unblocks every signal (a forked child, once its handlers are in place).
pub fn unblock_all() -> nix::Result<()> {
    set_mask(&SigSet::empty())
}

/// Installs the handlers of a process without a master: it is its own (only) worker.
pub fn install_single() -> nix::Result<()> {
    install_worker()
}

/// True once a worker received SIGHUP (finish the current request, then exit).
pub fn graceful_requested() -> bool {
    GRACEFUL.load(Ordering::SeqCst)
}

/// Asks this worker to stop gracefully (max-requests reached, and the like).
pub fn request_graceful() {
    GRACEFUL.store(true, Ordering::SeqCst);
}

/// True (once) when SIGUSR1 arrived since the last call.
pub fn take_usr1() -> bool {
    USR1.swap(false, Ordering::SeqCst)
}
