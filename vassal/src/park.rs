//! The worker's readiness set: one epoll instance per worker process holding its listening
//! sockets and every HTTP connection that waits for bytes (a fresh connection before its
//! first request, a kept-alive one between two requests, a slow client's unfinished head).
//!
//! A waiting connection costs no thread: it is *parked* here with its unread bytes and
//! wakes whichever request thread is free when the client sends more. So one worker
//! thread serves any number of kept-alive clients in turn, and a burst of requests on many
//! connections is served back to back instead of one connection at a time.
//!
//! With several request threads, connections are registered one-shot (`EPOLLONESHOT`):
//! an event goes to exactly one thread, which takes the connection out of the table before
//! serving it, and parking re-arms it. A worker with one thread registers each connection
//! once, edge-triggered, and parks it again with no system call: the thread that would
//! receive an event for a connection it is serving is that same thread, which looks at
//! the event only after the connection is back in the table. Each parked
//! connection has a token that is never reused, so an event for a connection closed in the
//! meantime (idle timeout) finds nothing and is ignored. Listening sockets are registered
//! with `EPOLLEXCLUSIVE`, so a new connection wakes one worker process, not all of them.

use crate::conn::Stream;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first token of a connection; lower tokens are listener positions.
const FIRST_CONN_TOKEN: u64 = 1 << 32;

/// A connection waiting for bytes, with what it already received.
pub struct Parked {
    pub stream: Stream,
    pub buf: Vec<u8>,
    pub peer: String,
    /// Position of its listening socket in the worker's listener list.
    pub listener: usize,
    /// Requests already served on it.
    pub served: u64,
    /// When it is given up: the idle timeout (`socket-timeout`) with no bytes buffered,
    /// the head timeout once a request head has begun.
    pub deadline: Instant,
    /// Its token, once it has been registered (kept across parkings).
    pub token: Option<u64>,
}

impl Parked {
    /// True when part of a request head has arrived (a timeout is then the client's fault
    /// and is logged).
    pub fn mid_request(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// What woke a request thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// A listening socket (its position) has connections to accept.
    Listener(usize),
    /// A parked connection (its token) has bytes, or was closed by its client.
    Conn(u64),
}

/// The worker's epoll instance and its parked connections.
pub struct Park {
    epoll: Epoll,
    conns: Mutex<Table>,
    /// One request thread: edge-triggered registration, made once per connection.
    edge: bool,
}

struct Table {
    parked: HashMap<u64, Parked>,
    next_token: u64,
}

impl Park {
    /// Creates the set and registers the listening sockets (`EPOLLEXCLUSIVE`); `one_thread`:
    /// only one thread will wait on it.
    pub fn new<'l>(
        listeners: impl Iterator<Item = std::os::fd::BorrowedFd<'l>>,
        one_thread: bool,
    ) -> nix::Result<Park> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        for (i, fd) in listeners.enumerate() {
            let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, i as u64);
            match epoll.add(fd, ev) {
                // Kernels before 4.5 have no EPOLLEXCLUSIVE: every worker wakes, and all
                // but one find nothing to accept.
                Err(nix::Error::EINVAL) => {
                    epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))?
                }
                r => r?,
            }
        }
        Ok(Park {
            epoll,
            conns: Mutex::new(Table {
                parked: HashMap::new(),
                next_token: FIRST_CONN_TOKEN,
            }),
            edge: one_thread,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a connection until its client sends bytes. On failure (the kernel refused the
    /// registration) the connection is handed back.
    pub fn park(&self, mut conn: Parked) -> Result<(), (Parked, nix::Error)> {
        // The table stays locked across the registration, so the thread that gets the
        // event finds the connection in it.
        let mut t = self.table();
        let (token, fresh) = match conn.token {
            Some(tok) => (tok, false),
            None => {
                let tok = t.next_token;
                t.next_token += 1;
                (tok, true)
            }
        };
        let mode = match self.edge {
            true => EpollFlags::EPOLLET,
            false => EpollFlags::EPOLLONESHOT,
        };
        let mut ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | mode, token);
        let registered = if fresh {
            self.epoll.add(conn.stream.as_fd(), ev)
        } else if self.edge {
            Ok(())
        } else {
            self.epoll.modify(conn.stream.as_fd(), &mut ev)
        };
        match registered {
            Ok(()) => {
                conn.token = Some(token);
                t.parked.insert(token, conn);
                Ok(())
            }
            Err(e) => Err((conn, e)),
        }
    }

    /// Takes a parked connection out of the set to serve it (None: already gone).
    pub fn take(&self, token: u64) -> Option<Parked> {
        self.table().parked.remove(&token)
    }

    /// Waits for readiness, at most `timeout`; fills `out` (cleared first).
    pub fn wait(&self, out: &mut Vec<Ready>, max: usize, timeout: Duration) -> nix::Result<()> {
        out.clear();
        let mut events = [EpollEvent::empty(); 64];
        let max = max.clamp(1, events.len());
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let n = match self.epoll.wait(&mut events[..max], EpollTimeout::from(ms)) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => 0,
            Err(e) => return Err(e),
        };
        out.extend(events[..n].iter().map(|e| {
            let data = e.data();
            if data < FIRST_CONN_TOKEN {
                Ready::Listener(data as usize)
            } else {
                Ready::Conn(data)
            }
        }));
        Ok(())
    }

    /// Takes out every parked connection whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<Parked> {
        let mut t = self.table();
        let gone: Vec<u64> = t
            .parked
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter()
            .filter_map(|k| t.parked.remove(&k))
            .collect()
    }

    /// Takes out every parked connection (the worker is stopping).
    pub fn drain(&self) -> Vec<Parked> {
        self.table().parked.drain().map(|(_, c)| c).collect()
    }
}
