//! HTTP/1.0 and HTTP/1.1 request heads (what `http-socket` receives), turned into the same
//! CGI-style variables a uwsgi packet carries, plus what the connection needs to know: how
//! the body is framed, whether to keep the connection alive, whether the client waits for
//! `100 Continue`.
//!
//! The variables follow uWSGI's http-socket: `REQUEST_METHOD`, `REQUEST_URI`, `PATH_INFO`
//! (percent-decoded, dot segments resolved), `QUERY_STRING`, `SERVER_PROTOCOL`,
//! `SCRIPT_NAME` (empty), `SERVER_NAME`, `SERVER_PORT`, `REMOTE_ADDR`, then every header as
//! `HTTP_<NAME>` (`CONTENT_LENGTH` and `CONTENT_TYPE` without the prefix), repeated headers
//! joined with `", "`. Unlike uWSGI, the parser is strict where leniency is a security hole:
//! a malformed request line or header, an ambiguous body length, or a header name with an
//! underscore (which would alias a dashed one) is refused or dropped (see docs/compat.md).

use super::vars::Vars;
use std::fmt;

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The CGI-style variables.
    pub vars: Vars,
    pub version: Version,
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
}

/// Facts about the connection the request came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo<'a> {
    /// `SERVER_NAME` (uWSGI uses the host name).
    pub server_name: &'a [u8],
    /// `SERVER_PORT` (the socket name's port, `80` for UNIX sockets).
    pub server_port: &'a [u8],
    /// `REMOTE_ADDR` (empty for UNIX sockets).
    pub remote_addr: &'a [u8],
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The request line is not `METHOD SP TARGET SP HTTP/x.y`.
    BadRequestLine,
    /// A version other than 1.0 and 1.1.
    UnsupportedVersion,
    /// A header line without a valid name and colon, or folded (obs-fold).
    BadHeader,
    /// A `Content-Length` that is not a number, or two that differ.
    BadContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`, or chunked on HTTP/1.0.
    AmbiguousBody,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferEncoding,
}

impl HttpError {
    /// The status code and reason phrase to answer with.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HttpError::UnsupportedVersion => (505, "HTTP Version Not Supported"),
            HttpError::UnsupportedTransferEncoding => (501, "Not Implemented"),
            _ => (400, "Bad Request"),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            HttpError::BadRequestLine => "invalid HTTP request line",
            HttpError::UnsupportedVersion => "unsupported HTTP version",
            HttpError::BadHeader => "invalid HTTP header",
            HttpError::BadContentLength => "invalid Content-Length",
            HttpError::AmbiguousBody => {
                "ambiguous request body length (Content-Length with Transfer-Encoding)"
            }
            HttpError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
        };
        f.write_str(s)
    }
}

impl std::error::Error for HttpError {}

/// The number of empty lines (CRLF or LF) at the start of `buf`: RFC 9112 lets a server
/// ignore them before a request line (some clients send one after a body).
pub fn leading_newlines(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// The length of the head (through its blank line) when `buf` holds a complete one.
/// `from` is where the previous search stopped, so a slow client costs linear time.
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    buf.get(start..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw` (a `%` not followed by two hex digits stays as is).
pub fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// `PATH_INFO` from a request target's path: the fragment dropped, an absolute-form
/// target reduced to its path, percent-decoded, then `.` and `..` segments resolved and
/// repeated slashes collapsed (uWSGI also collapses them; it resolves dot segments before
/// decoding, so `%2e%2e` slips through there but not here).
pub fn path_info(path: &[u8]) -> Vec<u8> {
    let path = path.split(|&b| b == b'#').next().unwrap_or_default();
    let lower: Vec<u8> = path.iter().take(8).map(u8::to_ascii_lowercase).collect();
    let path = if lower.starts_with(b"http://") || lower.starts_with(b"https://") {
        let after = &path[if lower.starts_with(b"https://") { 8 } else { 7 }..];
        after
            .iter()
            .position(|&b| b == b'/')
            .map_or(&b"/"[..], |p| &after[p..])
    } else {
        path
    };
    let decoded = percent_decode(path);
    if decoded.is_empty() {
        return decoded;
    }
    let absolute = decoded[0] == b'/';
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split(|&b| b == b'/') {
        trailing = matches!(seg, b"" | b"." | b"..");
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    if absolute {
        out.push(b'/');
    }
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(s);
    }
    if trailing && !segments.is_empty() {
        out.push(b'/');
    }
    out
}

