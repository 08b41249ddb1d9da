//! The uwsgi packet: a 4-byte header (modifier1, little-endian u16 size, modifier2), then
//! `size` bytes of variables, each a little-endian u16 key length, the key, a little-endian
//! u16 value length and the value. A request body, if any, follows the packet.
//!
//! The rules and log texts follow uWSGI 2.0: a size above `buffer-size` is refused, a key
//! may not be empty, a truncated variable refuses the whole request.

use super::vars::Vars;
use std::fmt;

/// Length of the packet header.
pub const HEADER_LEN: usize = 4;
/// modifier1 of a WSGI request (the default).
pub const MODIFIER_WSGI: u8 = 0;
/// modifier1 of a PING (modifier2 0) and its PONG (modifier2 1).
pub const MODIFIER_PING: u8 = 100;
/// uWSGI's default `max-vars`.
pub const DEFAULT_MAX_VARS: usize = 64;

/// The 4-byte packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub modifier1: u8,
    pub size: u16,
    pub modifier2: u8,
}

impl Header {
    /// Reads a header from its 4 bytes.
    pub fn parse(b: [u8; 4]) -> Header {
        Header {
            modifier1: b[0],
            size: u16::from_le_bytes([b[1], b[2]]),
            modifier2: b[3],
        }
    }

    /// The header's 4 bytes.
    pub fn encode(&self) -> [u8; 4] {
        let s = self.size.to_le_bytes();
        [self.modifier1, s[0], s[1], self.modifier2]
    }
}

/// Where a partly received packet stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    Incomplete,
    /// The header and the whole vars block are in; body bytes may follow them.
    Complete(Header),
    /// The announced vars block is larger than `buffer-size`.
    TooLarge(u16),
}

/// Looks at the bytes received so far on a uwsgi connection.
pub fn progress(buf: &[u8], buffer_size: usize) -> Progress {
    let Some(h) = buf.first_chunk::<4>() else {
        return Progress::Incomplete;
    };
    let h = Header::parse(*h);
    if usize::from(h.size) > buffer_size {
        Progress::TooLarge(h.size)
    } else if buf.len() - HEADER_LEN >= usize::from(h.size) {
        Progress::Complete(h)
    } else {
        Progress::Incomplete
    }
}

/// Why a vars block was refused; `Display` gives uWSGI's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarsError {
    /// A key of length 0.
    NullKey,
    /// A length that runs past the end of the block.
    Truncated { strsize: u16 },
    /// More than `2 * max-vars` variables.
    TooMany,
}

impl fmt::Display for VarsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarsError::NullKey => write!(f, "uwsgi key cannot be null. skip this var."),
            VarsError::Truncated { strsize } => write!(
                f,
                "invalid uwsgi request (current strsize: {strsize}). skip."
            ),
            VarsError::TooMany => write!(f, "max vec size reached. skip this var."),
        }
    }
}

impl std::error::Error for VarsError {}

