//! The `Transfer-Encoding: chunked` request body decoder: an incremental state machine fed
//! with whatever bytes arrived, yielding the body bytes and telling when the body (last
//! chunk and trailers) is complete. Size lines and trailer lines are bounded.

use std::fmt;

/// Longest chunk-size line (with extensions) or trailer line accepted.
pub const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted in all.
pub const MAX_TRAILERS: usize = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Inside chunk data, with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data (`true` once the CR was seen).
    DataEnd(bool),
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// The body is complete.
    Done,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A size line that is not hex digits (optionally followed by `;extensions`).
    BadSize,
    /// A chunk not followed by CRLF.
    BadDataEnd,
    /// A size line or the trailers too long.
    TooLong,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::BadSize => "invalid chunk size in a chunked request body",
            ChunkedError::BadDataEnd => "chunk data not followed by CRLF in a chunked request body",
            ChunkedError::TooLong => {
                "chunk size line or trailers too long in a chunked request body"
            }
        })
    }
}

impl std::error::Error for ChunkedError {}

/// An incremental chunked-body decoder.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            line: Vec::new(),
            trailer_bytes: 0,
        }
    }
}

fn parse_size(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.strip_suffix(b" ").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 16 {
        return Err(ChunkedError::BadSize);
    }
    let s = std::str::from_utf8(digits).map_err(|_| ChunkedError::BadSize)?;
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChunkedError::BadSize);
    }
    u64::from_str_radix(s, 16).map_err(|_| ChunkedError::BadSize)
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// True once the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds received bytes; body bytes are passed to `out`. Returns how many input bytes
    /// were consumed: all of them, unless the body ended before (the rest belongs to the
    /// next request on the connection).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok(i),
                State::Data(left) => {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd(false)
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd(cr) => {
                    match (cr, input[i]) {
                        (false, b'\r') => self.state = State::DataEnd(true),
                        (_, b'\n') => self.state = State::Size,
                        _ => return Err(ChunkedError::BadDataEnd),
                    }
                    i += 1;
                }
                State::Size | State::Trailers => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        if self.line.len() >= MAX_LINE {
                            return Err(ChunkedError::TooLong);
                        }
                        self.line.push(b);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if self.state == State::Size {
                        let size = parse_size(line)?;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                    } else if line.is_empty() {
                        self.state = State::Done;
                    } else {
                        self.trailer_bytes += line.len();
                        if self.trailer_bytes > MAX_TRAILERS {
                            return Err(ChunkedError::TooLong);
                        }
                    }
                }
            }
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step.max(1)) {
            let n = d.feed(piece, &mut |b| out.extend_from_slice(b))?;
            used += n;
            if d.is_done() {
                break;
            }
        }
        Ok((out, used, d.is_done()))
    }

    #[test]
    fn decodes_in_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (out, used, done) = decode_all(body, step).unwrap();
            assert_eq!(out, b"hello world");
            assert!(done);
            assert_eq!(&body[used..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(
            decode_all(b"zz\r\n", 100).unwrap_err(),
            ChunkedError::BadSize
        );
        assert_eq!(decode_all(b"\r\n", 100).unwrap_err(), ChunkedError::BadSize);
        assert_eq!(
            decode_all(b"fffffffffffffffff\r\n", 100).unwrap_err(),
            ChunkedError::BadSize
        );
        assert_eq!(
            decode_all(b"1\r\nab\r\n", 100).unwrap_err(),
            ChunkedError::BadDataEnd
        );
        assert_eq!(
            decode_all(&[b'1'; 5000], 100).unwrap_err(),
            ChunkedError::TooLong
        );
        let (_, _, done) = decode_all(b"3\r\nab", 100).unwrap();
        assert!(!done);
    }
}
