//! Configuration sources: a file path, `-` (stdin), `fd://N`, `exec://command`,
//! `http://host[:port]/path`, `emperor://name` (pushed by the Emperor over
//! `UWSGI_EMPEROR_FD_CONFIG`) and `data://N` (data appended to the binary).

use crate::magic::scheme_of;
use crate::wire;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a source needs to know about the process reading it.
#[derive(Debug, Clone, Default)]
pub struct SourceContext {
    /// The descriptor an Emperor pushes configs on (`UWSGI_EMPEROR_FD_CONFIG`).
    pub emperor_fd_config: Option<i32>,
    /// The running binary, for `data://`.
    pub binary: String,
    /// Sent as `User-Agent` by `http://`.
    pub hostname: String,
}

/// Splits `name[:section]` the way every loader does: the last `:` separates the
/// section; for URLs the search starts after the last `/`. `None` means no selector.
pub fn split_section(name: &str) -> (&str, Option<&str>) {
    let search_from = if scheme_of(name).is_some() {
        name.rfind('/').unwrap_or(0)
    } else {
        0
    };
    match name[search_from..].rfind(':') {
        Some(i) => {
            let at = search_from + i;
            (&name[..at], Some(&name[at + 1..]))
        }
        None => (name, None),
    }
}

/// The largest configuration source imperium reads (an endless source such as
/// `/dev/zero` would otherwise exhaust memory).
pub const MAX_SOURCE_BYTES: u64 = 256 << 20;

fn read_all(r: impl Read, what: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    r.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if buf.len() as u64 > MAX_SOURCE_BYTES {
        return Err(format!(
            "{what} is larger than {} MiB",
            MAX_SOURCE_BYTES >> 20
        ));
    }
    Ok(buf)
}

/// Reads the whole content of a source. Errors are sentences naming the source.
pub fn read(url: &str, ctx: &SourceContext) -> Result<Vec<u8>, String> {
    if url == "-" {
        return read_all(std::io::stdin(), "standard input");
    }
    match scheme_of(url) {
        Some(("fd", rest)) => read_fd(rest),
        Some(("exec", cmd)) => read_exec(cmd),
        Some(("http", rest)) => read_http(rest, &ctx.hostname),
        Some(("emperor", name)) => read_emperor(name, ctx),
        Some(("data", slot)) => read_data(slot, &ctx.binary),
        Some((scheme, _)) => Err(format!(
            "{url}: the {scheme}:// source reads symbols compiled into a uWSGI binary; imperium does not support it"
        )),
        None => {
            let f = std::fs::File::open(url).map_err(|e| format!("cannot open {url}: {e}"))?;
            read_all(f, url)
        }
    }
}

fn read_fd(rest: &str) -> Result<Vec<u8>, String> {
    let fd = leading_int(rest);
    let f = inherited_fd(fd, None)
        .map_err(|e| format!("fd://{rest}: cannot use descriptor {fd}: {e}"))?;
    read_all(f, &format!("fd://{rest}"))
}

/// A readable handle on an inherited descriptor (a pipe, a file or a socket), as a
/// duplicate so the original stays open. `timeout` applies to sockets (uWSGI waits 5 s
/// for each chunk of a pushed config).
fn inherited_fd(fd: i32, timeout: Option<Duration>) -> std::io::Result<Box<dyn Read>> {
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt;
    if fd < 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "negative descriptor",
        ));
    }
    // Fail cleanly on a descriptor that is not open, before borrowing it.
    std::fs::symlink_metadata(format!("/dev/fd/{fd}"))?;
    // SAFETY: `fd` was just checked to be open; it was inherited for this purpose and is
    // only borrowed long enough to duplicate it. The duplicate is owned below.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let file = std::fs::File::from(borrowed.try_clone_to_owned()?);
    if file.metadata()?.file_type().is_socket() {
        // Sockets are read with recv(), which a File cannot do.
        let stream = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
        stream.set_read_timeout(timeout)?;
        return Ok(Box::new(stream));
    }
    Ok(Box::new(file))
}

fn read_exec(cmd: &str) -> Result<Vec<u8>, String> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("exec://{cmd}: cannot run the command: {e}"))?;
    Ok(out.stdout)
}

fn read_http(rest: &str, hostname: &str) -> Result<Vec<u8>, String> {
    let url = format!("http://{rest}");
    let Some(slash) = rest.find('/') else {
        return Err(format!("{url}: invalid http url (no path)"));
    };
    let (authority, path) = rest.split_at(slash);
    let addr = if authority.rfind(':').is_some() {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{url}: unable to resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: unable to resolve {authority}"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
        .map_err(|e| format!("{url}: cannot connect to {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: imperium on {hostname}\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{url}: cannot send the request: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("{url}: cannot read the response: {e}"))?;
    let head_end =
        find(&resp, b"\r\n\r\n").ok_or_else(|| format!("{url}: malformed HTTP response"))?;
    let status_line =
        String::from_utf8_lossy(&resp[..find(&resp, b"\r\n").unwrap_or(head_end)]).into_owned();
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if !code.starts_with('2') {
        return Err(format!("{url}: not usable HTTP response: {status_line}"));
    }
    Ok(resp[head_end + 4..].to_vec())
}

fn read_emperor(name: &str, ctx: &SourceContext) -> Result<Vec<u8>, String> {
    let Some(fd) = ctx.emperor_fd_config else {
        return Err(format!(
            "emperor://{name}: this is not a vassal instance (UWSGI_EMPEROR_FD_CONFIG is not set)"
        ));
    };
    // The Emperor hands the config over a socketpair (or a pipe): read the descriptor
    // itself, /dev/fd cannot reopen a socket.
    let mut f = inherited_fd(fd, Some(Duration::from_secs(5)))
        .map_err(|e| format!("emperor://{name}: cannot use the config descriptor {fd}: {e}"))?;
    wire::read_pushed_config(&mut f).map_err(|e| format!("emperor://{name}: {e}"))
}

/// `data://N`: the N-th blob appended to the binary, counted from its end. Each blob is
/// followed by its size as a little-endian u64.
fn read_data(slot: &str, binary: &str) -> Result<Vec<u8>, String> {
    let slot: i64 = leading_int(slot).into();
    if slot < 0 {
        return Err(format!("data://{slot}: invalid binary data slot"));
    }
    let err = |e: std::io::Error| format!("data://{slot}: {binary}: {e}");
    let mut f = std::fs::File::open(binary).map_err(err)?;
    let mut pos = f.seek(SeekFrom::End(0)).map_err(err)?;
    for i in 0..=slot {
        if pos < 8 {
            return Err(format!("data://{slot}: invalid binary data slot"));
        }
        f.seek(SeekFrom::Start(pos - 8)).map_err(err)?;
        let mut sz = [0u8; 8];
        f.read_exact(&mut sz).map_err(err)?;
        let size = u64::from_le_bytes(sz);
        if size == 0 || size > pos - 8 {
            return Err(format!("data://{slot}: invalid binary data slot"));
        }
        let start = pos - 8 - size;
        if i == slot {
            f.seek(SeekFrom::Start(start)).map_err(err)?;
            let mut buf = vec![0u8; size as usize];
            f.read_exact(&mut buf).map_err(err)?;
            return Ok(buf);
        }
        pos = start;
    }
    Err(format!("data://{slot}: invalid binary data slot"))
}

/// `atoi`: the leading decimal digits (with an optional sign), 0 when there are none.
pub fn leading_int(s: &str) -> i32 {
    crate::expand::strtoll(s).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
