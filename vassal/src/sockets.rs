//! The listening sockets: bound from the configuration, adopted across a reload (the
//! re-executed master finds them through `IMPERIUM_SOCKETS`), adopted from fd 0 (inetd and
//! the Emperor's on-demand sockets) or from `fd://N`, and removed at exit with `vacuum`.
//!
//! Listening sockets are non-blocking: every worker polls them and the one whose
//! accept() succeeds serves the connection; the others see EAGAIN.

use crate::addr::{self, Addr};
use crate::error::VassalError;
use crate::settings::{Protocol, Settings, SocketConf};
use crate::sys::fd as sys_fd;
use crate::vlog;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, UnixAddr,
    bind, getsockname, getsockopt, listen, setsockopt, socket, sockopt,
};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The environment variable through which a reloading master hands its listening sockets
/// to its next image: lines of `<fd>\t<configured name>`.
pub const INHERIT_VAR: &str = "IMPERIUM_SOCKETS";

/// The kind of address a listener is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Unix,
    Inet,
    Inet6,
}

/// One listening socket of the instance.
#[derive(Debug)]
pub struct Listener {
    /// uWSGI's socket number (0-based, in configuration order; fd 0 comes last).
    pub index: usize,
    /// The name shown in logs and stats (auto-assigned ports resolved).
    pub name: String,
    /// The name as configured (empty for fd 0), the key for adoption across reloads.
    pub configured: String,
    pub protocol: Protocol,
    pub family: Family,
    pub fd: OwnedFd,
    /// `SERVER_PORT` for requests on this socket.
    pub server_port: String,
    /// The path and inode of a filesystem UNIX socket (for `vacuum`).
    pub unix_path: Option<(PathBuf, u64)>,
}

impl Listener {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn borrow(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Unix => "UNIX",
        Family::Inet => "TCP",
        Family::Inet6 => "TCP6",
    }
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Whether `fd` is a listening socket.
fn is_listening(fd: BorrowedFd<'_>) -> bool {
    getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false)
}

/// The kernel's cap on listen backlogs.
fn somaxconn() -> Option<i64> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The display name and family of a bound socket, from getsockname.
pub fn socket_name(fd: BorrowedFd<'_>) -> Option<(String, Family)> {
    let ss: SockaddrStorage = getsockname(fd.as_raw_fd()).ok()?;
    if let Some(u) = ss.as_unix_addr() {
        if let Some(p) = u.path() {
            return Some((p.to_string_lossy().into_owned(), Family::Unix));
        }
        if let Some(a) = u.as_abstract() {
            return Some((format!("@{}", String::from_utf8_lossy(a)), Family::Unix));
        }
        return None;
    }
    if let Some(a) = ss.as_sockaddr_in() {
        return Some((
            addr::display_sockaddr(&std::net::SocketAddr::V4((*a).into())),
            Family::Inet,
        ));
    }
    if let Some(a) = ss.as_sockaddr_in6() {
        return Some((
            addr::display_sockaddr(&std::net::SocketAddr::V6((*a).into())),
            Family::Inet6,
        ));
    }
    None
}

