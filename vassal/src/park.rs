//! The worker's readiness set: one epoll instance per worker process holding its listening
//! sockets and every HTTP connection that waits for bytes (a fresh connection before its
//! first request, a kept-alive one between two requests, a slow client's unfinished head).
//!
//! A waiting connection costs no thread: it is *parked* here with its unread bytes and
//! wakes whichever request thread is free when the client sends more. So one worker
//! thread serves any number of kept-alive clients in turn, and a burst of requests on many
//! connections is served back to back instead of one connection at a time.
//!
//! Connections are registered once, edge-triggered, and parked again with no system call.
//! A connection being served stays in the table, marked *out*: an event for it then (its
//! client sent more while a thread serves it, and another thread got the edge) is noted,
//! and parking it hands it straight back to its thread to serve again, so no edge is lost
//! and no two threads ever serve one connection. Each connection has a token that is
//! never reused, so an event for a connection closed in the meantime (idle timeout) finds
//! nothing and is ignored. Listening sockets are registered level-triggered with `EPOLLEXCLUSIVE`, so a
//! new connection wakes one worker process, not all of them.

use crate::conn::Stream;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::collections::{HashMap, VecDeque};
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
    /// Ready events reported by the kernel and not yet taken by a thread.
    backlog: Mutex<VecDeque<Ready>>,
}

/// A registered connection: waiting in the park, or out with a thread.
enum Slot {
    Parked(Parked),
    /// Being served; `missed`: an event came for it meanwhile.
    Out {
        missed: bool,
    },
}

struct Table {
    slots: HashMap<u64, Slot>,
    next_token: u64,
}

impl Park {
    /// Creates the set and registers the listening sockets (`EPOLLEXCLUSIVE`).
    pub fn new<'l>(
        listeners: impl Iterator<Item = std::os::fd::BorrowedFd<'l>>,
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
                slots: HashMap::new(),
                next_token: FIRST_CONN_TOKEN,
            }),
            backlog: Mutex::new(VecDeque::new()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a connection until its client sends bytes. `Ok(Some)`: an event came for it
    /// while it was out, so it is handed back, to be served again now. On failure (the
    /// kernel refused the registration) the connection is handed back with the error.
    pub fn park(&self, mut conn: Parked) -> Result<Option<Parked>, (Parked, nix::Error)> {
        // The table stays locked across the registration, so the thread that gets the
        // event finds the connection in it.
        let mut t = self.table();
        let token = match conn.token {
            Some(tok) => tok,
            None => {
                let tok = t.next_token;
                let ev = EpollEvent::new(
                    EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET,
                    tok,
                );
                if let Err(e) = self.epoll.add(conn.stream.as_fd(), ev) {
                    return Err((conn, e));
                }
                t.next_token += 1;
                conn.token = Some(tok);
                tok
            }
        };
        if let Some(Slot::Out { missed }) = t.slots.get_mut(&token)
            && *missed
        {
            *missed = false;
            return Ok(Some(conn));
        }
        t.slots.insert(token, Slot::Parked(conn));
        Ok(None)
    }

    /// Takes a parked connection out of the set to serve it (None: already gone, or out
    /// with another thread, which will see the event when it parks it).
    pub fn take(&self, token: u64) -> Option<Parked> {
        let mut t = self.table();
        let slot = t.slots.get_mut(&token)?;
        match std::mem::replace(slot, Slot::Out { missed: true }) {
            Slot::Parked(p) => {
                *slot = Slot::Out { missed: false };
                Some(p)
            }
            Slot::Out { .. } => None,
        }
    }

    /// Forgets a connection taken out and then closed.
    pub fn forget(&self, token: u64) {
        self.table().slots.remove(&token);
    }

    /// The next ready listener or connection: one left from an earlier wake-up, else one
    /// of up to `max` the kernel reports within `timeout` (None: nothing came). The rest
    /// of a wake-up's batch is kept here, not by the thread, so a thread caught in a long
    /// request does not hold back the connections that became ready with it.
    pub fn next(&self, max: usize, timeout: Duration) -> nix::Result<Option<Ready>> {
        if let Some(r) = self.backlog().pop_front() {
            return Ok(Some(r));
        }
        let mut events = [EpollEvent::empty(); 64];
        let max = max.clamp(1, events.len());
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let n = match self.epoll.wait(&mut events[..max], EpollTimeout::from(ms)) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => 0,
            Err(e) => return Err(e),
        };
        let mut ready = events[..n].iter().map(|e| {
            let data = e.data();
            if data < FIRST_CONN_TOKEN {
                Ready::Listener(data as usize)
            } else {
                Ready::Conn(data)
            }
        });
        let first = ready.next();
        if n > 1 {
            self.backlog().extend(ready);
        }
        Ok(first)
    }

    fn backlog(&self) -> std::sync::MutexGuard<'_, VecDeque<Ready>> {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes out every parked connection whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<Parked> {
        self.remove_parked(|c| c.deadline <= now)
    }

    /// Takes out every parked connection (the worker is stopping).
    pub fn drain(&self) -> Vec<Parked> {
        self.remove_parked(|_| true)
    }

    fn remove_parked(&self, pick: impl Fn(&Parked) -> bool) -> Vec<Parked> {
        let mut t = self.table();
        let gone: Vec<u64> = t
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Parked(c) if pick(c)))
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter()
            .filter_map(|k| match t.slots.remove(&k) {
                Some(Slot::Parked(c)) => Some(c),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::OwnedFd;

    fn parked(fd: OwnedFd) -> Parked {
        Parked {
            stream: Stream::new(fd, Duration::from_secs(5)),
            buf: Vec::new(),
            peer: String::new(),
            listener: 0,
            served: 0,
            deadline: Instant::now() + Duration::from_secs(60),
            token: None,
        }
    }

    fn put(park: &Park, p: Parked) {
        match park.park(p) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("handed back"),
            Err((_, e)) => panic!("park: {e}"),
        }
    }

    #[test]
    fn an_edge_taken_while_the_connection_is_out_is_not_lost() {
        let park = Park::new(std::iter::empty()).unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        put(&park, parked(OwnedFd::from(a)));
        (&b).write_all(b"x").unwrap();
        let Some(Ready::Conn(token)) = park.next(8, Duration::from_secs(5)).unwrap() else {
            panic!("the parked connection is ready");
        };
        let conn = park.take(token).expect("taken out to be served");
        // Another thread gets an event for it while it is out: nothing to take.
        assert!(park.take(token).is_none());
        // Parking it again hands it back to be served again; then it parks.
        let conn = match park.park(conn) {
            Ok(Some(c)) => c,
            _ => panic!("the missed event hands it back"),
        };
        put(&park, conn);
        let conn = park.take(token).expect("taken again");
        // Closed after serving: forgotten, later events find nothing.
        drop(conn);
        park.forget(token);
        assert!(park.take(token).is_none());
        assert!(park.drain().is_empty());
    }

    #[test]
    fn expiry_and_drain_leave_connections_out_with_a_thread() {
        let park = Park::new(std::iter::empty()).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut old = parked(OwnedFd::from(a));
        old.deadline = Instant::now();
        put(&park, old);
        put(&park, parked(OwnedFd::from(c)));
        assert_eq!(park.expired(Instant::now()).len(), 1);
        let token = FIRST_CONN_TOKEN + 1;
        let out = park.take(token).expect("the second connection");
        assert!(park.drain().is_empty(), "an out connection is its thread's");
        put(&park, out);
        assert_eq!(park.drain().len(), 1);
    }
}
