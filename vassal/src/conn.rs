//! One accepted connection, served by a worker: read a request (a uwsgi packet, or HTTP
//! heads with keep-alive and pipelining), answer it, log it, and for HTTP go on with the
//! next request on the same connection. Bad input is logged and the connection closed;
//! nothing here can take the worker down.
//!
//! An HTTP connection never blocks its thread while it waits for a request: when no
//! complete head is buffered and the socket has nothing to read, the connection is handed
//! back to be parked in the worker's epoll set (see `park`) and resumed by whichever
//! thread is free when bytes arrive. Only a stopping worker waits on a connection, to
//! give a client that was accepted its first request.
//!
//! With an application plugin loaded (see `app`), the request is handed to it through an
//! [`Exchange`], which frames the response; without one, a request is answered as uWSGI
//! answers it without an app: its body is read and dropped, and a 500 goes back.

use crate::app::{self, exchange::Exchange};
use crate::park::Parked;
use crate::proto::chunked::ChunkedDecoder;
use crate::proto::http::{self, BodyFraming, ConnInfo};
use crate::proto::{Vars, response, uwsgi};
use crate::settings::Protocol;
use crate::sockets::Listener;
use crate::sys::clock;
use crate::sys::signals;
use crate::vlog;
use crate::worker::WorkerCtx;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{setsockopt, sockopt};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// The most request-body bytes read and dropped when no application wants them; beyond
/// that the connection is closed after the response.
pub const MAX_DRAIN: u64 = 64 << 20;

/// A blocking socket with read and write timeouts (`socket-timeout`).
pub struct Stream {
    fd: OwnedFd,
}

