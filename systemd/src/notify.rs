//! `sd_notify`: newline-separated `KEY=VALUE` assignments in one datagram sent to the
//! `AF_UNIX` socket named by `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

/// An abstract socket address (Linux only; elsewhere such a name is unusable).
#[cfg(target_os = "linux")]
fn abstract_addr(name: &str) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &str) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

impl Notifier {
    /// The notifier named by `NOTIFY_SOCKET`, if set and usable.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var("NOTIFY_SOCKET").ok()?;
        Notifier::new(&path).ok()
    }

    /// A notifier for an explicit socket name (`/run/...` or `@abstract`).
    pub fn new(name: &str) -> io::Result<Notifier> {
        let addr = if let Some(abs) = name.strip_prefix('@') {
            abstract_addr(abs)?
        } else {
            SocketAddr::from_pathname(name)?
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Notifier { sock, addr })
    }

    /// Sends raw assignments (`"READY=1\nSTATUS=..."`).
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.sock
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(|_| ())
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={status}\n"))
    }

    /// `STATUS=...`.
    pub fn status(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STATUS={status}\n"))
    }

    /// `RELOADING=1` with the `MONOTONIC_USEC` that `Type=notify-reload` requires.
    pub fn reloading(&self, status: &str) -> io::Result<()> {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={status}\n",
            monotonic_usec()
        ))
    }

    /// `STOPPING=1`.
    pub fn stopping(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STOPPING=1\nSTATUS={status}\n"))
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1\n")
    }
}

/// CLOCK_MONOTONIC in microseconds.
pub fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1000,
        Err(_) => 0,
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when the watchdog is for
/// this process (`WATCHDOG_PID` unset or equal to our pid).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams() {
        let path = std::env::temp_dir().join(format!("imperium-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.to_str().unwrap()).unwrap();
        n.ready("hello").unwrap();
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=hello\n");
        n.reloading("r").unwrap();
        let len = rx.recv(&mut buf).unwrap();
        let s = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(s.starts_with("RELOADING=1\nMONOTONIC_USEC="));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn abstract_sockets() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("imperium-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        Notifier::new(&format!("@{name}"))
            .unwrap()
            .watchdog()
            .unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
    }
}
