//! Descriptors the instance did not open itself: fd 0 and the listening sockets a
//! previous image of the master left open across exec.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Borrows a descriptor that stays open for the whole life of the process (fd 0, or an
/// inherited one that has not been taken yet).
pub fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: callers only pass descriptors that nothing in the process closes while
    // the borrow is used (fd 0 is never closed; inherited ones are taken right after).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Takes ownership of an inherited descriptor (closed when the result drops).
pub fn take(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was inherited across exec and no other object in this process owns
    // it: the inheritance list is read once and each entry taken at most once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A close-on-exec duplicate of `fd` (numbered 3 or above).
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let n = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    Ok(take(n))
}
