//! Clients of the stats and command sockets, served without blocking: read a request if
//! one is expected, write the answer as the socket accepts it, close. A client that takes
//! longer than [`CLIENT_DEADLINE`] is dropped.

use crate::emperor::Emperor;
use crate::reactor::{Kind, token};
use crate::timers::TimerKey;
use nix::errno::Errno;
use nix::sys::epoll::EpollFlags;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub const CLIENT_DEADLINE: Duration = Duration::from_secs(10);
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// Stats with `stats-http`: read the request first.
    StatsHttp,
    /// Command socket: read one line.
    Command,
    /// Only writing an answer.
    Answer,
}

pub struct Conn {
    pub fd: OwnedFd,
    pub kind: ConnKind,
    pub inbuf: Vec<u8>,
    pub out: Vec<u8>,
    pub sent: usize,
}

impl Emperor {
    pub fn accept_client(&mut self, command: bool) {
        for _ in 0..64 {
            let l = if command {
                self.command.as_ref()
            } else {
                self.stats.as_ref()
            };
            let Some(l) = l else { return };
            let fd = match l.accept() {
                Ok(fd) => fd,
                Err(_) => return,
            };
            let _ = nix::fcntl::fcntl(
                &fd,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            let kind = if command {
                ConnKind::Command
            } else if self.settings.stats_http {
                ConnKind::StatsHttp
            } else {
                ConnKind::Answer
            };
            let id = self.next_conn;
            self.next_conn += 1;
            let mut c = Conn {
                fd,
                kind,
                inbuf: Vec::new(),
                out: Vec::new(),
                sent: 0,
            };
            if kind == ConnKind::Answer {
                c.out = self.stats_json();
            }
            let write = kind == ConnKind::Answer;
            if self
                .reactor
                .add_rw(c.fd.as_fd(), token(Kind::Conn, id), write)
                .is_err()
            {
                continue;
            }
            self.conns.insert(id, c);
            self.timers
                .set(TimerKey::Conn(id), Instant::now() + CLIENT_DEADLINE);
            if write {
                self.on_conn(id, EpollFlags::EPOLLOUT);
            }
        }
    }

    pub fn on_conn(&mut self, id: u64, _flags: EpollFlags) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.kind != ConnKind::Answer {
            let mut buf = [0u8; 4096];
            let mut eof = false;
            loop {
                match nix::unistd::read(&c.fd, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        c.inbuf.extend_from_slice(&buf[..n]);
                        if c.inbuf.len() > MAX_REQUEST {
                            return self.close_conn(id);
                        }
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(_) => return self.close_conn(id),
                }
            }
            let complete = match c.kind {
                ConnKind::StatsHttp => {
                    eof || c.inbuf.windows(4).any(|w| w == b"\r\n\r\n")
                        || c.inbuf.windows(2).any(|w| w == b"\n\n")
                }
                _ => eof || c.inbuf.contains(&b'\n'),
            };
            if !complete {
                return;
            }
            let kind = c.kind;
            let request = std::mem::take(&mut c.inbuf);
            let out = match kind {
                ConnKind::StatsHttp => {
                    let body = self.stats_json();
                    let mut o = format!(
                        "HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    o.extend(body);
                    o
                }
                _ => {
                    let line = String::from_utf8_lossy(&request);
                    let line = line.lines().next().unwrap_or("").to_owned();
                    self.command_reply(&line)
                }
            };
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            c.out = out;
            c.kind = ConnKind::Answer;
            let _ = self
                .reactor
                .modify_rw(c.fd.as_fd(), token(Kind::Conn, id), true);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        while c.sent < c.out.len() {
            match nix::sys::socket::send(
                c.fd.as_raw_fd(),
                &c.out[c.sent..],
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => c.sent += n,
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        self.close_conn(id);
    }

    pub fn close_conn(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            self.reactor.delete(c.fd.as_fd());
            self.timers.cancel(TimerKey::Conn(id));
        }
    }
}
