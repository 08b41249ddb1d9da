//! Binding the Emperor's own listening sockets (stats, command): an address with `:` is
//! TCP (`:port` means every interface), anything else a UNIX socket path (`@name` for an
//! abstract one). A socket passed by systemd (LISTEN_FDS) is used instead of binding when
//! its name or its address matches.

use crate::EmperorError;
use crate::emperor::Listener;
use imperium_systemd::ListenFd;
use nix::sys::socket::{SockaddrStorage, getsockname};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

fn matches_addr(fd: &ListenFd, addr: &str) -> bool {
    let Ok(sa) = getsockname::<SockaddrStorage>(fd.fd.as_raw_fd()) else {
        return false;
    };
    if let Some(un) = sa.as_unix_addr() {
        if let Some(p) = un.path() {
            return p == std::path::Path::new(addr);
        }
        if let Some(a) = un.as_abstract() {
            return addr.strip_prefix('@').is_some_and(|n| n.as_bytes() == a);
        }
        return false;
    }
    let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    if let Some(v4) = sa.as_sockaddr_in() {
        return port == Some(v4.port());
    }
    if let Some(v6) = sa.as_sockaddr_in6() {
        return port == Some(v6.port());
    }
    false
}

fn is_unix(fd: &ListenFd) -> bool {
    getsockname::<SockaddrStorage>(fd.fd.as_raw_fd())
        .ok()
        .is_some_and(|sa| sa.as_unix_addr().is_some())
}

/// Binds (or takes from systemd) one listening socket, non-blocking.
pub fn listen(
    addr: &str,
    names: &[&str],
    activated: &mut Vec<ListenFd>,
    _backlog: i32,
    chmod: Option<u32>,
) -> Result<Listener, EmperorError> {
    let pick = activated
        .iter()
        .position(|f| names.contains(&f.name.as_str()))
        .or_else(|| activated.iter().position(|f| matches_addr(f, addr)));
    if let Some(i) = pick {
        let f = activated.remove(i);
        let l = if is_unix(&f) {
            Listener::Unix(UnixListener::from(f.fd), None)
        } else {
            Listener::Tcp(TcpListener::from(f.fd))
        };
        set_nonblocking(&l).map_err(|e| EmperorError::sys(format!("socket {addr}"), e))?;
        return Ok(l);
    }
    let l = if addr.contains(':') {
        let a = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else {
            addr.to_owned()
        };
        Listener::Tcp(
            TcpListener::bind(&a).map_err(|e| EmperorError::sys(format!("bind({addr})"), e))?,
        )
    } else if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| EmperorError::sys(format!("bind({addr})"), e))?;
        Listener::Unix(
            UnixListener::bind_addr(&sa)
                .map_err(|e| EmperorError::sys(format!("bind({addr})"), e))?,
            None,
        )
    } else {
        let _ = std::fs::remove_file(addr);
        let ul =
            UnixListener::bind(addr).map_err(|e| EmperorError::sys(format!("bind({addr})"), e))?;
        if let Some(mode) = chmod {
            std::fs::set_permissions(addr, std::fs::Permissions::from_mode(mode))
                .map_err(|e| EmperorError::sys(format!("chmod({addr})"), e))?;
        }
        Listener::Unix(ul, Some(PathBuf::from(addr)))
    };
    set_nonblocking(&l).map_err(|e| EmperorError::sys(format!("socket {addr}"), e))?;
    Ok(l)
}

fn set_nonblocking(l: &Listener) -> std::io::Result<()> {
    match l {
        Listener::Tcp(t) => t.set_nonblocking(true),
        Listener::Unix(u, _) => u.set_nonblocking(true),
    }
}
