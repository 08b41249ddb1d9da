//! Helpers for the Python integration tests: the vassal helpers (the real binary, scratch
//! dirs, log polling), the check that the CPython plugin was built next to the binary,
//! the test apps, and a small HTTP/1.1 client that understands Content-Length, chunked
//! and close-delimited bodies.
#![allow(dead_code)]

#[path = "../vassal_support/mod.rs"]
pub mod vs;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
pub use vs::*;

/// The plugin cargo builds beside the binary. `cargo test` alone does not produce a
/// cdylib's plain artifact, so the first call in each test binary runs
/// `cargo build -p imperium-python` for the binary's profile (cargo does not hold its
/// build lock while tests run); the plugin is then always as fresh as the sources.
pub fn plugin_path() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let dir = Path::new(BIN).parent().unwrap();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "imperium-python"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd
            .output()
            .expect("running cargo build -p imperium-python");
        assert!(
            out.status.success(),
            "cargo build -p imperium-python failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let p = dir.join("libimperium_python.so");
    assert!(
        p.is_file(),
        "the CPython plugin is missing at {} (run `cargo build -p imperium-python`)",
        p.display()
    );
    p
}

/// The directory of the test apps.
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

/// An app file's path.
pub fn app(name: &str) -> String {
    apps_dir().join(name).to_string_lossy().into_owned()
}

/// Starts an instance (plugin present checked first).
pub fn start(s: &Scratch, args: &[&str]) -> Instance {
    plugin_path();
    Instance::start(s, args)
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.head, self.text()))
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

fn read_head(c: &mut impl Read) -> Option<String> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match c.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => {
                return if got.is_empty() {
                    None
                } else {
                    Some(String::from_utf8_lossy(&got).into_owned())
                };
            }
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// Reads one response from `c` (`head_request`: no body follows).
pub fn read_resp(c: &mut impl Read, head_request: bool) -> Option<Resp> {
    let head = read_head(c)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut r = Resp {
        status,
        head: head.clone(),
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 {
        return Some(r);
    }
    if let Some(n) = r.header("content-length") {
        let mut body = vec![0u8; n.parse().unwrap()];
        c.read_exact(&mut body).ok()?;
        r.body = body;
    } else if r
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while !line.ends_with(b"\r\n") {
                c.read_exact(&mut b).ok()?;
                line.push(b[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            c.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            r.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        c.read_to_end(&mut r.body).ok()?;
    }
    Some(r)
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the response.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Resp {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n")
        .into_bytes();
    if !body.is_empty() || method == "POST" {
        req.extend_from_slice(
            format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    c.write_all(&req).unwrap();
    read_resp(&mut c, method == "HEAD").unwrap_or_else(|| panic!("no response to {method} {path}"))
}

/// GET over HTTP.
pub fn get(port: u16, path: &str) -> Resp {
    http(port, "GET", path, b"")
}

/// A request over the uwsgi protocol (vars as a web server sends them); the raw answer.
pub fn uwsgi_request(port: u16, vars: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    let mut pkt = uwsgi_packet(vars);
    pkt.extend_from_slice(body);
    c.write_all(&pkt).unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(all.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head,
        body: all[end..].to_vec(),
    }
}

/// A uwsgi GET for `path` with the vars nginx's uwsgi_params sends.
pub fn uwsgi_get_path(port: u16, path: &str) -> Resp {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    uwsgi_request(
        port,
        &[
            ("QUERY_STRING", q),
            ("REQUEST_METHOD", "GET"),
            ("CONTENT_TYPE", ""),
            ("CONTENT_LENGTH", ""),
            ("REQUEST_URI", path),
            ("PATH_INFO", p),
            ("DOCUMENT_ROOT", "/var/www"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "40000"),
            ("SERVER_PORT", "80"),
            ("SERVER_NAME", "localhost"),
            ("HTTP_HOST", "localhost"),
        ],
        b"",
    )
}

/// Asserts that no wsgiref.validate assertion (or other Python error) reached the log.
pub fn assert_no_python_errors(i: &Instance) {
    let log = i.stderr();
    for bad in ["AssertionError", "Traceback", "Exception ignored"] {
        assert!(!log.contains(bad), "{bad} in the log:\n{log}");
    }
}