fn read_len(block: &[u8], pos: usize) -> Option<u16> {
    let b = block.get(pos..pos + 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Parses a vars block (the `size` bytes after the header). uWSGI's vector holds two
/// entries per variable and `4 * max-vars` in all, so at most `2 * max_vars` variables.
pub fn parse_vars(block: &[u8], max_vars: usize) -> Result<Vars, VarsError> {
    let mut vars = Vars::with_capacity(block.len());
    let mut pos = 0;
    let mut last = 0u16;
    while pos < block.len() {
        let klen = read_len(block, pos).ok_or(VarsError::Truncated { strsize: last })?;
        if klen == 0 {
            return Err(VarsError::NullKey);
        }
        pos += 2;
        let key = block
            .get(pos..pos + usize::from(klen))
            .ok_or(VarsError::Truncated { strsize: klen })?;
        pos += usize::from(klen);
        let vlen = read_len(block, pos).ok_or(VarsError::Truncated { strsize: klen })?;
        pos += 2;
        let value = block
            .get(pos..pos + usize::from(vlen))
            .ok_or(VarsError::Truncated { strsize: vlen })?;
        pos += usize::from(vlen);
        last = vlen;
        if vars.len() >= max_vars.saturating_mul(2) {
            return Err(VarsError::TooMany);
        }
        vars.push(key, value);
    }
    Ok(vars)
}

/// Encodes variables as a vars block. Pairs whose key or value exceeds 65535 bytes
/// cannot be represented and are left out.
pub fn encode_vars<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        let (Ok(kl), Ok(vl)) = (u16::try_from(k.len()), u16::try_from(v.len())) else {
            continue;
        };
        out.extend_from_slice(&kl.to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&vl.to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// A whole packet (header + vars), as a client such as nginx sends it. `None` when the
/// block does not fit in 65535 bytes.
pub fn encode_packet<'a>(
    modifier1: u8,
    modifier2: u8,
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Option<Vec<u8>> {
    let block = encode_vars(pairs);
    let size = u16::try_from(block.len()).ok()?;
    let mut out = Header {
        modifier1,
        size,
        modifier2,
    }
    .encode()
    .to_vec();
    out.extend_from_slice(&block);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &Vars) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect()
    }

    #[test]
    fn header_is_little_endian() {
        let h = Header::parse([0, 0x2c, 0x01, 0]);
        assert_eq!(h.size, 300);
        assert_eq!(h.encode(), [0, 0x2c, 0x01, 0]);
        // "GET " read as a header: the classic 21573 of an HTTP client on a uwsgi socket.
        assert_eq!(Header::parse(*b"GET ").size, 21573);
    }

    #[test]
    fn round_trip() {
        let p = encode_packet(
            0,
            0,
            [(&b"REQUEST_METHOD"[..], &b"GET"[..]), (b"EMPTY", b"")],
        )
        .unwrap();
        let Progress::Complete(h) = progress(&p, 4096) else {
            panic!()
        };
        let v = parse_vars(&p[4..4 + usize::from(h.size)], 64).unwrap();
        assert_eq!(
            pairs(&v),
            vec![
                ("REQUEST_METHOD".into(), "GET".into()),
                ("EMPTY".into(), String::new())
            ]
        );
    }

    #[test]
    fn progress_states() {
        assert_eq!(progress(b"", 4096), Progress::Incomplete);
        assert_eq!(progress(&[0, 1], 4096), Progress::Incomplete);
        assert_eq!(progress(&[0, 3, 0, 0, 1], 4096), Progress::Incomplete);
        assert!(
            matches!(progress(&[0, 1, 0, 0, 1, 2, 3], 4096), Progress::Complete(h) if h.size == 1)
        );
        assert_eq!(
            progress(&[0, 0xff, 0xff, 0], 4096),
            Progress::TooLarge(65535)
        );
        assert!(matches!(
            progress(&[0, 0xff, 0xff, 0], 65535),
            Progress::Incomplete
        ));
    }

    #[test]
    fn refusals_carry_uwsgi_messages() {
        assert_eq!(
            parse_vars(&[0, 0, 1, 0, b'x'], 64).unwrap_err().to_string(),
            "uwsgi key cannot be null. skip this var."
        );
        let e = parse_vars(&[5, 0, b'a'], 64).unwrap_err();
        assert_eq!(e, VarsError::Truncated { strsize: 5 });
        assert_eq!(
            e.to_string(),
            "invalid uwsgi request (current strsize: 5). skip."
        );
        assert!(parse_vars(&[1, 0, b'a', 9, 0, b'x'], 64).is_err());
        assert!(parse_vars(&[1, 0, b'a', 0], 64).is_err());
        assert!(parse_vars(&[1], 64).is_err());
        let many = encode_vars((0..5).map(|_| (&b"k"[..], &b"v"[..])));
        assert_eq!(parse_vars(&many, 2).unwrap_err(), VarsError::TooMany);
        assert_eq!(parse_vars(&many, 3).unwrap().len(), 5);
    }

    #[test]
    fn empty_block_is_an_empty_request() {
        assert!(parse_vars(b"", 64).unwrap().is_empty());
    }
}
