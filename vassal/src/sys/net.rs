//! Socket calls the `nix` crate does not offer in the shape needed: listen-queue figures
//! of a TCP listening socket (Linux `TCP_INFO`), `TCP_DEFER_ACCEPT`, and a non-blocking
//! read into a buffer's spare capacity (no zeroing of the buffer before every read).

use std::os::fd::{AsRawFd, BorrowedFd};

/// `(queue, max_queue)` of a listening TCP socket: connections waiting to be accepted and
/// the backlog size. `None` for other sockets.
pub fn tcp_listen_queue(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    // SAFETY: an all-zero `tcp_info` is a valid value (plain integers).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the buffer and length point to live locals of the advertised size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // For a listener, tcpi_state is TCP_LISTEN (10); unacked = queue, sacked = backlog.
    (rc == 0 && info.tcpi_state == 10).then_some((info.tcpi_unacked, info.tcpi_sacked))
}

/// Reads what has arrived on `fd` without waiting, appending at most `max - buf.len()`
/// bytes to `buf`. `Ok(None)`: nothing has arrived; `Ok(Some(0))`: end of stream.
pub fn recv_now(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> nix::Result<Option<usize>> {
    let want = max.saturating_sub(buf.len());
    buf.reserve(want);
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is the vector's unused capacity, valid for writes of at least
        // `want` bytes (reserved above); the kernel writes at most `want` bytes into it.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                want,
                libc::MSG_DONTWAIT,
            )
        };
        match nix::Error::result(n) {
            Ok(n) => {
                let n = n as usize;
                // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(Some(n));
            }
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Sets `TCP_DEFER_ACCEPT` on a listening TCP socket: a connection is accepted only once
/// its first bytes arrived, or after `secs`.
pub fn set_defer_accept(fd: BorrowedFd<'_>, secs: i32) -> nix::Result<()> {
    // SAFETY: the value points to a live local int of the advertised size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    nix::Error::result(rc).map(drop)
}
