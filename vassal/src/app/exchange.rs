//! One request as an application plugin sees it: the request body to read (the bytes
//! already received, then the socket, with `Content-Length` or chunked framing undone) and
//! the response to send, framed here and not by the plugin: `Content-Length` when the
//! length is known, `Transfer-Encoding: chunked` for an HTTP/1.1 client otherwise, else the
//! end of the connection delimits the body. HEAD responses carry no body.

use crate::conn::{MAX_DRAIN, Stream};
use crate::proto::chunked::ChunkedDecoder;
use crate::proto::http::BodyFraming;
use std::io;

/// Where the request body stands.
enum Body {
    Length(u64),
    Chunked(Box<ChunkedDecoder>, Vec<u8>),
    Done,
    /// Reading it failed: the connection cannot carry another request.
    Broken,
}

/// A request being served by a plugin.
pub struct Exchange<'c> {
    stream: &'c mut Stream,
    buf: &'c mut Vec<u8>,
    body: Body,
    proto: Vec<u8>,
    http: bool,
    head: bool,
    keep_alive: bool,
    pending: Vec<u8>,
    /// Body bytes in `pending` that a `write_nowait` could not send (0: only a head, if
    /// anything, waits there).
    unsent: usize,
    chunked: bool,
    /// Response bytes the head announced (Content-Length), if any.
    announced: Option<u64>,
    pub started: bool,
    pub aborted: bool,
    pub write_failed: bool,
    pub status: u16,
    pub headers: usize,
    pub head_bytes: usize,
    pub body_bytes: u64,
    /// `uwsgi.set_logvar` values, for the request log line.
    pub logvars: Vec<(String, String)>,
}

/// Parses the three-digit code at the start of a WSGI status (`200 OK`).
pub fn status_code(status: &[u8]) -> Option<u16> {
    let d = status.get(..3)?;
    if !d.iter().all(u8::is_ascii_digit) || status.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    std::str::from_utf8(d).ok()?.parse().ok()
}

