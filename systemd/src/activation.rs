//! Socket activation: descriptors passed by the service manager start at 3; `LISTEN_PID`
//! must be this process, `LISTEN_FDS` counts them and `LISTEN_FDNAMES` names them
//! (colon-separated). The variables are removed once read, so children never see them.

use std::os::fd::{FromRawFd, OwnedFd};

/// First passed descriptor.
pub const SD_LISTEN_FDS_START: i32 = 3;

/// One passed descriptor and its name (`FileDescriptorName=`, or "unknown").
#[derive(Debug)]
pub struct ListenFd {
    pub fd: OwnedFd,
    pub name: String,
}

/// Takes the descriptors systemd passed to this process (empty when none). Call once,
/// early, before any other descriptor is opened or closed.
pub fn listen_fds() -> Vec<ListenFd> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|s| s.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    // SAFETY: removing variables is sound here: the Emperor is single-threaded when this
    // runs (before its loop starts), so no other thread reads the environment.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in 0..count.min(1024) {
        let raw = SD_LISTEN_FDS_START + i;
        if nix::fcntl::fcntl(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) },
            nix::fcntl::FcntlArg::F_GETFD,
        )
        .is_err()
        {
            continue;
        }
        // SAFETY: systemd hands these descriptors to this process, and nothing else in
        // it owns them: this is the one place they are adopted.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        let name = names
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned());
        out.push(ListenFd { fd, name });
    }
    out
}