/// A stream socket bound to `addr`: TCP (with `SO_REUSEADDR`, and `SO_REUSEPORT` when
/// asked), a UNIX path (a stale file there is removed first) or an abstract name. The
/// one place the instance's listening sockets and its stats server are made. The error
/// names the call that failed.
pub(crate) fn bind_stream(
    addr: &Addr,
    nonblocking: bool,
    reuse_port: bool,
) -> Result<OwnedFd, (&'static str, nix::Error)> {
    let flags = match nonblocking {
        true => SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        false => SockFlag::SOCK_CLOEXEC,
    };
    let stream =
        |family| socket(family, SockType::Stream, flags, None).map_err(|e| ("socket()", e));
    match addr {
        Addr::Tcp { addr: sa, .. } => {
            let fd = stream(match sa.is_ipv4() {
                true => AddressFamily::Inet,
                false => AddressFamily::Inet6,
            })?;
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| ("SO_REUSEADDR", e))?;
            if reuse_port {
                setsockopt(&fd, sockopt::ReusePort, &true).map_err(|e| ("SO_REUSEPORT", e))?;
            }
            match sa {
                std::net::SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(*a)),
                std::net::SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(*a)),
            }
            .map_err(|e| ("bind()", e))?;
            Ok(fd)
        }
        Addr::Unix(p) => {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                vlog!("error removing unix socket {}, unlink(): {e}", p.display());
            }
            let ua = UnixAddr::new(p.as_path()).map_err(|e| ("socket address", e))?;
            let fd = stream(AddressFamily::Unix)?;
            bind(fd.as_raw_fd(), &ua).map_err(|e| ("bind()", e))?;
            Ok(fd)
        }
        Addr::Abstract(name) => {
            let ua = UnixAddr::new_abstract(name).map_err(|e| ("socket address", e))?;
            let fd = stream(AddressFamily::Unix)?;
            bind(fd.as_raw_fd(), &ua).map_err(|e| ("bind()", e))?;
            Ok(fd)
        }
        Addr::Fd(_) => Err(("bind()", nix::Error::EINVAL)),
    }
}

/// The name a TCP socket bound from `configured` goes by: with an automatic port
/// (`:0`), the port the kernel chose.
pub(crate) fn tcp_bound_name(
    fd: BorrowedFd<'_>,
    configured: &str,
    auto_port: bool,
) -> Option<String> {
    if !auto_port {
        return Some(configured.to_owned());
    }
    let (real, _) = socket_name(fd)?;
    Some(addr::tcp_display_name(
        configured,
        addr::server_port(&real).parse().unwrap_or(0),
    ))
}

fn bind_tcp(conf: &SocketConf, addr: &Addr, settings: &Settings) -> Result<OwnedFd, VassalError> {
    let fd = bind_stream(addr, false, settings.reuse_port).map_err(|(what, e)| {
        if e == nix::Error::EADDRINUSE {
            vlog!(
                "probably another instance of uWSGI is running on the same address ({}).",
                conf.name
            );
        }
        VassalError::socket(&conf.name, format!("{what}: {e}"))
    })?;
    // As uWSGI: accept() returns a connection only once its first bytes have arrived
    // (or after socket-timeout), so a worker never parks a connection that has said
    // nothing yet. Not fatal: uWSGI only logs a failure.
    if conf.defer_accept {
        let secs = i32::try_from(settings.socket_timeout).unwrap_or(i32::MAX);
        if let Err(e) = crate::sys::net::set_defer_accept(fd.as_fd(), secs) {
            vlog!("TCP_DEFER_ACCEPT setsockopt(): {e}");
        }
    }
    Ok(fd)
}

fn bind_unix(conf: &SocketConf, addr: &Addr) -> Result<OwnedFd, VassalError> {
    if let Addr::Abstract(_) = addr {
        vlog!("setting abstract socket mode (warning: only Linux supports this)");
    }
    bind_stream(addr, false, false)
        .map_err(|(what, e)| VassalError::socket(&conf.name, format!("{what}: {e}")))
}

fn chmod_chown(path: &std::path::Path, settings: &Settings) -> Result<(), VassalError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = settings.chmod_socket {
        if mode == 0o666 {
            vlog!("chmod() socket to 666 for lazy and brave users");
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            VassalError::sys(format!("chmod-socket: chmod() {}", path.display()), e)
        })?;
    }
    if let Some(owner) = &settings.chown_socket {
        let (uid, gid) = crate::privileges::parse_owner(owner)?;
        nix::unistd::chown(path, uid, gid).map_err(|e| {
            VassalError::sys(format!("chown-socket: chown() {}", path.display()), e)
        })?;
    }
    Ok(())
}