/// The CGI name of a header (`Content-Type` -> `CONTENT_TYPE`, `Host` -> `HTTP_HOST`).
pub fn cgi_name(name: &[u8]) -> Vec<u8> {
    let mut upper: Vec<u8> = name
        .iter()
        .map(|&b| {
            if b == b'-' {
                b'_'
            } else {
                b.to_ascii_uppercase()
            }
        })
        .collect();
    if upper != b"CONTENT_LENGTH" && upper != b"CONTENT_TYPE" {
        upper.splice(0..0, *b"HTTP_");
    }
    upper
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// Splits a head on CRLF (a bare CR or LF stays inside its line, and is refused there).
struct CrlfLines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for CrlfLines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(p) => {
                self.rest = Some(&rest[p + 2..]);
                Some(&rest[..p])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

fn parse_request_line(line: &[u8]) -> Result<(&[u8], &[u8], Version), HttpError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::BadRequestLine);
    }
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(HttpError::BadRequestLine);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', d1, b'.', d2]
            if d1.is_ascii_digit() && d2.is_ascii_digit() =>
        {
            return Err(HttpError::UnsupportedVersion);
        }
        _ => return Err(HttpError::BadRequestLine),
    };
    Ok((method, target, version))
}

/// Parses a complete head (request line, headers, blank line; `head_end` bytes).
pub fn parse_request(head: &[u8], info: &ConnInfo<'_>) -> Result<HttpRequest, HttpError> {
    let head = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
    let mut lines = CrlfLines { rest: Some(head) };
    let first = lines.next().unwrap_or_default();
    if first.contains(&b'\r') || first.contains(&b'\n') {
        return Err(HttpError::BadRequestLine);
    }
    let (method, target, version) = parse_request_line(first)?;

    // Headers, merged by CGI name in order of first appearance.
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<Vec<u8>> = None;
    let mut connection: Vec<u8> = Vec::new();
    let mut expect_continue = false;
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(HttpError::BadHeader); // obs-fold
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HttpError::BadHeader)?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::BadHeader);
        }
        if value.iter().any(|&b| b == b'\r' || b == 0 || b == b'\n') {
            return Err(HttpError::BadHeader);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(HttpError::BadContentLength)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::BadContentLength);
            }
            if content_length.is_some() {
                continue;
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let te = transfer_encoding.get_or_insert_with(Vec::new);
            if !te.is_empty() {
                te.extend_from_slice(b", ");
            }
            te.extend_from_slice(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection.extend_from_slice(value);
            connection.push(b',');
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
        // A name with '_' would alias a dashed one (X_Forwarded_For vs X-Forwarded-For).
        if name.contains(&b'_') {
            continue;
        }
        let cgi = cgi_name(name);
        match headers.iter_mut().find(|(k, _)| *k == cgi) {
            Some((_, v)) => {
                v.extend_from_slice(b", ");
                v.extend_from_slice(value);
            }
            None => headers.push((cgi, value.to_vec())),
        }
    }

    let framing = match (&transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(HttpError::AmbiguousBody),
        (Some(_), None) if version == Version::Http10 => return Err(HttpError::AmbiguousBody),
        (Some(te), None) => {
            if !trim_ows(te).eq_ignore_ascii_case(b"chunked") {
                return Err(HttpError::UnsupportedTransferEncoding);
            }
            BodyFraming::Chunked
        }
        (None, Some(0)) | (None, None) => BodyFraming::None,
        (None, Some(n)) => BodyFraming::Length(n),
    };
    let keep_alive = match version {
        Version::Http11 => !has_token(&connection, b"close"),
        Version::Http10 => has_token(&connection, b"keep-alive"),
    };

    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    let mut vars = Vars::with_capacity(head.len() + 128);
    vars.push(b"REQUEST_METHOD", method);
    vars.push(b"REQUEST_URI", target);
    vars.push(b"PATH_INFO", &path_info(path));
    vars.push(b"QUERY_STRING", query);
    vars.push(b"SERVER_PROTOCOL", version.as_bytes());
    vars.push(b"SCRIPT_NAME", b"");
    vars.push(b"SERVER_NAME", info.server_name);
    vars.push(b"SERVER_PORT", info.server_port);
    vars.push(b"REMOTE_ADDR", info.remote_addr);
    for (k, v) in &headers {
        vars.push(k, v);
    }
    Ok(HttpRequest {
        vars,
        version,
        framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::Http11,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: ConnInfo<'static> = ConnInfo {
        server_name: b"host",
        server_port: b"8080",
        remote_addr: b"127.0.0.1",
    };

    fn parse(s: &str) -> Result<HttpRequest, HttpError> {
        let b = s.as_bytes();
        let end = head_end(b, 0).expect("complete head");
        parse_request(&b[..end], &INFO)
    }

    fn var(r: &HttpRequest, k: &str) -> Option<String> {
        r.vars.get_str(k.as_bytes())
    }

    #[test]
    fn simple_get() {
        let r = parse(
            "GET /a%20b/../c?x=1&y HTTP/1.1\r\nHost: example\r\nX-Thing: 1\r\nx-thing: 2\r\n\r\n",
        )
        .unwrap();
        assert_eq!(var(&r, "REQUEST_METHOD").unwrap(), "GET");
        assert_eq!(var(&r, "REQUEST_URI").unwrap(), "/a%20b/../c?x=1&y");
        assert_eq!(var(&r, "PATH_INFO").unwrap(), "/c");
        assert_eq!(var(&r, "QUERY_STRING").unwrap(), "x=1&y");
        assert_eq!(var(&r, "SERVER_PROTOCOL").unwrap(), "HTTP/1.1");
        assert_eq!(var(&r, "SCRIPT_NAME").unwrap(), "");
        assert_eq!(var(&r, "SERVER_NAME").unwrap(), "host");
        assert_eq!(var(&r, "SERVER_PORT").unwrap(), "8080");
        assert_eq!(var(&r, "REMOTE_ADDR").unwrap(), "127.0.0.1");
        assert_eq!(var(&r, "HTTP_HOST").unwrap(), "example");
        assert_eq!(var(&r, "HTTP_X_THING").unwrap(), "1, 2");
        assert!(r.keep_alive);
        assert_eq!(r.framing, BodyFraming::None);
    }

    #[test]
    fn bodies_and_connection() {
        let r = parse("POST / HTTP/1.0\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n")
            .unwrap();
        assert_eq!(r.framing, BodyFraming::Length(5));
        assert_eq!(var(&r, "CONTENT_LENGTH").unwrap(), "5");
        assert_eq!(var(&r, "CONTENT_TYPE").unwrap(), "text/plain");
        assert!(!r.keep_alive);
        let r = parse("POST / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(r.keep_alive);
        let r = parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: foo, close\r\n\r\n").unwrap();
        assert_eq!(r.framing, BodyFraming::Chunked);
        assert!(r.expect_continue);
        assert!(!r.keep_alive);
        let r = parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!(r.framing, BodyFraming::Length(3));
    }

    #[test]
    fn refusals() {
        use HttpError::*;
        assert_eq!(parse("garbage\r\n\r\n").unwrap_err(), BadRequestLine);
        assert_eq!(
            parse("GET  / HTTP/1.1\r\n\r\n").unwrap_err(),
            BadRequestLine
        );
        assert_eq!(
            parse("GET / HTTP/2.0\r\n\r\n").unwrap_err(),
            UnsupportedVersion
        );
        assert_eq!(parse("GET / FOO\r\n\r\n").unwrap_err(), BadRequestLine);
        assert_eq!(
            parse("G\0T / HTTP/1.1\r\n\r\n").unwrap_err(),
            BadRequestLine
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n").unwrap_err(),
            BadHeader
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nA : b\r\n\r\n").unwrap_err(),
            BadHeader
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n").unwrap_err(),
            BadHeader
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nA: b\nB: c\r\n\r\n").unwrap_err(),
            BadHeader
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").unwrap_err(),
            BadContentLength
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").unwrap_err(),
            BadContentLength
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").unwrap_err(),
            BadContentLength
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n").unwrap_err(),
            BadContentLength
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap_err(),
            AmbiguousBody
        );
        assert_eq!(
            parse("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err(),
            AmbiguousBody
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap_err(),
            UnsupportedTransferEncoding
        );
        assert_eq!(UnsupportedVersion.status().0, 505);
    }

    #[test]
    fn underscore_headers_are_dropped() {
        let r = parse("GET / HTTP/1.1\r\nX_Forwarded_For: evil\r\nX-Forwarded-For: good\r\n\r\n")
            .unwrap();
        assert_eq!(var(&r, "HTTP_X_FORWARDED_FOR").unwrap(), "good");
    }

    #[test]
    fn path_info_rules() {
        let p = |s: &str| String::from_utf8(path_info(s.as_bytes())).unwrap();
        assert_eq!(p("/"), "/");
        assert_eq!(p(""), "");
        assert_eq!(p("/a//b/./c/"), "/a/b/c/");
        assert_eq!(p("/a/b/.."), "/a/");
        assert_eq!(p("/../../x"), "/x");
        assert_eq!(p("/%2e%2e/etc"), "/etc");
        assert_eq!(p("/a%zz%4"), "/a%zz%4");
        assert_eq!(p("/a#frag"), "/a");
        assert_eq!(p("http://h:1/x/y"), "/x/y");
        assert_eq!(p("HTTPS://h"), "/");
        assert_eq!(p("*"), "*");
    }

    #[test]
    fn head_end_is_incremental() {
        let b = b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest";
        assert_eq!(head_end(&b[..10], 0), None);
        assert_eq!(head_end(b, 22), Some(b.len() - 4));
        assert_eq!(head_end(b, 0), Some(b.len() - 4));
        assert_eq!(leading_newlines(b"\r\n\nGET"), 3);
    }
}