impl<'c> Exchange<'c> {
    /// `http`: the socket speaks HTTP (keep-alive and chunked responses are possible);
    /// `keep_alive`: the client asked for (or defaults to) a persistent connection.
    pub fn new(
        stream: &'c mut Stream,
        buf: &'c mut Vec<u8>,
        framing: BodyFraming,
        proto: &[u8],
        http: bool,
        head: bool,
        keep_alive: bool,
    ) -> Exchange<'c> {
        let body = match framing {
            BodyFraming::None => Body::Done,
            BodyFraming::Length(n) => Body::Length(n),
            BodyFraming::Chunked => Body::Chunked(Box::new(ChunkedDecoder::new()), Vec::new()),
        };
        Exchange {
            stream,
            buf,
            body,
            proto: proto.to_vec(),
            http,
            head,
            keep_alive,
            pending: Vec::new(),
            unsent: 0,
            chunked: false,
            announced: None,
            started: false,
            aborted: false,
            write_failed: false,
            status: 0,
            headers: 0,
            head_bytes: 0,
            body_bytes: 0,
            logvars: Vec::new(),
        }
    }

    /// The socket descriptor.
    pub fn fd(&self) -> i32 {
        self.stream.raw()
    }

    /// Reads body bytes into `out`: 0 at the end of the body.
    pub fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        match &mut self.body {
            Body::Done => Ok(0),
            Body::Broken => Err(io::ErrorKind::BrokenPipe.into()),
            Body::Length(left) => {
                let want = (*left).min(out.len() as u64) as usize;
                let n = if !self.buf.is_empty() {
                    let n = want.min(self.buf.len());
                    out[..n].copy_from_slice(&self.buf[..n]);
                    self.buf.drain(..n);
                    n
                } else {
                    match self.stream.read(&mut out[..want]) {
                        Ok(0) => {
                            self.body = Body::Broken;
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        Ok(n) => n,
                        Err(e) => {
                            self.body = Body::Broken;
                            return Err(e);
                        }
                    }
                };
                *left -= n as u64;
                if *left == 0 {
                    self.body = Body::Done;
                }
                Ok(n)
            }
            Body::Chunked(_, _) => self.read_chunked(out),
        }
    }

    fn read_chunked(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let Body::Chunked(dec, decoded) = &mut self.body else {
                return Ok(0);
            };
            if !decoded.is_empty() {
                let n = out.len().min(decoded.len());
                out[..n].copy_from_slice(&decoded[..n]);
                decoded.drain(..n);
                return Ok(n);
            }
            if dec.is_done() {
                self.body = Body::Done;
                return Ok(0);
            }
            if self.buf.is_empty() {
                let mut tmp = vec![0u8; 65536];
                match self.stream.read(&mut tmp) {
                    Ok(0) => {
                        self.body = Body::Broken;
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                    Err(e) => {
                        self.body = Body::Broken;
                        return Err(e);
                    }
                }
            }
            let mut sink = |b: &[u8]| decoded.extend_from_slice(b);
            match dec.feed(self.buf, &mut sink) {
                Ok(used) => {
                    self.buf.drain(..used);
                }
                Err(e) => {
                    self.body = Body::Broken;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
    }

    /// Builds the response head. `content_length` is the body length the plugin knows
    /// (-1: unknown). Returns false when the status is not valid.
    pub fn start(
        &mut self,
        status: &[u8],
        headers: &[(&[u8], &[u8])],
        content_length: i64,
    ) -> bool {
        let Some(code) = status_code(status) else {
            return false;
        };
        self.status = code;
        self.started = true;
        let mut has_length = None;
        let mut has_te = false;
        let mut h = Vec::with_capacity(256);
        h.extend_from_slice(&self.proto);
        h.push(b' ');
        h.extend_from_slice(status);
        h.extend_from_slice(b"\r\n");
        for (k, v) in headers {
            if k.eq_ignore_ascii_case(b"content-length") {
                has_length = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok());
            } else if k.eq_ignore_ascii_case(b"transfer-encoding") {
                has_te = true;
            } else if k.eq_ignore_ascii_case(b"connection") && v.eq_ignore_ascii_case(b"close") {
                self.keep_alive = false;
            }
            h.extend_from_slice(k);
            h.extend_from_slice(b": ");
            h.extend_from_slice(v);
            h.extend_from_slice(b"\r\n");
        }
        self.headers = headers.len();
        let bodyless = self.head || code < 200 || code == 204 || code == 304;
        if has_te {
            // The application frames its body itself: only the end of the connection is safe.
            self.keep_alive = false;
        } else if let Some(n) = has_length {
            self.announced = Some(n);
        } else if content_length >= 0 && !(self.head && content_length == 0) {
            self.announced = Some(content_length as u64);
            h.extend_from_slice(format!("Content-Length: {content_length}\r\n").as_bytes());
            self.headers += 1;
        } else if bodyless {
        } else if self.http && self.proto == b"HTTP/1.1" {
            self.chunked = true;
            h.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            self.headers += 1;
        } else {
            self.keep_alive = false;
        }
        if self.http {
            if !self.keep_alive && self.proto == b"HTTP/1.1" {
                h.extend_from_slice(b"Connection: close\r\n");
                self.headers += 1;
            } else if self.keep_alive && self.proto == b"HTTP/1.0" {
                h.extend_from_slice(b"Connection: keep-alive\r\n");
                self.headers += 1;
            }
        }
        h.extend_from_slice(b"\r\n");
        self.head_bytes = h.len();
        self.pending = h;
        true
    }

    fn send(&mut self, parts: &[&[u8]]) -> bool {
        if self.write_failed {
            return false;
        }
        self.unsent = 0;
        // What an earlier `write_nowait` left goes first, in the same system call.
        let pending = std::mem::take(&mut self.pending);
        let ok = match parts {
            [a] => self.stream.write_all_parts(&[&pending, a]),
            [a, b] => self.stream.write_all_parts(&[&pending, a, b]),
            [a, b, c] => self.stream.write_all_parts(&[&pending, a, b, c]),
            _ => self
                .stream
                .write_all(&pending)
                .and_then(|()| self.stream.write_all_parts(parts)),
        }
        .is_ok();
        // The buffer is kept for the next `write_nowait`.
        self.pending = pending;
        self.pending.clear();
        if !ok {
            self.write_failed = true;
        }
        ok
    }

    /// Sends body bytes; false when the client is gone. An empty write sends a head that
    /// is still held back (`start_response-nodelay`).
    pub fn write(&mut self, data: &[u8]) -> bool {
        if !self.started || self.write_failed {
            return false;
        }
        if data.is_empty() {
            return self.pending.is_empty() || self.send(&[]);
        }
        self.body_bytes += data.len() as u64;
        if self.head {
            return true;
        }
        let mut size_line = String::new();
        let parts = self.frame(data, &mut size_line);
        self.send(&parts)
    }

    /// Body bytes as they go on the wire: as they are, or as one chunk whose size line is
    /// put in `size_line`.
    fn frame<'d>(&self, data: &'d [u8], size_line: &'d mut String) -> [&'d [u8]; 3] {
        if self.chunked {
            *size_line = format!("{:x}\r\n", data.len());
            [size_line.as_bytes(), data, b"\r\n"]
        } else {
            [data, &[], &[]]
        }
    }

    /// Sends body bytes if that needs no waiting (see `abi::Host::write_nowait`): 0 taken,
    /// 1 not taken (earlier bytes still wait: use `write`), -1 the client is gone.
    pub fn write_nowait(&mut self, data: &[u8]) -> i32 {
        if !self.started || self.write_failed {
            return -1;
        }
        if data.is_empty() || self.unsent > 0 {
            return 1;
        }
        self.body_bytes += data.len() as u64;
        if self.head {
            return 0;
        }
        let mut size_line = String::new();
        for part in self.frame(data, &mut size_line) {
            self.pending.extend_from_slice(part);
        }
        match self.stream.write_nowait(&self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
                // What the socket could not take goes out first at the next write or at
                // the end of the response, without the caller's lock.
                self.unsent = self.pending.len();
                0
            }
            Err(_) => {
                self.write_failed = true;
                -1
            }
        }
    }

    /// Sends part of a file with sendfile(2) (through `copy`, which performs the call and
    /// returns the bytes sent); returns the bytes sent, or -1.
    pub fn sendfile(&mut self, len: u64, copy: &mut dyn FnMut(i32, u64) -> io::Result<u64>) -> i64 {
        if !self.started || self.write_failed {
            return -1;
        }
        if self.head {
            self.body_bytes += len;
            return len as i64;
        }
        if self.chunked {
            if len == 0 {
                return 0;
            }
            let size = format!("{len:x}\r\n");
            if !self.send(&[size.as_bytes()]) {
                return -1;
            }
        } else if !self.pending.is_empty() && !self.send(&[]) {
            return -1;
        }
        let fd = self.stream.raw();
        let mut sent = 0u64;
        while sent < len {
            match copy(fd, len - sent) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.write_failed = true;
                    return -1;
                }
            }
        }
        self.body_bytes += sent;
        if sent < len {
            // The file was shorter than promised: the framing is broken.
            self.aborted = true;
        }
        if self.chunked && !self.send(&[b"\r\n"]) {
            return -1;
        }
        sent as i64
    }

    /// Sets a request log variable (the last value of a key wins).
    pub fn set_logvar(&mut self, key: String, value: String) {
        match self.logvars.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.logvars.push((key, value)),
        }
    }

    /// The response cannot be completed: close the connection without an end marker.
    pub fn abort(&mut self) {
        self.aborted = true;
        self.keep_alive = false;
    }

    /// Ends the response; returns whether the connection may carry another request.
    pub fn finish(&mut self) -> bool {
        if !self.started {
            return false;
        }
        if !self.aborted {
            if self.chunked && !self.head {
                self.send(&[b"0\r\n\r\n"]);
            } else if !self.pending.is_empty() {
                self.send(&[]);
            }
        }
        if let Some(n) = self.announced
            && !self.head
            && n != self.body_bytes
        {
            self.keep_alive = false;
        }
        if self.aborted || self.write_failed || !self.keep_alive {
            return false;
        }
        self.drain()
    }

    /// Reads and drops what the application left of the body.
    fn drain(&mut self) -> bool {
        // Most requests have no body left: no scratch buffer for them (zeroing 64 KiB
        // per request showed in profiles).
        if matches!(self.body, Body::Done | Body::Length(0)) {
            return true;
        }
        let mut scratch = vec![0u8; 65536];
        let mut total = 0u64;
        loop {
            match self.read(&mut scratch) {
                Ok(0) => return true,
                Ok(n) => {
                    total += n as u64;
                    if total > MAX_DRAIN {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn status_codes() {
        assert_eq!(status_code(b"200 OK"), Some(200));
        assert_eq!(status_code(b"404"), Some(404));
        assert_eq!(status_code(b"20 OK"), None);
        assert_eq!(status_code(b"2000 OK"), None);
    }
}
