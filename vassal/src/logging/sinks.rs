//! Where the master's logger writes lines: the original log (a file from `logto`, a UDP
//! address, or the inherited standard error), `file:<path>` (or
//! `file:logfile=<path>,maxsize=<bytes>,backupname=<path>`), `syslog[:ident[,facility]]`
//! (RFC 3164 datagrams to /dev/log, as libc's syslog(3) sends them),
//! `rsyslog:<host:port | path>[,ident[,priority]]` (the same over UDP to a remote syslog),
//! `socket:<path | host:port>` (unconnected datagrams), `pipe:<command>` (the command's
//! standard input), `fd:<n>` and `stdio`.

use crate::error::VassalError;
use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// One destination.
#[derive(Debug)]
pub enum Sink {
    /// A descriptor kept as is (the inherited standard error).
    Fd(OwnedFd),
    /// A log file, reopenable; rotated past `maxsize` bytes when that is set.
    File {
        path: PathBuf,
        file: std::fs::File,
    },
    /// `file:` with its own rotation.
    RotatingFile {
        path: PathBuf,
        file: std::fs::File,
        maxsize: u64,
        backup: Option<String>,
    },
    /// `rsyslog:`: RFC 3164 over UDP (or a UNIX datagram path), uWSGI's framing.
    Rsyslog {
        sock: UdpSocket,
        ident: String,
        priority: u32,
    },
    RsyslogUnix {
        sock: UnixDatagram,
        path: PathBuf,
        ident: String,
        priority: u32,
    },
    /// `pipe:`: the standard input of a command the master started.
    Pipe {
        stdin: std::process::ChildStdin,
        _child: std::process::Child,
    },
    Udp(UdpSocket),
    Unix {
        sock: UnixDatagram,
        path: PathBuf,
    },
    Syslog {
        ident: String,
        facility: u8,
        sock: UnixDatagram,
    },
}

/// The syslog facilities by name (uWSGI's list).
fn facility(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" | "security" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        n => {
            let d = n
                .strip_prefix("local")?
                .parse::<u8>()
                .ok()
                .filter(|d| *d <= 7)?;
            16 + d
        }
    })
}

/// The path syslog datagrams go to.
pub const SYSLOG_PATH: &str = "/dev/log";

/// Opens a file for appending (mode 0640, as uWSGI's logto).
pub fn open_log_file(path: &str, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).mode(0o640);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path)
}

/// A UDP socket connected to `host:port` (`logto`, `socket:` loggers).
pub fn udp_to(addr: &str) -> std::io::Result<UdpSocket> {
    use std::net::ToSocketAddrs;
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let bind = if target.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(target)?;
    Ok(s)
}

