//! The stats server (`stats`, `stats-http`, `stats-minified`): on each connection the
//! master writes one JSON document with uWSGI 2.0's keys, in uWSGI's order, and closes, so
//! uwsgitop and existing dashboards read it unchanged.

use crate::addr::{self, Addr};
use crate::error::VassalError;
use crate::scoreboard::Scoreboard;
use crate::sockets::Listener;
use crate::sys;
use crate::vlog;
use nix::sys::socket::{Backlog, SockFlag, accept4, listen, setsockopt, sockopt};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The bound stats socket.
pub struct StatsServer {
    pub name: String,
    pub fd: OwnedFd,
    pub http: bool,
    pub minified: bool,
    /// A filesystem socket to remove with `vacuum`.
    pub unix_path: Option<(PathBuf, u64)>,
    /// `stats-http` clients whose request has not arrived yet.
    pending: Vec<(OwnedFd, Instant)>,
}

impl StatsServer {
    /// Binds the stats socket (`127.0.0.1:1717`, `:5050`, a UNIX path or `@name`).
    pub fn bind(name: &str, http: bool, minified: bool) -> Result<StatsServer, VassalError> {
        let err =
            |what: &str, e: nix::Error| VassalError::option("stats", name, &format!("{what}: {e}"));
        let parsed =
            addr::parse(name, false).map_err(|e| VassalError::option("stats", name, &e))?;
        if let Addr::Fd(_) = parsed {
            return Err(VassalError::option(
                "stats",
                name,
                "fd:// is not supported for the stats server",
            ));
        }
        let fd = crate::sockets::bind_stream(&parsed, true, false).map_err(|(w, e)| err(w, e))?;
        let (display, unix_path) = match parsed {
            Addr::Tcp { auto_port, .. } => (
                crate::sockets::tcp_bound_name(fd.as_fd(), name, auto_port)
                    .unwrap_or_else(|| name.to_owned()),
                None,
            ),
            Addr::Unix(p) => {
                let ino = std::fs::metadata(&p).map(|m| m.ino()).unwrap_or(0);
                (name.to_owned(), Some((p, ino)))
            }
            _ => (name.to_owned(), None),
        };
        listen(&fd, Backlog::new(100).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| err("listen()", e))?;
        vlog!(
            "*** Stats server enabled on {display} fd: {} ***",
            fd.as_raw_fd()
        );
        Ok(StatsServer {
            name: display,
            fd,
            http,
            minified,
            unix_path,
            pending: Vec::new(),
        })
    }

    /// In a forked worker: closes the listener and the pending clients (a worker holding
    /// a client's socket would keep it open after the master answered).
    pub fn close_in_child(&self) {
        let _ = nix::unistd::close(self.fd.as_raw_fd());
        for (fd, _) in &self.pending {
            let _ = nix::unistd::close(fd.as_raw_fd());
        }
    }

    /// Descriptors to poll for reading: the listener, then pending `stats-http` clients.
    pub fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.fd.as_fd())
            .chain(self.pending.iter().map(|(f, _)| f.as_fd()))
            .collect()
    }

    /// Serves what is ready. `ready[i]` says whether `poll_fds()[i]` was readable.
    pub fn serve(&mut self, ready: &[bool], doc: &dyn Fn() -> Value, timeout: Duration) {
        // Pending HTTP clients first (indices shift once new ones are added).
        let mut i = 0;
        let mut still = Vec::new();
        for (fd, since) in std::mem::take(&mut self.pending) {
            i += 1;
            if ready.get(i).copied().unwrap_or(false) {
                let mut buf = [0u8; 4096];
                let _ = nix::unistd::read(&fd, &mut buf);
                self.answer(fd, doc);
            } else if since.elapsed() < timeout {
                still.push((fd, since));
            }
        }
        self.pending = still;
        if ready.first().copied().unwrap_or(false) {
            while let Ok(raw) = accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                let fd = sys::fd::take(raw);
                if self.http {
                    self.pending.push((fd, Instant::now()));
                } else {
                    self.answer(fd, doc);
                }
            }
        }
    }

    fn answer(&self, fd: OwnedFd, doc: &dyn Fn() -> Value) {
        let mut out = Vec::new();
        if self.http {
            out.extend_from_slice(b"HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\n\r\n");
        }
        out.extend_from_slice(&render(&doc(), self.minified));
        let _ = setsockopt(
            &fd,
            sockopt::SendTimeout,
            &nix::sys::time::TimeVal::new(1, 0),
        );
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(&out);
    }
}

