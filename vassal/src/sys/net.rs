//! Listen-queue figures of a TCP listening socket (Linux `TCP_INFO`).

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