impl Sink {
    /// A logger from its `plugin[:args]` spec (the part after an optional name).
    pub fn from_spec(spec: &str) -> Result<Sink, VassalError> {
        let (plugin, arg) = match spec.split_once(':') {
            Some((p, a)) => (p, Some(a).filter(|a| !a.is_empty())),
            None => (spec, None),
        };
        let bad = |why: String| VassalError::option("logger", spec, &why);
        match plugin {
            "file" => {
                let a = arg.ok_or_else(|| bad("file: needs a path".into()))?;
                if a.contains('=') {
                    let (mut path, mut maxsize, mut backup) = (None, 0u64, None);
                    for kv in a.split(',') {
                        match kv.split_once('=') {
                            Some(("logfile", v)) => path = Some(v.to_owned()),
                            Some(("maxsize", v)) => {
                                maxsize = v
                                    .trim()
                                    .parse()
                                    .map_err(|_| bad(format!("maxsize: not a number: {v}")))?
                            }
                            Some(("backupname", v)) => backup = Some(v.to_owned()),
                            _ => return Err(bad("[uwsgi-logfile] invalid keyval syntax".into())),
                        }
                    }
                    let path =
                        path.ok_or_else(|| bad("[uwsgi-logfile] missing logfile key".into()))?;
                    let file =
                        open_log_file(&path, false).map_err(|e| bad(format!("open(): {e}")))?;
                    return Ok(Sink::RotatingFile {
                        path: PathBuf::from(path),
                        file,
                        maxsize,
                        backup,
                    });
                }
                let file = open_log_file(a, false).map_err(|e| bad(format!("open(): {e}")))?;
                Ok(Sink::File {
                    path: PathBuf::from(a),
                    file,
                })
            }
            "rsyslog" => {
                let a = arg.ok_or_else(|| bad("invalid rsyslog syntax".into()))?;
                let mut parts = a.splitn(3, ',');
                let addr = parts.next().unwrap_or_default();
                let host = nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ident = parts
                    .next()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{host} uwsgi"));
                let priority = parts
                    .next()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(29);
                if addr.starts_with('/') {
                    let sock =
                        UnixDatagram::unbound().map_err(|e| bad(format!("socket(): {e}")))?;
                    Ok(Sink::RsyslogUnix {
                        sock,
                        path: PathBuf::from(addr),
                        ident,
                        priority,
                    })
                } else {
                    Ok(Sink::Rsyslog {
                        sock: udp_to(addr).map_err(|e| bad(format!("{e}")))?,
                        ident,
                        priority,
                    })
                }
            }
            "pipe" => {
                let cmd = arg.ok_or_else(|| bad("pipe: needs a command".into()))?;
                let mut child = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::piped())
                    .process_group(0)
                    .spawn()
                    .map_err(|e| bad(format!("cannot run {cmd}: {e}")))?;
                let stdin = child.stdin.take().ok_or_else(|| bad("no stdin".into()))?;
                Ok(Sink::Pipe {
                    stdin,
                    _child: child,
                })
            }
            "fd" => {
                let n: i32 = arg
                    .and_then(|a| a.trim().parse().ok())
                    .ok_or_else(|| bad("fd: needs a descriptor number".into()))?;
                Ok(Sink::Fd(
                    crate::sys::fd::dup_cloexec(crate::sys::fd::borrow(n))
                        .map_err(|e| bad(format!("dup({n}): {e}")))?,
                ))
            }
            "syslog" => {
                let (ident, fac) = match arg {
                    None => ("uwsgi".to_owned(), 3),
                    Some(a) => match a.split_once(',') {
                        Some((i, f)) => (i.to_owned(), facility(f).unwrap_or(3)),
                        None => (a.to_owned(), 3),
                    },
                };
                let sock = UnixDatagram::unbound().map_err(|e| bad(format!("socket(): {e}")))?;
                Ok(Sink::Syslog {
                    ident,
                    facility: fac,
                    sock,
                })
            }
            "socket" => {
                let a = arg.ok_or_else(|| bad("socket: needs an address".into()))?;
                if a.contains(':') && !a.starts_with('/') {
                    Ok(Sink::Udp(udp_to(a).map_err(|e| bad(format!("{e}")))?))
                } else {
                    Ok(Sink::Unix {
                        sock: UnixDatagram::unbound().map_err(|e| bad(format!("socket(): {e}")))?,
                        path: PathBuf::from(a),
                    })
                }
            }
            "stdio" | "stderr" => Ok(Sink::Fd(
                crate::sys::fd::dup_cloexec(crate::sys::fd::borrow(2))
                    .map_err(|e| bad(format!("dup(): {e}")))?,
            )),
            other => Err(bad(format!(
                "unable to find logger {other} (imperium has file, syslog, rsyslog, socket, pipe, fd and stdio)"
            ))),
        }
    }

    /// Writes one line (it carries its newline). Errors are dropped: a logger that fails
    /// must not take the master down.
    pub fn write(&mut self, line: &[u8]) {
        match self {
            Sink::Fd(fd) => {
                let _ = nix::unistd::write(&*fd, line);
            }
            Sink::File { file, .. } => {
                let _ = file.write_all(line);
            }
            Sink::RotatingFile { file, maxsize, .. } => {
                let _ = file.write_all(line);
                if *maxsize > 0 && file.metadata().is_ok_and(|m| m.len() > *maxsize) {
                    let _ = self.rotate(None);
                }
            }
            Sink::Rsyslog {
                sock,
                ident,
                priority,
            } => {
                let _ = sock.send(&rsyslog_packet(*priority, ident, line));
            }
            Sink::RsyslogUnix {
                sock,
                path,
                ident,
                priority,
            } => {
                let _ = sock.send_to(&rsyslog_packet(*priority, ident, line), &*path);
            }
            Sink::Pipe { stdin, .. } => {
                let _ = stdin.write_all(line);
            }
            Sink::Udp(s) => {
                let _ = s.send(line);
            }
            Sink::Unix { sock, path } => {
                let _ = sock.send_to(line, &*path);
            }
            Sink::Syslog {
                ident,
                facility,
                sock,
            } => {
                let msg = line.strip_suffix(b"\n").unwrap_or(line);
                let stamp =
                    crate::sys::clock::strftime("%b %e %H:%M:%S", crate::sys::clock::now_secs());
                let mut d =
                    format!("<{}>{stamp} {ident}: ", u32::from(*facility) * 8 + 6).into_bytes();
                d.extend_from_slice(msg);
                let _ = sock.send_to(&d, SYSLOG_PATH);
            }
        }
    }

    /// Reopens a file sink at its path (`log-reopen`, FIFO `l`); the old file gets a note.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        if let Sink::File { path, file } | Sink::RotatingFile { path, file, .. } = self {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = writeln!(
                file,
                "[{}] logsize: {size}, triggering log-reopen...",
                crate::sys::clock::now_secs()
            );
            *file = open_log_file(&path.to_string_lossy(), false)?;
            let _ = writeln!(
                file,
                "[{}] {} reopened.",
                crate::sys::clock::now_secs(),
                path.display()
            );
        }
        Ok(())
    }

    /// Renames a file sink to `backup` (or `<path>.<unixtime>`) and starts a new file
    /// (`log-maxsize`, FIFO `L`).
    pub fn rotate(&mut self, backup: Option<&str>) -> std::io::Result<()> {
        let own_backup = match self {
            Sink::RotatingFile { backup, .. } => backup.clone(),
            _ => None,
        };
        let backup = backup.map(str::to_owned).or(own_backup);
        if let Sink::File { path, file } | Sink::RotatingFile { path, file, .. } = self {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let to = backup.map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(format!(
                    "{}.{}",
                    path.display(),
                    crate::sys::clock::now_secs()
                ))
            });
            let _ = writeln!(
                file,
                "logsize: {size}, triggering rotation to {}...",
                to.display()
            );
            std::fs::rename(&*path, &to)?;
            *file = open_log_file(&path.to_string_lossy(), true)?;
        }
        Ok(())
    }

    /// The size of a file sink.
    pub fn size(&self) -> Option<u64> {
        match self {
            Sink::File { file, .. } | Sink::RotatingFile { file, .. } => {
                file.metadata().ok().map(|m| m.len())
            }
            _ => None,
        }
    }
}

/// uWSGI's rsyslog framing: `<PRI>Mmm dd hh:mm:ss ident: message`, the message cut at 994
/// bytes, without its newline.
fn rsyslog_packet(priority: u32, ident: &str, line: &[u8]) -> Vec<u8> {
    let msg = line.strip_suffix(b"\n").unwrap_or(line);
    let msg = &msg[..msg.len().min(994)];
    let ct = crate::sys::clock::ctime(crate::sys::clock::now_secs());
    let stamp = ct.get(4..19).unwrap_or("");
    let mut p = format!("<{priority}>{stamp} {ident}: ").into_bytes();
    p.extend_from_slice(msg);
    p
}