/// Sockets handed over by the previous image of this master (a reload), by configured name.
fn take_inherited() -> Vec<(RawFd, String)> {
    let Ok(v) = std::env::var(INHERIT_VAR) else {
        return Vec::new();
    };
    crate::sys::env::remove(INHERIT_VAR);
    v.lines()
        .filter_map(|l| {
            let (fd, name) = l.split_once('\t')?;
            Some((fd.parse().ok()?, name.to_owned()))
        })
        .collect()
}

/// The configured name given to sockets from socket activation that no option names.
const ACTIVATED_MARKER: &str = "\u{1}listen-fds:";

/// systemd socket activation: `LISTEN_FDS` descriptors from fd 3 on, when `LISTEN_PID` is
/// this process. Only at the first start (the variables are removed once read).
fn take_activated() -> Vec<(OwnedFd, String, Family)> {
    let pid = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if pid != Some(std::process::id()) || n <= 0 {
        return Vec::new();
    }
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        crate::sys::env::remove(v);
    }
    vlog!("- SystemD socket activation detected -");
    (3..3 + n)
        .filter_map(|fd| {
            let owned = adopt(fd)?;
            let (name, family) = socket_name(owned.as_fd())?;
            Some((owned, name, family))
        })
        .collect()
}

/// The value of [`INHERIT_VAR`] for the next image of this master.
pub fn inherit_value(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .filter(|l| !l.configured.is_empty() && l.raw() != 0)
        .map(|l| format!("{}\t{}", l.raw(), l.configured))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Takes an inherited descriptor if it is a listening socket (closing it otherwise).
fn adopt(fd: RawFd) -> Option<OwnedFd> {
    let owned = if fd <= 2 {
        sys_fd::dup_cloexec(sys_fd::borrow(fd)).ok()?
    } else {
        sys_fd::take(fd)
    };
    is_listening(owned.as_fd()).then_some(owned)
}

/// Binds or adopts every listening socket. After a reload, the previous image's sockets
/// are taken over, never re-bound, so no connection is refused meanwhile.
pub fn setup(settings: &Settings) -> Result<Vec<Listener>, VassalError> {
    let mut inherited = take_inherited();
    let mut activated = take_activated();
    let activation_seen = !activated.is_empty();
    let mut out: Vec<Listener> = Vec::new();
    for conf in &settings.sockets {
        let index = out.len();
        let parsed = addr::parse(&conf.name, settings.abstract_socket)
            .map_err(|e| VassalError::socket(&conf.name, e))?;

        // A socket passed by systemd (socket activation) with this address.
        let wanted = match &parsed {
            Addr::Unix(p) => Some(p.to_string_lossy().into_owned()),
            Addr::Abstract(a) => Some(format!("@{}", String::from_utf8_lossy(a))),
            Addr::Tcp {
                addr: sa,
                auto_port: false,
            } => Some(addr::display_sockaddr(sa)),
            _ => None,
        };
        if let Some(pos) = wanted.and_then(|w| activated.iter().position(|(_, n, _)| *n == w)) {
            let (fd, _, family) = activated.remove(pos);
            let kind = if family == Family::Unix {
                "UNIX"
            } else {
                "INET"
            };
            vlog!(
                "uwsgi socket {index} inherited {kind} address {} fd {}",
                conf.name,
                fd.as_raw_fd()
            );
            out.push(Listener {
                index,
                server_port: addr::server_port(&conf.name),
                name: conf.name.clone(),
                configured: conf.name.clone(),
                protocol: conf.protocol,
                family,
                fd,
                unix_path: None,
            });
            continue;
        }

        // A socket of the previous image with the same configured name.
        if let Some(pos) = inherited.iter().position(|(_, n)| *n == conf.name) {
            let (fd, _) = inherited.remove(pos);
            if let Some(owned) = adopt(fd)
                && let Some((name, family)) = socket_name(owned.as_fd())
            {
                let display = if matches!(
                    parsed,
                    Addr::Tcp {
                        auto_port: true,
                        ..
                    }
                ) {
                    name.clone()
                } else {
                    conf.name.clone()
                };
                let kind = if family == Family::Unix {
                    "UNIX"
                } else {
                    "INET"
                };
                vlog!("uwsgi socket {index} inherited {kind} address {display} fd {fd}");
                let unix_path = match &parsed {
                    Addr::Unix(p) => std::fs::metadata(p).ok().map(|m| (p.clone(), m.ino())),
                    _ => None,
                };
                out.push(Listener {
                    index,
                    server_port: addr::server_port(&display),
                    name: display,
                    configured: conf.name.clone(),
                    protocol: conf.protocol,
                    family,
                    fd: owned,
                    unix_path,
                });
                continue;
            }
        }

        let (fd, name, family, auto) = match &parsed {
            Addr::Fd(n) => {
                let owned = adopt(*n).ok_or_else(|| {
                    VassalError::socket(&conf.name, format!("fd {n} is not a listening socket"))
                })?;
                let (name, family) = socket_name(owned.as_fd())
                    .ok_or_else(|| VassalError::socket(&conf.name, "getsockname() failed"))?;
                let kind = if family == Family::Unix {
                    "UNIX"
                } else {
                    "INET"
                };
                vlog!("uwsgi socket {index} inherited {kind} address {name} fd {n}");
                let unix_path = None;
                out.push(Listener {
                    index,
                    server_port: addr::server_port(&name),
                    name,
                    configured: conf.name.clone(),
                    protocol: conf.protocol,
                    family,
                    fd: owned,
                    unix_path,
                });
                continue;
            }
            Addr::Tcp {
                addr: sa,
                auto_port,
            } => {
                if let Some(max) = somaxconn()
                    && i64::from(settings.listen) > max
                {
                    return Err(VassalError::option(
                        "listen",
                        &settings.listen.to_string(),
                        &format!(
                            "Listen queue size is greater than the system max net.core.somaxconn ({max})"
                        ),
                    ));
                }
                let fd = bind_tcp(conf, &parsed, settings)?;
                let family = if sa.is_ipv4() {
                    Family::Inet
                } else {
                    Family::Inet6
                };
                let name = tcp_bound_name(fd.as_fd(), &conf.name, *auto_port)
                    .ok_or_else(|| VassalError::socket(&conf.name, "getsockname() failed"))?;
                (fd, name, family, *auto_port)
            }
            Addr::Unix(_) | Addr::Abstract(_) => (
                bind_unix(conf, &parsed)?,
                conf.name.clone(),
                Family::Unix,
                false,
            ),
        };
        listen(
            &fd,
            Backlog::new(settings.listen).unwrap_or(Backlog::MAXCONN),
        )
        .map_err(|e| VassalError::socket(&conf.name, format!("listen(): {e}")))?;
        let mut unix_path = None;
        if let Addr::Unix(p) = &parsed {
            chmod_chown(p, settings)?;
            unix_path = std::fs::metadata(p).ok().map(|m| (p.clone(), m.ino()));
        }
        let auto_note = if auto { " (port auto-assigned)" } else { "" };
        vlog!(
            "uwsgi socket {index} bound to {} address {name}{auto_note} fd {}",
            family_name(family),
            fd.as_raw_fd()
        );
        out.push(Listener {
            index,
            server_port: addr::server_port(&name),
            name,
            configured: conf.name.clone(),
            protocol: conf.protocol,
            family,
            fd,
            unix_path,
        });
    }
    // Sockets systemd passed that no option names speak the default protocol; they are
    // handed over across reloads under a marker name.
    for (fd, name, family) in activated {
        let index = out.len();
        let kind = if family == Family::Unix {
            "UNIX"
        } else {
            "INET"
        };
        vlog!(
            "uwsgi socket {index} inherited {kind} address {name} fd {}",
            fd.as_raw_fd()
        );
        out.push(Listener {
            index,
            server_port: addr::server_port(&name),
            configured: format!("{ACTIVATED_MARKER}{name}"),
            name,
            protocol: settings.default_protocol,
            family,
            fd,
            unix_path: None,
        });
    }
    let (marked, inherited): (Vec<_>, Vec<_>) = inherited
        .into_iter()
        .partition(|(_, n)| n.starts_with(ACTIVATED_MARKER));
    for (fd, configured) in marked {
        let Some(owned) = adopt(fd) else { continue };
        let Some((name, family)) = socket_name(owned.as_fd()) else {
            continue;
        };
        let index = out.len();
        let kind = if family == Family::Unix {
            "UNIX"
        } else {
            "INET"
        };
        vlog!("uwsgi socket {index} inherited {kind} address {name} fd {fd}");
        out.push(Listener {
            index,
            server_port: addr::server_port(&name),
            configured,
            name,
            protocol: settings.default_protocol,
            family,
            fd: owned,
            unix_path: None,
        });
    }
    // Whatever the previous image handed over and is no longer configured is closed.
    for (fd, name) in inherited {
        vlog!("closing inherited socket {name} (fd {fd}): no longer configured");
        drop(sys_fd::take(fd));
    }

    // fd 0: a listening socket there (inetd, the Emperor's on-demand socket) is adopted.
    let zero_used = settings.sockets.iter().any(|c| c.name.trim() == "fd://0");
    if zero_used || activation_seen {
        // fd 0 was configured explicitly (fd://0) and is already a listener.
    } else if !settings.skip_zero && is_listening(sys_fd::borrow(0)) {
        if let Some((name, family)) = socket_name(sys_fd::borrow(0)) {
            let index = out.len();
            let kind = if family == Family::Unix {
                "UNIX"
            } else {
                "INET"
            };
            vlog!("uwsgi socket {index} inherited {kind} address {name} fd 0");
            let fd = sys_fd::dup_cloexec(sys_fd::borrow(0))
                .map_err(|e| VassalError::sys("dup() of fd 0", e))?;
            out.push(Listener {
                index,
                server_port: addr::server_port(&name),
                name,
                configured: String::new(),
                protocol: settings.default_protocol,
                family,
                fd,
                unix_path: None,
            });
        }
    } else if !settings.honour_stdin
        && let Ok(null) = std::fs::File::open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    for l in &out {
        set_nonblocking(&l.fd)
            .map_err(|e| VassalError::socket(&l.name, format!("O_NONBLOCK: {e}")))?;
    }
    Ok(out)
}

/// Clears close-on-exec on every listener so the next image of the master inherits them.
pub fn keep_across_exec(listeners: &[Listener]) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    for l in listeners {
        let _ = fcntl(&l.fd, FcntlArg::F_SETFD(FdFlag::empty()));
    }
}

