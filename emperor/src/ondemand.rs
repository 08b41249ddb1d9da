//! On-demand vassals: where the socket name comes from (`emperor-on-demand-extension`,
//! `-directory`, `-exec`, or the monitor itself) and binding it. The Emperor keeps the
//! listening socket; the vassal gets a copy as fd 0 when the first client connects.

use crate::settings::Settings;
use imperium_monitors::Monitor;
use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

/// The text up to the first control byte, as uWSGI reads socket names.
fn first_line(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b < 0x20).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(&bytes[..end]).into_owned();
    if s.is_empty() { None } else { Some(s) }
}

/// The on-demand socket of a vassal, if it has one.
pub fn socket_name(settings: &Settings, monitor: &dyn Monitor, name: &str) -> Option<String> {
    if let Some(ext) = &settings.on_demand_extension {
        let mut p = monitor.config_path(name).into_os_string();
        p.push(ext);
        return std::fs::read(p).ok().and_then(|b| first_line(&b));
    }
    if let Some(dir) = &settings.on_demand_directory {
        let base = name.rsplit('/').next().unwrap_or(name);
        let stem = base.rfind('.').map(|i| &base[..i])?;
        return Some(format!("{dir}/{stem}.socket"));
    }
    if let Some(cmd) = &settings.on_demand_exec {
        // Runs once per new vassal, like uWSGI (a short command is expected).
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{cmd} \"{name}\""))
            .output()
            .ok()?;
        return first_line(&out.stdout);
    }
    None
}

/// Binds an on-demand socket: TCP when the name has a `:` (empty host: every interface),
/// otherwise a UNIX socket (old file removed, mode 0666), `@name` for an abstract one.
pub fn bind(name: &str, _backlog: i32) -> io::Result<OwnedFd> {
    if name.contains(':') {
        let a = if name.starts_with(':') {
            format!("0.0.0.0{name}")
        } else {
            name.to_owned()
        };
        let l = TcpListener::bind(a)?;
        return Ok(OwnedFd::from(l));
    }
    if let Some(abs) = name.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(abs.as_bytes())?;
        return Ok(OwnedFd::from(UnixListener::bind_addr(&sa)?));
    }
    let _ = std::fs::remove_file(name);
    let l = UnixListener::bind(name)?;
    std::fs::set_permissions(name, std::fs::Permissions::from_mode(0o666))?;
    Ok(OwnedFd::from(l))
}

/// Removes a UNIX on-demand socket file.
pub fn unlink(name: &str) {
    if !name.contains(':') && !name.starts_with('@') {
        let _ = std::fs::remove_file(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stop_at_control_bytes() {
        assert_eq!(first_line(b"/run/a.sock\nrest"), Some("/run/a.sock".into()));
        assert_eq!(first_line(b"\n"), None);
        assert_eq!(first_line(b"127.0.0.1:8000"), Some("127.0.0.1:8000".into()));
    }
}
