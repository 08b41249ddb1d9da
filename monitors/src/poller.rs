//! One stable descriptor that is readable while any descriptor added to it is: an epoll
//! instance on Linux, a kqueue (`EVFILT_READ`, level-triggered) on FreeBSD. A
//! helper-backed monitor hands it to the Emperor, so the descriptor the Emperor watches
//! stays the same when the helper (and so its pipe) is replaced.

use std::os::fd::{AsFd, BorrowedFd};

/// The system calls named in errors.
#[cfg(target_os = "linux")]
pub(crate) const NEW_CALL: &str = "epoll_create()";
#[cfg(target_os = "linux")]
pub(crate) const ADD_CALL: &str = "epoll_ctl()";
#[cfg(target_os = "freebsd")]
pub(crate) const NEW_CALL: &str = "kqueue()";
#[cfg(target_os = "freebsd")]
pub(crate) const ADD_CALL: &str = "kevent()";

#[cfg(target_os = "linux")]
pub(crate) struct Poller(nix::sys::epoll::Epoll);

#[cfg(target_os = "linux")]
impl Poller {
    pub fn new() -> Result<Poller, nix::Error> {
        use nix::sys::epoll::{Epoll, EpollCreateFlags};
        Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map(Poller)
    }

    pub fn add(&self, fd: BorrowedFd<'_>) -> Result<(), nix::Error> {
        use nix::sys::epoll::{EpollEvent, EpollFlags};
        self.0.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, 0))
    }

    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), nix::Error> {
        self.0.delete(fd)
    }

    /// Nothing to collect: an epoll descriptor re-checks its members when polled.
    pub fn settle(&self) {}

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.0.as_fd()
    }
}

#[cfg(target_os = "freebsd")]
pub(crate) struct Poller(std::os::fd::OwnedFd);

#[cfg(target_os = "freebsd")]
impl Poller {
    pub fn new() -> Result<Poller, nix::Error> {
        use std::os::fd::FromRawFd;
        // SAFETY: kqueue() takes no argument and returns a new descriptor or -1.
        let raw = nix::errno::Errno::result(unsafe { libc::kqueue() })?;
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let kq = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        nix::fcntl::fcntl(
            &kq,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        Ok(Poller(kq))
    }

    fn change(&self, fd: BorrowedFd<'_>, flags: u16) -> Result<(), nix::Error> {
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero kevent is a valid value.
        let mut kev: libc::kevent = unsafe { std::mem::zeroed() };
        kev.ident = fd.as_raw_fd() as libc::uintptr_t;
        kev.filter = libc::EVFILT_READ;
        kev.flags = flags;
        // SAFETY: one valid change, no event list, no timeout.
        let r = unsafe {
            libc::kevent(
                self.0.as_raw_fd(),
                &kev,
                1,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
            )
        };
        nix::errno::Errno::result(r).map(drop)
    }

    pub fn add(&self, fd: BorrowedFd<'_>) -> Result<(), nix::Error> {
        self.change(fd, libc::EV_ADD)
    }

    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), nix::Error> {
        self.change(fd, libc::EV_DELETE)
    }

    /// A kqueue stays readable until its pending events are collected, even once the
    /// pipe is drained: collect them (without blocking) so it is re-armed only by new data.
    pub fn settle(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero kevent is a valid value.
        let mut buf: [libc::kevent; 4] = unsafe { std::mem::zeroed() };
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: no changes; `buf` has room for 4 events; a zero timeout polls.
        unsafe {
            libc::kevent(
                self.0.as_raw_fd(),
                std::ptr::null(),
                0,
                buf.as_mut_ptr(),
                buf.len() as libc::c_int,
                &zero,
            )
        };
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