/// `vacuum`: removes the UNIX socket files this instance bound (unless another process
/// replaced them since).
pub fn vacuum(listeners: &[Listener]) {
    for l in listeners {
        let Some((path, ino)) = &l.unix_path else {
            continue;
        };
        match std::fs::metadata(path) {
            Ok(m) if m.ino() != *ino => vlog!(
                "VACUUM WARNING: unix socket {} changed inode. Skip removal",
                path.display()
            ),
            Ok(_) => {
                if std::fs::remove_file(path).is_ok() {
                    vlog!("VACUUM: unix socket {} removed.", path.display());
                }
            }
            Err(_) => {}
        }
    }
}

/// The client address of a connection as `REMOTE_ADDR` shows it (IPv4-mapped IPv6
/// addresses as IPv4, as uWSGI does); empty for UNIX sockets.
pub fn peer_addr(fd: BorrowedFd<'_>) -> String {
    let Ok(ss) = nix::sys::socket::getpeername::<SockaddrStorage>(fd.as_raw_fd()) else {
        return String::new();
    };
    if let Some(a) = ss.as_sockaddr_in() {
        return a.ip().to_string();
    }
    if let Some(a) = ss.as_sockaddr_in6() {
        let ip = a.ip();
        return match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => ip.to_string(),
        };
    }
    String::new()
}
