//! Socket address forms, as uWSGI reads them: a name with a `:` is TCP (the last `:`
//! splits host and port; an empty host is every interface; port 0 or empty asks the kernel
//! for one; `[v6]:port` is IPv6), `@name` is an abstract UNIX socket, `fd://N` an inherited
//! descriptor, anything else a UNIX socket path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Longest UNIX socket path (sun_path holds 108 bytes with the terminating NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// A parsed socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// TCP; `auto_port` when the kernel picks the port.
    Tcp { addr: SocketAddr, auto_port: bool },
    /// A UNIX socket path.
    Unix(PathBuf),
    /// An abstract UNIX socket (the name without its `@`).
    Abstract(Vec<u8>),
    /// A descriptor already open (`fd://N`).
    Fd(i32),
}

/// Parses `name`. `force_abstract` is the `abstract-socket` option: every UNIX name is
/// then bound in the abstract namespace.
pub fn parse(name: &str, force_abstract: bool) -> Result<Addr, String> {
    if let Some(n) = name.strip_prefix("fd://") {
        return n
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|&fd| fd >= 0)
            .map(Addr::Fd)
            .ok_or_else(|| format!("invalid descriptor in '{name}'"));
    }
    if name.starts_with('=') {
        return Err("shared sockets (=N) are not implemented yet".into());
    }
    if let Some(colon) = name.rfind(':') {
        let (host, port) = (&name[..colon], &name[colon + 1..]);
        let port_num = if port.is_empty() {
            0
        } else {
            port.parse::<u16>()
                .map_err(|_| format!("invalid port '{port}'"))?
        };
        let ip = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            IpAddr::V6(
                v6.parse::<Ipv6Addr>()
                    .map_err(|_| format!("invalid IPv6 address '{v6}'"))?,
            )
        } else if host.is_empty() || host == "0" {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
            IpAddr::V4(v4)
        } else {
            (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve '{host}': {e}"))?
                .find(|a| a.is_ipv4())
                .map(|a| a.ip())
                .ok_or_else(|| format!("no IPv4 address for '{host}'"))?
        };
        return Ok(Addr::Tcp {
            addr: SocketAddr::new(ip, port_num),
            auto_port: port_num == 0,
        });
    }
    if let Some(abs) = name.strip_prefix('@') {
        if abs.len() > MAX_UNIX_PATH - 1 {
            return Err(format!(
                "abstract socket name longer than {} bytes",
                MAX_UNIX_PATH - 1
            ));
        }
        return Ok(Addr::Abstract(abs.as_bytes().to_vec()));
    }
    if name.len() > MAX_UNIX_PATH {
        return Err(format!(
            "UNIX socket path longer than {MAX_UNIX_PATH} bytes"
        ));
    }
    if force_abstract {
        return Ok(Addr::Abstract(name.as_bytes().to_vec()));
    }
    Ok(Addr::Unix(PathBuf::from(name)))
}

/// The name uWSGI shows for a bound TCP socket: the host as configured, then the real
/// port (so `:0` becomes `:43125`, `127.0.0.1:0` becomes `127.0.0.1:43125`).
pub fn tcp_display_name(configured: &str, port: u16) -> String {
    let host = configured.rfind(':').map_or("", |c| &configured[..c]);
    format!("{host}:{port}")
}

/// The name of an address reported by getsockname: `ip:port` (`:port` for any address),
/// `[v6]:port`, a UNIX path, or `@name`.
pub fn display_sockaddr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!(":{}", a.port()),
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// `SERVER_PORT` of a socket named `name`: what follows its last `:`, else `80`.
pub fn server_port(name: &str) -> String {
    name.rfind(':')
        .map_or_else(|| "80".to_owned(), |c| name[c + 1..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            parse(":3031", false).unwrap(),
            Addr::Tcp {
                addr: "0.0.0.0:3031".parse().unwrap(),
                auto_port: false
            }
        );
        assert_eq!(
            parse("127.0.0.1:0", false).unwrap(),
            Addr::Tcp {
                addr: "127.0.0.1:0".parse().unwrap(),
                auto_port: true
            }
        );
        assert_eq!(
            parse("127.0.0.1:", false).unwrap(),
            Addr::Tcp {
                addr: "127.0.0.1:0".parse().unwrap(),
                auto_port: true
            }
        );
        assert_eq!(
            parse("[::1]:8080", false).unwrap(),
            Addr::Tcp {
                addr: "[::1]:8080".parse().unwrap(),
                auto_port: false
            }
        );
        assert_eq!(
            parse("localhost:80", false).unwrap(),
            Addr::Tcp {
                addr: "127.0.0.1:80".parse().unwrap(),
                auto_port: false
            }
        );
        assert_eq!(
            parse("/tmp/a.sock", false).unwrap(),
            Addr::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            parse("/tmp/a.sock", true).unwrap(),
            Addr::Abstract(b"/tmp/a.sock".to_vec())
        );
        assert_eq!(
            parse("@name", false).unwrap(),
            Addr::Abstract(b"name".to_vec())
        );
        assert_eq!(parse("fd://5", false).unwrap(), Addr::Fd(5));
    }

    #[test]
    fn refusals_say_why() {
        assert!(parse(":99999", false).unwrap_err().contains("port"));
        assert!(parse(":http", false).unwrap_err().contains("port"));
        assert!(parse("[zz]:1", false).unwrap_err().contains("IPv6"));
        assert!(
            parse(&format!("/{}", "x".repeat(200)), false)
                .unwrap_err()
                .contains("longer")
        );
        assert!(parse("=0", false).is_err());
        assert!(parse("fd://x", false).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(tcp_display_name(":0", 4321), ":4321");
        assert_eq!(tcp_display_name("127.0.0.1:0", 4321), "127.0.0.1:4321");
        assert_eq!(server_port("127.0.0.1:8080"), "8080");
        assert_eq!(server_port("/tmp/s"), "80");
        assert_eq!(display_sockaddr(&"0.0.0.0:5".parse().unwrap()), ":5");
        assert_eq!(display_sockaddr(&"[::1]:5".parse().unwrap()), "[::1]:5");
    }
}
