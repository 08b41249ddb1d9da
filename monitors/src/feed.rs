//! The pipe protocol between a monitor helper process and the Emperor: length-prefixed
//! frames, each a snapshot marker, a row of a snapshot (poll monitors: pg, mongodb), or a
//! pushed touch/destroy (push monitors: amqp, zmq).
//!
//! Frame: `u32 LE length` of what follows, `u8 kind`, then fields. A byte string is
//! `u32 LE length + bytes`; an optional value is `u8 0|1` then the value; integers are
//! little-endian. Everything is bytes: names and configs are validated by the Emperor side
//! ([`crate::remote`]), never trusted from the helper.

use std::fmt;

/// The largest frame accepted (a config larger than [`crate::remote::MAX_CONFIG`] is
/// refused by the helper before it gets here; this only bounds the reader's buffer).
pub const MAX_FRAME: usize = 64 << 20;

/// One vassal as a monitor source describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub name: Vec<u8>,
    /// A pushed config; None: the name is a config file the vassal reads itself.
    pub config: Option<Vec<u8>>,
    /// Modification time, Unix seconds.
    pub ts: i64,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// On-demand socket.
    pub socket: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A poll result starts: every vassal of this monitor not listed before
    /// [`Frame::SnapshotEnd`] is gone.
    SnapshotBegin,
    /// One row/document of the snapshot.
    Row(Entry),
    /// A row that is present but unusable this time (bad ts, NULL config, oversize):
    /// whatever runs under that name stays as it is.
    Keep(Vec<u8>),
    SnapshotEnd,
    /// A pushed add-or-reload.
    Touch(Entry),
    /// A pushed stop.
    Destroy(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    TooLarge(usize),
    UnknownKind(u8),
    Truncated,
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds the limit"),
            FeedError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            FeedError::Truncated => write!(f, "truncated frame"),
        }
    }
}

const K_BEGIN: u8 = 1;
const K_ROW: u8 = 2;
const K_KEEP: u8 = 3;
const K_END: u8 = 4;
const K_TOUCH: u8 = 5;
const K_DESTROY: u8 = 6;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
        None => out.push(0),
    }
}

fn put_opt_u32(out: &mut Vec<u8>, v: Option<u32>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    put_bytes(out, &e.name);
    put_opt_bytes(out, e.config.as_deref());
    out.extend_from_slice(&e.ts.to_le_bytes());
    put_opt_u32(out, e.uid);
    put_opt_u32(out, e.gid);
    put_opt_bytes(out, e.socket.as_deref());
}

/// Encodes one frame, length prefix included.
pub fn encode(f: &Frame) -> Vec<u8> {
    let mut body = Vec::new();
    match f {
        Frame::SnapshotBegin => body.push(K_BEGIN),
        Frame::Row(e) => {
            body.push(K_ROW);
            put_entry(&mut body, e);
        }
        Frame::Keep(n) => {
            body.push(K_KEEP);
            put_bytes(&mut body, n);
        }
        Frame::SnapshotEnd => body.push(K_END),
        Frame::Touch(e) => {
            body.push(K_TOUCH);
            put_entry(&mut body, e);
        }
        Frame::Destroy(n) => {
            body.push(K_DESTROY);
            put_bytes(&mut body, n);
        }
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FeedError> {
        if self.0.len() < n {
            return Err(FeedError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FeedError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, FeedError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, FeedError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, FeedError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, FeedError> {
        if self.u8()? == 0 {
            Ok(None)
        } else {
            self.bytes().map(Some)
        }
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, FeedError> {
        if self.u8()? == 0 {
            Ok(None)
        } else {
            self.u32().map(Some)
        }
    }
    fn entry(&mut self) -> Result<Entry, FeedError> {
        Ok(Entry {
            name: self.bytes()?,
            config: self.opt_bytes()?,
            ts: self.i64()?,
            uid: self.opt_u32()?,
            gid: self.opt_u32()?,
            socket: self.opt_bytes()?,
        })
    }
}

fn decode_body(body: &[u8]) -> Result<Frame, FeedError> {
    let mut c = Cursor(body);
    let f = match c.u8()? {
        K_BEGIN => Frame::SnapshotBegin,
        K_ROW => Frame::Row(c.entry()?),
        K_KEEP => Frame::Keep(c.bytes()?),
        K_END => Frame::SnapshotEnd,
        K_TOUCH => Frame::Touch(c.entry()?),
        K_DESTROY => Frame::Destroy(c.bytes()?),
        k => return Err(FeedError::UnknownKind(k)),
    };
    if !c.0.is_empty() {
        return Err(FeedError::Truncated);
    }
    Ok(f)
}

/// Accumulates bytes from the pipe and cuts them into frames.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FeedError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let n = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if n > MAX_FRAME {
            return Err(FeedError::TooLarge(n));
        }
        if self.buf.len() < 4 + n {
            return Ok(None);
        }
        let f = decode_body(&self.buf[4..4 + n]);
        self.buf.drain(..4 + n);
        f.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let e = Entry {
            name: b"a.ini".to_vec(),
            config: Some(b"[uwsgi]\n".to_vec()),
            ts: 17,
            uid: Some(1000),
            gid: None,
            socket: Some(b"/s".to_vec()),
        };
        let frames = vec![
            Frame::SnapshotBegin,
            Frame::Row(e.clone()),
            Frame::Keep(b"b.ini".to_vec()),
            Frame::SnapshotEnd,
            Frame::Touch(e),
            Frame::Destroy(b"x".to_vec()),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(3) {
            r.push(chunk);
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn bad_frames() {
        let mut r = FrameReader::default();
        r.push(&[1, 0, 0, 0, 99]);
        assert_eq!(r.next_frame(), Err(FeedError::UnknownKind(99)));
        let mut r = FrameReader::default();
        r.push(&[3, 0, 0, 0, K_KEEP, 9, 9]);
        assert_eq!(r.next_frame(), Err(FeedError::Truncated));
        let mut r = FrameReader::default();
        r.push(&u32::MAX.to_le_bytes());
        assert!(matches!(r.next_frame(), Err(FeedError::TooLarge(_))));
    }
}