/// The JSON text: uWSGI's tab-indented layout, or one line with `stats-minified`.
pub fn render(v: &Value, minified: bool) -> Vec<u8> {
    if minified {
        return serde_json::to_vec(v).unwrap_or_default();
    }
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    out
}

/// Resident and virtual memory of a process, in bytes (0 when unknown).
fn memory(pid: i32) -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return (0, 0);
    };
    let mut it = s.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
    let (vsz, rss) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (rss * 4096, vsz * 4096)
}

/// What the stats document is built from.
pub struct Sources<'a> {
    pub listeners: &'a [Listener],
    pub scoreboard: Scoreboard,
}

/// The stats document (uWSGI 2.0's keys and order).
pub fn document(src: &Sources<'_>) -> Value {
    let mut sockets = Vec::new();
    let mut backlog = 0u64;
    for l in src.listeners {
        let (queue, max_queue) = sys::net::tcp_listen_queue(l.borrow()).unwrap_or((0, 0));
        backlog = backlog.max(u64::from(queue));
        sockets.push(json!({
            "name": l.name,
            "proto": l.protocol.name(),
            "queue": queue,
            "max_queue": max_queue,
            "shared": 0,
            "can_offload": 0,
        }));
    }
    let mut workers = Vec::new();
    for id in 1..=src.scoreboard.workers() {
        let s = src.scoreboard.slot(id);
        let pid = s.pid.load(Relaxed);
        let in_request = s.in_request.load(Relaxed);
        let (rss, vsz) = if pid > 0 { memory(pid) } else { (0, 0) };
        let status = if pid <= 0 {
            "cheap"
        } else if in_request > 0 {
            "busy"
        } else if s.suspended.load(Relaxed) == 1 {
            "pause"
        } else {
            "idle"
        };
        // One entry per request thread (core); the error counters are kept per worker and
        // shown on core 0.
        let cores: Vec<Value> = (0..src.scoreboard.cores())
            .map(|c| {
                let core = src.scoreboard.core(id, c);
                let busy = core.in_request.load(Relaxed).min(1);
                let mut req_info = Map::new();
                if busy == 1 {
                    req_info.insert(
                        "request_start".into(),
                        json!(core.request_start.load(Relaxed) / 1_000_000),
                    );
                }
                let errors = |v: u64| if c == 0 { v } else { 0 };
                json!({
                    "id": c,
                    "requests": core.requests.load(Relaxed),
                    "static_requests": 0,
                    "routed_requests": 0,
                    "offloaded_requests": 0,
                    "write_errors": errors(s.write_errors.load(Relaxed)),
                    "read_errors": errors(s.read_errors.load(Relaxed)),
                    "in_request": busy,
                    "vars": [],
                    "req_info": req_info,
                })
            })
            .collect();
        workers.push(json!({
            "id": id,
            "pid": pid,
            "accepting": s.accepting.load(Relaxed),
            "requests": s.requests.load(Relaxed),
            "delta_requests": s.delta_requests.load(Relaxed),
            "exceptions": s.exceptions.load(Relaxed),
            "harakiri_count": s.harakiri_count.load(Relaxed),
            "signals": 0,
            "signal_queue": 0,
            "status": status,
            "rss": rss,
            "vsz": vsz,
            "running_time": s.running_time.load(Relaxed),
            "last_spawn": s.last_spawn.load(Relaxed),
            "respawn_count": s.respawn_count.load(Relaxed),
            "tx": s.tx.load(Relaxed),
            "avg_rt": s.avg_rt.load(Relaxed),
            "apps": [],
            "cores": cores,
        }));
    }
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "version": imperium_config::VERSION,
        "listen_queue": backlog,
        "listen_queue_errors": 0,
        "signal_queue": 0,
        "load": backlog,
        "pid": std::process::id(),
        "uid": nix::unistd::getuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "cwd": cwd,
        "locks": [],
        "sockets": sockets,
        "workers": workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_uwsgi_keys_in_order() {
        let sb = Scoreboard::private(2);
        let doc = document(&Sources {
            listeners: &[],
            scoreboard: sb,
        });
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "version",
                "listen_queue",
                "listen_queue_errors",
                "signal_queue",
                "load",
                "pid",
                "uid",
                "gid",
                "cwd",
                "locks",
                "sockets",
                "workers"
            ]
        );
        let w = &doc["workers"][1];
        assert_eq!(w["id"], 2);
        assert_eq!(w["cores"][0]["in_request"], 0);
        let text = render(&doc, false);
        assert!(text.starts_with(b"{\n\t\"version\""));
        assert!(!render(&doc, true).contains(&b'\n'));
    }
}
