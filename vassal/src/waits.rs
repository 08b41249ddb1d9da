//! Startup waits, as uWSGI does them: `wait-for-interface` (a network interface exists),
//! `wait-for-fs`/`wait-for-file`/`wait-for-dir` (a path, a regular file, a directory),
//! `wait-for-mountpoint` (a directory on another device than its parent) before the root
//! hooks, and `wait-for-socket` (a TCP `host:port` or UNIX socket accepts) before the
//! privileges are dropped. Each checks once a second up to its timeout (60 s by default);
//! running out stops the instance.

use crate::vlog;
use imperium_config::Config;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// What a path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Any,
    File,
    Dir,
}

fn poll_until(what: &str, timeout: u64, mut ok: impl FnMut() -> bool) -> bool {
    vlog!("waiting for {what} (max {timeout} seconds) ...");
    let mut counter = 0;
    loop {
        if ok() {
            return true;
        }
        if counter >= timeout {
            vlog!("{what} unavailable after {counter} seconds");
            return false;
        }
        std::thread::sleep(Duration::from_secs(1));
        counter += 1;
    }
}

/// Waits for a path of `kind`.
pub fn fs(path: &str, kind: Kind, timeout: u64) -> bool {
    let r = poll_until(path, timeout, || match std::fs::metadata(path) {
        Ok(m) => match kind {
            Kind::Any => true,
            Kind::File => m.is_file(),
            Kind::Dir => m.is_dir(),
        },
        Err(_) => false,
    });
    if r {
        vlog!("{path} found");
    }
    r
}

/// Waits until `path` is a mountpoint.
pub fn mountpoint(path: &str, timeout: u64) -> bool {
    let r = poll_until(path, timeout, || {
        let (Ok(m), Ok(parent)) = (
            std::fs::metadata(path),
            std::fs::metadata(format!("{path}/..")),
        ) else {
            return false;
        };
        m.is_dir() && m.dev() != parent.dev()
    });
    if r {
        vlog!("{path} mounted");
    }
    r
}

/// Waits until a socket accepts a connection (`host:port`, or a UNIX path).
pub fn socket(name: &str, timeout: u64) -> bool {
    let r = poll_until(name, timeout, || {
        if name.contains(':') && !name.starts_with('/') {
            use std::net::ToSocketAddrs;
            name.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .is_some_and(|a| {
                    std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok()
                })
        } else {
            std::os::unix::net::UnixStream::connect(name).is_ok()
        }
    });
    if r {
        vlog!("{name} ready");
    }
    r
}

/// Waits until a network interface exists.
pub fn interface(name: &str, timeout: u64) -> bool {
    let r = poll_until(&format!("interface {name}"), timeout, || {
        nix::net::if_::if_nametoindex(name).is_ok()
    });
    if let (true, Ok(i)) = (r, nix::net::if_::if_nametoindex(name)) {
        vlog!("interface {name} found with index {i}");
    }
    r
}

fn timeout(config: &Config, name: &str) -> u64 {
    match config.int_or(name, 60).unwrap_or(60) {
        n if n > 0 => n as u64,
        _ => 60,
    }
}

/// The waits that come before the root hooks; false when one ran out.
pub fn before_root(config: &Config) -> bool {
    let it = timeout(config, "wait-for-interface-timeout");
    for v in config.get_all("wait-for-interface") {
        if !interface(v.trim(), it) {
            return false;
        }
    }
    let ft = timeout(config, "wait-for-fs-timeout");
    for e in config.entries() {
        let kind = match e.key.as_str() {
            "wait-for-fs" => Kind::Any,
            "wait-for-file" => Kind::File,
            "wait-for-dir" => Kind::Dir,
            "wait-for-mountpoint" => {
                if !mountpoint(e.value.trim(), ft) {
                    return false;
                }
                continue;
            }
            _ => continue,
        };
        if !fs(e.value.trim(), kind, ft) {
            return false;
        }
    }
    true
}

/// `wait-for-socket`; false when one ran out.
pub fn sockets(config: &Config) -> bool {
    let t = timeout(config, "wait-for-socket-timeout");
    config
        .get_all("wait-for-socket")
        .into_iter()
        .all(|v| socket(v.trim(), t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_successes_and_timeouts() {
        assert!(fs("/", Kind::Dir, 0));
        assert!(!fs("/", Kind::File, 0));
        assert!(interface("lo", 0));
        assert!(!interface("surely-no-such-if", 0));
        assert!(mountpoint("/proc", 0));
        assert!(!mountpoint("/proc/self", 0));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(socket(&l.local_addr().unwrap().to_string(), 0));
    }
}