impl Stream {
    pub fn new(fd: OwnedFd, timeout: Duration) -> Stream {
        let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as i64, 0);
        let _ = setsockopt(&fd, sockopt::ReceiveTimeout, &tv);
        let _ = setsockopt(&fd, sockopt::SendTimeout, &tv);
        Stream { fd }
    }

    /// The socket descriptor.
    pub(crate) fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match nix::unistd::read(&self.fd, buf) {
                Ok(n) => return Ok(n),
                // A graceful stop lets the current request finish: keep reading.
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => return Err(io::ErrorKind::TimedOut.into()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match nix::unistd::write(&self.fd, buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => return Err(io::ErrorKind::TimedOut.into()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes `parts` in order, gathered into as few `writev` calls as the socket allows
    /// (a chunk's size line, its bytes and its CRLF in one system call).
    pub(crate) fn write_all_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        const MAX: usize = 8;
        if parts.len() > MAX {
            return parts.iter().try_for_each(|p| self.write_all(p));
        }
        let mut left: [&[u8]; MAX] = [&[]; MAX];
        left[..parts.len()].copy_from_slice(parts);
        let (mut start, end) = (0, parts.len());
        loop {
            while start < end && left[start].is_empty() {
                start += 1;
            }
            if start == end {
                return Ok(());
            }
            let iov: [io::IoSlice<'_>; MAX] = std::array::from_fn(|i| io::IoSlice::new(left[i]));
            match nix::sys::uio::writev(&self.fd, &iov[start..end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    for part in &mut left[start..end] {
                        let took = n.min(part.len());
                        *part = &part[took..];
                        n -= took;
                        if n == 0 {
                            break;
                        }
                    }
                }
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => return Err(io::ErrorKind::TimedOut.into()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes what the socket takes at once: the number of bytes written (0 when its
    /// buffer is full).
    pub(crate) fn write_nowait(&mut self, buf: &[u8]) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, send};
        let mut done = 0;
        while done < buf.len() {
            match send(
                self.fd.as_raw_fd(),
                &buf[done..],
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    /// Waits until the socket is readable or `end` passes; false on timeout. Only a
    /// stopping worker waits like this (a running one parks the connection instead).
    fn wait_readable(&self, end: Instant) -> bool {
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(left.as_millis() as i32).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(n) if n > 0 => return true,
                _ => continue,
            }
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The longest a client may take to send a request head (or uwsgi packet).
fn head_timeout(ctx: &WorkerCtx<'_>) -> Duration {
    Duration::from_secs(ctx.settings.socket_timeout * 2)
}

/// Logs a client that took too long to send a request head (HTTP) or packet (uwsgi).
fn timed_out(ctx: &WorkerCtx<'_>, protocol: Protocol) {
    let limit = head_timeout(ctx).as_secs();
    match protocol {
        Protocol::Uwsgi => vlog!(
            "uwsgi_proto_uwsgi_parser(): the client took more than {limit}s to send its request"
        ),
        _ => vlog!(
            "uwsgi_proto_http_parser(): the client took more than {limit}s to send its request head"
        ),
    }
}

/// What a handled request produced, for the request log and the scoreboard.
struct Served {
    status: u16,
    /// The app that served it (-1: none).
    app: i32,
    /// `uwsgi.set_logvar` values.
    logvars: Vec<(String, String)>,
    headers: usize,
    head_bytes: usize,
    body_bytes: u64,
}

impl Served {
    /// A complete response the instance wrote itself.
    fn canned(status: u16, response: &[u8]) -> Served {
        let (headers, head_bytes) = response::head_stats(response);
        Served {
            status,
            app: -1,
            logvars: Vec::new(),
            headers,
            head_bytes,
            body_bytes: (response.len() - head_bytes) as u64,
        }
    }
}

/// A connection and the bytes received on it but not consumed yet.
pub struct Conn<'a> {
    ctx: &'a WorkerCtx<'a>,
    /// The request thread (core) serving it.
    core: usize,
    listener: &'a Listener,
    /// Position of `listener` in the worker's list (kept when the connection is parked).
    listener_pos: usize,
    stream: Stream,
    buf: Vec<u8>,
    peer: String,
    /// Requests served on this connection.
    served: u64,
    /// When the request head being received must be complete (set at its first bytes).
    head_deadline: Option<Instant>,
    /// Its token in the worker's park, once parked.
    token: Option<u64>,
}

enum Fill {
    Data,
    Eof,
    Full,
    /// Nothing has arrived yet (non-blocking reads only).
    Later,
}

/// What becomes of an HTTP connection after serving what it sent.
enum Wait {
    /// It waits for more bytes: park it.
    More,
    /// It is finished (closed when dropped).
    Done,
}

impl<'a> Conn<'a> {
    /// A connection just accepted on `ctx.listeners[listener_pos]`.
    pub fn new(ctx: &'a WorkerCtx<'a>, core: usize, listener_pos: usize, fd: OwnedFd) -> Conn<'a> {
        let listener = &ctx.listeners[listener_pos];
        // Only HTTP needs the peer (REMOTE_ADDR); a uwsgi packet carries its own.
        let peer = match listener.protocol {
            Protocol::Http => crate::sockets::peer_addr(fd.as_fd()),
            _ => String::new(),
        };
        let stream = Stream::new(fd, Duration::from_secs(ctx.settings.socket_timeout));
        Conn {
            ctx,
            core,
            listener,
            listener_pos,
            stream,
            buf: Vec::with_capacity(ctx.settings.buffer_size + 4),
            peer,
            served: 0,
            head_deadline: None,
            token: None,
        }
    }

    /// A parked connection whose client sent bytes (or went away).
    pub fn resume(ctx: &'a WorkerCtx<'a>, core: usize, p: Parked) -> Conn<'a> {
        let token = p.token;
        let head_deadline = p.mid_request().then_some(p.deadline);
        Conn {
            ctx,
            core,
            listener: &ctx.listeners[p.listener],
            listener_pos: p.listener,
            stream: p.stream,
            buf: p.buf,
            peer: p.peer,
            served: p.served,
            head_deadline,
            token,
        }
    }

    /// Its token in the worker's park (None until first parked).
    pub fn token(&self) -> Option<u64> {
        self.token
    }

    /// Gives up a parked connection whose deadline passed, saying so when the client
    /// stopped in the middle of a request head.
    pub fn expire(ctx: &WorkerCtx<'_>, p: Parked) {
        if p.mid_request() {
            timed_out(ctx, ctx.listeners[p.listener].protocol);
        }
    }

    /// This connection as it waits in the park.
    fn into_parked(self) -> Parked {
        let deadline = self.head_deadline.unwrap_or_else(|| {
            Instant::now() + Duration::from_secs(self.ctx.settings.socket_timeout)
        });
        Parked {
            stream: self.stream,
            buf: self.buf,
            peer: self.peer,
            listener: self.listener_pos,
            served: self.served,
            deadline,
            token: self.token,
        }
    }

    /// Reads what has arrived, keeping at most `max` buffered, without waiting.
    fn fill_now(&mut self, max: usize) -> io::Result<Fill> {
        if self.buf.len() >= max {
            return Ok(Fill::Full);
        }
        match crate::sys::net::recv_now(self.stream.as_fd(), &mut self.buf, max)? {
            None => Ok(Fill::Later),
            Some(0) => Ok(Fill::Eof),
            Some(_) => Ok(Fill::Data),
        }
    }

    /// Reads more bytes, keeping at most `max` buffered.
    fn fill(&mut self, max: usize) -> io::Result<Fill> {
        if self.buf.len() >= max {
            return Ok(Fill::Full);
        }
        let start = self.buf.len();
        self.buf.resize(max, 0);
        let r = self.stream.read(&mut self.buf[start..]);
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(start + n);
        match r? {
            0 => Ok(Fill::Eof),
            _ => Ok(Fill::Data),
        }
    }

    /// Serves what the client sent; returns the connection when it must be parked to
    /// wait for more.
    pub fn serve(mut self) -> Option<Parked> {
        match self.listener.protocol {
            Protocol::Uwsgi => match self.serve_uwsgi() {
                Wait::More => Some(self.into_parked()),
                Wait::Done => None,
            },
            Protocol::Http => match self.serve_http() {
                Wait::More => Some(self.into_parked()),
                Wait::Done => None,
            },
            Protocol::Raw => {
                self.serve_raw();
                None
            }
        }
    }

    /// A raw-socket connection: no parsing, the application's raw handler gets the
    /// descriptor (uWSGI's `python-raw`); it counts as one request (harakiri, stats).
    fn serve_raw(&mut self) {
        let ctx = self.ctx;
        let start = clock::now_micros();
        ctx.scoreboard
            .begin_request(ctx.id, self.core, start, ctx.settings.harakiri, b"RAW", b"");
        if !app::raw(self.stream.raw(), self.core) {
            vlog!(
                "-- no raw handler (python-raw) for a connection on {} --",
                self.listener.name
            );
        }
        ctx.scoreboard
            .end_request(ctx.id, self.core, clock::now_micros(), 0);
        ctx.after_request();
    }

    fn serve_uwsgi(&mut self) -> Wait {
        let bs = self.ctx.settings.buffer_size;
        let header = loop {
            match uwsgi::progress(&self.buf, bs) {
                uwsgi::Progress::TooLarge(n) => {
                    vlog!("invalid request block size: {n} (max {bs})...skip");
                    return Wait::Done;
                }
                uwsgi::Progress::Complete(h) => break h,
                uwsgi::Progress::Incomplete => {}
            }
            match self.gather(bs + uwsgi::HEADER_LEN) {
                Err(wait) => return wait,
                Ok(Ok(Fill::Data | Fill::Later)) => {}
                Ok(Ok(Fill::Eof | Fill::Full)) => {
                    if !self.buf.is_empty() {
                        vlog!(
                            "uwsgi_proto_uwsgi_parser(): client closed the connection in the middle of a packet"
                        );
                    }
                    return Wait::Done;
                }
                Ok(Err(e)) => {
                    if !self.buf.is_empty() {
                        vlog!("uwsgi_proto_uwsgi_parser(): {e}");
                    }
                    return Wait::Done;
                }
            }
        };
        let end = uwsgi::HEADER_LEN + usize::from(header.size);
        if header.modifier1 == uwsgi::MODIFIER_PING && header.modifier2 == 0 {
            vlog!("PING");
            let _ = self.stream.write_all(&response::pong());
            return Wait::Done;
        }
        let vars = match uwsgi::parse_vars(
            &self.buf[uwsgi::HEADER_LEN..end],
            self.ctx.settings.max_vars,
        ) {
            Ok(v) => v,
            Err(e) => {
                vlog!("{e}");
                return Wait::Done;
            }
        };
        self.buf.drain(..end);
        if header.modifier1 != uwsgi::MODIFIER_WSGI {
            vlog!("-- unavailable modifier requested: {} --", header.modifier1);
            return Wait::Done;
        }
        let framing = match vars.get(b"CONTENT_LENGTH").map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        }) {
            None | Some(Some(0)) => BodyFraming::None,
            Some(Some(n)) => BodyFraming::Length(n),
            Some(None) => BodyFraming::None,
        };
        let proto = response::status_protocol(vars.get(b"SERVER_PROTOCOL")).to_vec();
        self.handle(
            &vars,
            usize::from(header.size),
            framing,
            false,
            &proto,
            false,
        );
        Wait::Done
    }

    fn serve_http(&mut self) -> Wait {
        let bs = self.ctx.settings.buffer_size;
        loop {
            // Gather a request head: what is buffered, then what has arrived. A client
            // trickling it byte by byte gets twice socket-timeout in all.
            let mut searched = 0;
            let head_len = loop {
                let skip = http::leading_newlines(&self.buf);
                if skip > 0 {
                    self.buf.drain(..skip);
                    searched = 0;
                }
                if let Some(n) = http::head_end(&self.buf, searched) {
                    break n;
                }
                searched = self.buf.len();
                match self.gather(bs) {
                    Err(wait) => return wait,
                    Ok(Ok(Fill::Data | Fill::Later)) => {}
                    Ok(Ok(Fill::Full)) => {
                        vlog!("invalid HTTP request size (max {bs})...skip");
                        let r = response::simple(
                            b"HTTP/1.1",
                            431,
                            "Request Header Fields Too Large",
                            false,
                            b"Request Header Fields Too Large",
                        );
                        let _ = self.stream.write_all(&r);
                        return Wait::Done;
                    }
                    Ok(Ok(Fill::Eof)) => {
                        if !self.buf.is_empty() {
                            vlog!("uwsgi_proto_http_parser() -> client closed connection");
                        }
                        return Wait::Done;
                    }
                    Ok(Err(_)) => return Wait::Done,
                }
            };
            self.head_deadline = None;
            let info = ConnInfo {
                server_name: self.ctx.server_name.as_bytes(),
                server_port: self.listener.server_port.as_bytes(),
                remote_addr: self.peer.as_bytes(),
            };
            let parsed = http::parse_request(&self.buf[..head_len], &info);
            self.buf.drain(..head_len);
            let req = match parsed {
                Ok(r) => r,
                Err(e) => {
                    vlog!(
                        "invalid HTTP request from {}: {e}",
                        if self.peer.is_empty() {
                            "a UNIX client"
                        } else {
                            &self.peer
                        }
                    );
                    let (code, reason) = e.status();
                    let _ = self.stream.write_all(&response::simple(
                        b"HTTP/1.1",
                        code,
                        reason,
                        false,
                        reason.as_bytes(),
                    ));
                    return Wait::Done;
                }
            };
            let proto = req.version.as_bytes().to_vec();
            let pktsize = req.vars.encoded_len();
            let keep = self.handle(
                &req.vars,
                pktsize,
                req.framing,
                req.expect_continue,
                &proto,
                req.keep_alive,
            );
            self.served += 1;
            if !keep {
                return Wait::Done;
            }
            // A client that waits for this response before sending its next request has
            // sent nothing yet: park at once rather than try a read that would find nothing
            // (epoll reports the connection at once if bytes did arrive).
            if self.buf.is_empty() && !signals::graceful_requested() {
                return Wait::More;
            }
        }
    }

    /// One step of gathering a request head (HTTP) or packet (uwsgi): gives up a client
    /// past its head deadline, reads what has arrived, and when nothing has, asks for the
    /// connection to be parked (`Err(Wait::More)`) or, in a stopping worker, waits for the
    /// bytes (`Ok(Ok(Fill::Later))` once they came).
    fn gather(&mut self, max: usize) -> Result<io::Result<Fill>, Wait> {
        if !self.buf.is_empty() {
            let timeout = head_timeout(self.ctx);
            let limit = *self
                .head_deadline
                .get_or_insert_with(|| Instant::now() + timeout);
            if Instant::now() > limit {
                timed_out(self.ctx, self.listener.protocol);
                return Err(Wait::Done);
            }
        }
        match self.fill_now(max) {
            Ok(Fill::Later) if !signals::graceful_requested() => Err(Wait::More),
            Ok(Fill::Later) if !self.wait_while_stopping() => Err(Wait::Done),
            other => Ok(other),
        }
    }

    /// In a stopping worker, waits for the bytes of a request this connection still owes:
    /// a kept-alive connection between two requests is given up (its client will open
    /// another, to a live worker), but a connection just accepted, or one in the middle
    /// of a head, waits for it: nobody else will serve it. False when it is given up.
    fn wait_while_stopping(&mut self) -> bool {
        if self.served > 0 && self.buf.is_empty() {
            return false;
        }
        let end = self.head_deadline.unwrap_or_else(|| {
            Instant::now() + Duration::from_secs(self.ctx.settings.socket_timeout)
        });
        if self.stream.wait_readable(end) {
            return true;
        }
        if !self.buf.is_empty() {
            timed_out(self.ctx, self.listener.protocol);
        }
        false
    }

    /// Handles one parsed request; returns whether the connection may go on.
    fn handle(
        &mut self,
        vars: &Vars,
        pktsize: usize,
        framing: BodyFraming,
        expect_continue: bool,
        proto: &[u8],
        keep_alive: bool,
    ) -> bool {
        let ctx = self.ctx;
        let start = clock::now_micros();
        let uri = vars
            .get(b"REQUEST_URI")
            .or_else(|| vars.get(b"PATH_INFO"))
            .unwrap_or_default();
        ctx.scoreboard.begin_request(
            ctx.id,
            self.core,
            start,
            ctx.settings.harakiri,
            vars.get(b"REQUEST_METHOD").unwrap_or_default(),
            uri,
        );

        if expect_continue && framing != BodyFraming::None {
            let _ = self.stream.write_all(response::CONTINUE);
        }
        let keep_alive = keep_alive && !signals::graceful_requested() && !ctx.last_request_due();
        let too_big = match framing {
            BodyFraming::Length(n) => {
                crate::limits::check_limit_post(ctx.settings.limit_post, n).is_err()
            }
            _ => false,
        };
        let (served, write_ok, keep) = if too_big {
            // `limit-post`: refused before the app sees it (uWSGI drops the connection;
            // a 413 tells the client why).
            let r = response::simple(
                proto,
                413,
                "Request Entity Too Large",
                false,
                b"Request Entity Too Large",
            );
            let ok = self.stream.write_all(&r).is_ok();
            (Served::canned(413, &r), ok, false)
        } else {
            self.serve_request(vars, framing, proto, keep_alive)
        };

        let slot = ctx.scoreboard.slot(ctx.id);
        if !write_ok {
            slot.write_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let end = clock::now_micros();
        let total = ctx.scoreboard.end_request(
            ctx.id,
            self.core,
            end,
            served.head_bytes as u64 + served.body_bytes,
        );
        // `disable-logging` and the conditional log-* options are decided in `logging`.
        self.log_request(vars, pktsize, start, end, &served, total);
        ctx.after_request();
        keep && write_ok
    }

    /// Serves a request: with the application plugin, or uWSGI's no-app 500.
    fn serve_request(
        &mut self,
        vars: &Vars,
        framing: BodyFraming,
        proto: &[u8],
        keep_alive: bool,
    ) -> (Served, bool, bool) {
        match app::plugin() {
            Some(p) => self.run_app(p, vars, framing, proto, keep_alive),
            None => {
                let drained = self.drain_body(framing);
                let keep_alive = keep_alive && drained;
                let r = self.no_app(proto, keep_alive);
                let ok = self.stream.write_all(&r).is_ok();
                (Served::canned(500, &r), ok, keep_alive)
            }
        }
    }

    /// Serves a request with the loaded application plugin.
    fn run_app(
        &mut self,
        p: &app::abi::Plugin,
        vars: &Vars,
        framing: BodyFraming,
        proto: &[u8],
        keep_alive: bool,
    ) -> (Served, bool, bool) {
        let http = self.listener.protocol == Protocol::Http;
        let head = vars.get(b"REQUEST_METHOD") == Some(b"HEAD");
        let mut ex = Exchange::new(
            &mut self.stream,
            &mut self.buf,
            framing,
            proto,
            http,
            head,
            keep_alive && http,
        );
        let app_id = app::host::request(p, &mut ex, vars, self.core);
        if !ex.started && app_id < 0 {
            // No application for this request: uWSGI's answer, and the connection ends.
            drop(ex);
            let r = response::no_app(proto, false);
            let ok = self.stream.write_all(&r).is_ok();
            return (Served::canned(500, &r), ok, false);
        }
        if !ex.started {
            // The application failed before starting a response (uWSGI sends nothing).
            let body = response::INTERNAL_SERVER_ERROR;
            ex.start(
                b"500 Internal Server Error",
                &[(b"Content-Type", b"text/plain")],
                body.len() as i64,
            );
            ex.write(body);
        }
        let keep = ex.finish();
        let logvars = std::mem::take(&mut ex.logvars);
        let served = Served {
            status: ex.status,
            app: app_id,
            logvars,
            headers: ex.headers,
            head_bytes: ex.head_bytes,
            body_bytes: ex.body_bytes,
        };
        (served, !ex.write_failed, keep)
    }

    /// What a request gets while no application is loaded (uWSGI's answer).
    fn no_app(&mut self, proto: &[u8], keep_alive: bool) -> Vec<u8> {
        vlog!("--- no python application found, check your startup logs for errors ---");
        response::no_app(proto, keep_alive)
    }

    /// Reads and drops a request body; false when it could not be read whole (the
    /// connection cannot carry another request then).
    fn drain_body(&mut self, framing: BodyFraming) -> bool {
        match framing {
            BodyFraming::None => true,
            BodyFraming::Length(n) if n > MAX_DRAIN => false,
            BodyFraming::Length(mut left) => {
                let take = (left.min(self.buf.len() as u64)) as usize;
                self.buf.drain(..take);
                left -= take as u64;
                let mut scratch = vec![0u8; 65536];
                while left > 0 {
                    let want = left.min(scratch.len() as u64) as usize;
                    match self.stream.read(&mut scratch[..want]) {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => left -= n as u64,
                    }
                }
                true
            }
            BodyFraming::Chunked => {
                let mut dec = ChunkedDecoder::new();
                let mut total = 0u64;
                loop {
                    let mut sink = |b: &[u8]| total += b.len() as u64;
                    match dec.feed(&self.buf, &mut sink) {
                        Ok(used) => {
                            self.buf.drain(..used);
                        }
                        Err(e) => {
                            vlog!("{e}");
                            return false;
                        }
                    }
                    if dec.is_done() {
                        return true;
                    }
                    if total > MAX_DRAIN {
                        return false;
                    }
                    match self.fill(65536) {
                        Ok(Fill::Data) => {}
                        _ => return false,
                    }
                }
            }
        }
    }

    /// The request log line: uWSGI's default one or `log-format` (vassal helper: the line
    /// is built and written by `crate::logging`).
    fn log_request(
        &self,
        vars: &Vars,
        pktsize: usize,
        start: u64,
        end: u64,
        served: &Served,
        total: u64,
    ) {
        let slot = self.ctx.scoreboard.slot(self.ctx.id);
        let app_requests = if served.app < 0 {
            -1
        } else {
            slot.delta_requests
                .load(std::sync::atomic::Ordering::Relaxed) as i64
        };
        crate::logging::log_request(&crate::logging::RequestFacts {
            vars,
            logvars: &served.logvars,
            pktsize,
            modifier1: 0,
            modifier2: 0,
            status: served.status,
            start_micros: start,
            end_micros: end,
            body_size: served.body_bytes,
            headers_size: served.head_bytes as u64,
            header_count: served.headers,
            app_id: i64::from(served.app),
            app_requests,
            total_requests: total,
            worker_id: self.ctx.id,
            core: self.core,
            switches: u64::from(served.app >= 0),
            read_errors: slot.read_errors.load(std::sync::atomic::Ordering::Relaxed),
            write_errors: slot.write_errors.load(std::sync::atomic::Ordering::Relaxed),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gathered_writes_arrive_whole_and_in_order() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut s = Stream::new(OwnedFd::from(a), Duration::from_secs(10));
        // Larger than the socket buffer, so writev returns short and resumes mid-part.
        let big = vec![7u8; 3 << 20];
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        s.write_all_parts(&[b"", b"head:", &big, b"", b"\r\n"])
            .unwrap();
        s.write_all_parts(&[b"tail"]).unwrap();
        drop(s);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), 5 + big.len() + 2 + 4);
        assert!(got.starts_with(b"head:"));
        assert!(got.ends_with(b"\r\ntail"));
        assert!(got[5..5 + big.len()].iter().all(|&c| c == 7));
    }
}
