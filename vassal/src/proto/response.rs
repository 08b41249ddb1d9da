//! Responses the instance writes itself (no application involved): the 500 of a request
//! that no application can serve, the refusals of bad HTTP requests, `100 Continue` and the
//! uwsgi PONG. A response to a uwsgi-protocol request is a raw HTTP response, as in uWSGI.

use super::uwsgi::{Header, MODIFIER_PING};

/// The body uWSGI sends with its 500.
pub const INTERNAL_SERVER_ERROR: &[u8] = b"Internal Server Error";

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reply to a uwsgi PING (modifier1 100, modifier2 0): the same header with modifier2 1.
pub fn pong() -> [u8; 4] {
    Header {
        modifier1: MODIFIER_PING,
        size: 0,
        modifier2: 1,
    }
    .encode()
}

/// The protocol written at the start of the status line: the request's `SERVER_PROTOCOL`,
/// or `HTTP/1.0` when it is missing (as uWSGI does), or not a plain `HTTP/x.y`-like token.
pub fn status_protocol(server_protocol: Option<&[u8]>) -> &[u8] {
    match server_protocol {
        Some(p) if !p.is_empty() && p.len() <= 16 && p.iter().all(|b| b.is_ascii_graphic()) => p,
        _ => b"HTTP/1.0",
    }
}

/// A complete short response. With `keep_alive` the body is delimited by `Content-Length`
/// (and HTTP/1.0 clients are told `Connection: keep-alive`); otherwise it is uWSGI's
/// layout: `Connection: close`, `Content-Type`, blank line, body.
pub fn simple(
    protocol: &[u8],
    status: u16,
    reason: &str,
    keep_alive: bool,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(protocol);
    out.extend_from_slice(format!(" {status} {reason}\r\n").as_bytes());
    if keep_alive {
        if protocol == b"HTTP/1.0" {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"Content-Type: text/plain\r\n");
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    } else {
        out.extend_from_slice(b"Connection: close\r\n");
        out.extend_from_slice(b"Content-Type: text/plain\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The 500 sent when no application can serve a request.
pub fn no_app(protocol: &[u8], keep_alive: bool) -> Vec<u8> {
    simple(
        protocol,
        500,
        "Internal Server Error",
        keep_alive,
        INTERNAL_SERVER_ERROR,
    )
}

/// Where the head of `response` ends and how many header lines it has (the status line
/// not counted), for the request log's `N headers in B bytes`.
pub fn head_stats(response: &[u8]) -> (usize, usize) {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let lines = response[..end].windows(2).filter(|w| w == b"\r\n").count();
    (lines.saturating_sub(2), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_app_matches_uwsgi_bytes() {
        assert_eq!(
            no_app(b"HTTP/1.1", false),
            b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nInternal Server Error"
        );
        assert_eq!(head_stats(&no_app(b"HTTP/1.1", false)), (2, 83));
        let ka = no_app(b"HTTP/1.1", true);
        assert!(ka.ends_with(b"Content-Length: 21\r\n\r\nInternal Server Error"));
    }

    #[test]
    fn protocol_is_sanitised() {
        assert_eq!(status_protocol(None), b"HTTP/1.0");
        assert_eq!(status_protocol(Some(b"HTTP/1.1")), b"HTTP/1.1");
        assert_eq!(status_protocol(Some(b"HTTP/1.1\r\nX: y")), b"HTTP/1.0");
        assert_eq!(pong(), [100, 0, 0, 1]);
    }
}
