//! External daemons attached to the master: `attach-daemon`, `attach-control-daemon`,
//! `smart-attach-daemon`, `smart-attach-daemon2` and `attach-daemon2` (keyval form).
//!
//! A "dumb" daemon (no pidfile) stays in the foreground as the master's child: it is
//! respawned when it dies (throttled when it dies within 3 seconds of its spawn), dies with
//! the master (`PR_SET_PDEATHSIG`), and is stopped when the instance stops or reloads: its
//! stop signal (SIGTERM by default) goes to its process group every second, then SIGKILL
//! after `reload-mercy` (3 s when unset). A "smart" daemon is governed through its pidfile:
//! the master checks it every second and runs the command again when the pid in it is gone;
//! it survives the instance's stop and reload (the next generation adopts it). With
//! `daemonize` (smart2) the master itself detaches the command and writes the pidfile.
//! A `control` daemon's death stops the whole instance.
//!
//! Commands run as `/bin/sh -c <command>` (or the first `binsh`), in a new session, with
//! stdin on /dev/null and no descriptor of the instance beyond 0-2.

use crate::sys::{self, Forked};
use crate::touch::Touches;
use crate::vlog;
use imperium_config::Config;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One configured daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub command: String,
    pub pidfile: Option<PathBuf>,
    /// smart2: the master detaches the command and writes its pidfile.
    pub daemonize: bool,
    /// Its death stops the instance.
    pub control: bool,
    /// Pidfile checks before a smart daemon counts as not having daemonized.
    pub freq: u32,
    pub touch: Vec<PathBuf>,
    pub stop_signal: i32,
    pub reload_signal: i32,
    pub honour_stdin: bool,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub chdir: Option<PathBuf>,
    pub max_throttle: u64,
}

impl Spec {
    fn new(command: &str) -> Spec {
        Spec {
            command: command.trim().to_owned(),
            pidfile: None,
            daemonize: false,
            control: false,
            freq: 10,
            touch: Vec::new(),
            stop_signal: libc::SIGTERM,
            reload_signal: 0,
            honour_stdin: false,
            uid: None,
            gid: None,
            chdir: None,
            max_throttle: 0,
        }
    }
}

/// Splits `a=1,b=2` on commas not preceded by a backslash (`\,` is a literal comma).
fn kvlist(v: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    items.push(cur);
    items
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

/// Parses `attach-daemon2`'s keyval form.
pub fn parse_keyval(v: &str) -> Result<Spec, String> {
    let mut spec = Spec::new("");
    for (k, val) in kvlist(v) {
        let num = |val: &str| {
            val.trim()
                .parse::<i64>()
                .map_err(|_| format!("attach-daemon2: {k} expects a number, got '{val}'"))
        };
        match k.as_str() {
            "command" | "cmd" | "exec" => spec.command = val.trim().to_owned(),
            "freq" => spec.freq = num(&val)?.max(1) as u32,
            "pidfile" => spec.pidfile = Some(PathBuf::from(val.trim())),
            "control" => spec.control = true,
            "daemonize" | "daemon" => spec.daemonize = true,
            "touch" => {
                spec.touch = val
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            }
            "stopsignal" | "stop_signal" => spec.stop_signal = num(&val)? as i32,
            "reloadsignal" | "reload_signal" => spec.reload_signal = num(&val)? as i32,
            "stdin" => spec.honour_stdin = true,
            "uid" => spec.uid = Some(val.trim().to_owned()),
            "gid" => spec.gid = Some(val.trim().to_owned()),
            "chdir" => spec.chdir = Some(PathBuf::from(val.trim())),
            "max_throttle" => spec.max_throttle = num(&val)?.max(0) as u64,
            "ns_pid" | "notifypid" | "legion" => {
                return Err(format!(
                    "attach-daemon2: key '{k}' is not supported by imperium"
                ));
            }
            other => {
                return Err(format!(
                    "invalid --attach-daemon2 keyval syntax: unknown key '{other}'"
                ));
            }
        }
    }
    if spec.command.is_empty() {
        return Err("--attach-daemon2: you need to specify a 'command' key".into());
    }
    Ok(spec)
}

/// Parses `<pidfile>[,<freq>] <command>` (smart-attach-daemon and smart-attach-daemon2).
fn parse_smart(v: &str, daemonize: bool) -> Result<Spec, String> {
    let Some((head, cmd)) = v.trim().split_once(' ') else {
        return Err(format!("invalid smart-attach-daemon syntax: {v}"));
    };
    let mut spec = Spec::new(cmd);
    let (pidfile, freq) = head.split_once(',').unwrap_or((head, ""));
    spec.pidfile = Some(PathBuf::from(pidfile));
    if let Ok(f) = freq.trim().parse::<u32>() {
        spec.freq = f.max(1);
    }
    spec.daemonize = daemonize;
    Ok(spec)
}

/// Every daemon of the configuration, in order of appearance.
pub fn specs(config: &Config) -> Result<Vec<Spec>, String> {
    let mut out = Vec::new();
    for e in config.entries() {
        let Some(opt) = imperium_config::options::lookup(&e.key) else {
            continue;
        };
        let v = e.value.as_str();
        let spec = match opt.canonical() {
            "attach-daemon" => Spec::new(v),
            "attach-control-daemon" => Spec {
                control: true,
                ..Spec::new(v)
            },
            "smart-attach-daemon" => parse_smart(v, false)?,
            "smart-attach-daemon2" => parse_smart(v, true)?,
            "attach-daemon2" => parse_keyval(v)?,
            _ => continue,
        };
        if spec.command.is_empty() {
            return Err(format!("{}: an empty command", opt.canonical()));
        }
        out.push(spec);
    }
    Ok(out)
}

/// The pid in a pidfile, when that process is alive.
pub fn check_pidfile(path: &std::path::Path) -> Option<Pid> {
    let s = std::fs::read_to_string(path).ok()?;
    let pid: i32 = s.trim().parse().ok().filter(|p| *p > 0)?;
    let pid = Pid::from_raw(pid);
    kill(pid, None).ok().map(|_| pid)
}

/// One daemon and its state.
#[derive(Debug)]
struct Daemon {
    spec: Spec,
    pid: Option<Pid>,
    /// 1: spawned, 2: seen alive through its pidfile.
    status: u8,
    respawns: u64,
    last_spawn: u64,
    pidfile_checks: u32,
    has_daemonized: bool,
    touches: Touches,
}

/// What the master must do after a child died.
#[derive(Debug, PartialEq, Eq)]
pub enum Death {
    /// Not a daemon.
    Unknown,
    /// A daemon: handled (respawned or noted).
    Handled,
    /// A control daemon died: stop the instance.
    Control,
}

/// The master's daemons.
#[derive(Debug, Default)]
pub struct Daemons {
    list: Vec<Daemon>,
    shells: Vec<String>,
    reload_mercy: u64,
}

impl Daemons {
    pub fn new(config: &Config, reload_mercy: u64) -> Result<Daemons, String> {
        let all_stdin = config.flag("daemons-honour-stdin");
        let list = specs(config)?
            .into_iter()
            .map(|spec| Spec {
                honour_stdin: spec.honour_stdin || all_stdin,
                ..spec
            })
            .map(|spec| Daemon {
                touches: Touches::new(&spec.touch),
                spec,
                pid: None,
                status: 0,
                respawns: 0,
                last_spawn: 0,
                pidfile_checks: 0,
                has_daemonized: false,
            })
            .collect();
        let mut shells: Vec<String> = config
            .get_all("binsh")
            .into_iter()
            .map(str::to_owned)
            .collect();
        shells.push("/bin/sh".into());
        Ok(Daemons {
            list,
            shells,
            reload_mercy,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Starts every daemon (smart ones only when their pidfile shows no live process).
    pub fn spawn_all(&mut self) {
        for i in 0..self.list.len() {
            if let Some(pf) = self.list[i].spec.pidfile.clone()
                && let Some(pid) = check_pidfile(&pf)
            {
                vlog!(
                    "[uwsgi-daemons] found valid/active pidfile for \"{}\" (pid: {pid})",
                    self.list[i].spec.command
                );
                self.list[i].pid = Some(pid);
                self.list[i].status = 2;
                continue;
            }
            self.spawn(i);
        }
    }

    fn shell(&self) -> &str {
        self.shells
            .iter()
            .find(|s| std::path::Path::new(s).exists())
            .map_or("/bin/sh", String::as_str)
    }

    fn spawn(&mut self, i: usize) {
        let now = sys::clock::now_secs();
        let d = &self.list[i];
        let mut throttle = 0u64;
        if d.last_spawn > 0 && now.saturating_sub(d.last_spawn) <= 3 {
            throttle = d.respawns.saturating_sub(now - d.last_spawn).max(1);
            throttle = throttle.min(if d.spec.max_throttle > 0 {
                d.spec.max_throttle
            } else {
                300
            });
        }
        let spec = d.spec.clone();
        let again = d.respawns > 0;
        let shell = self.shell().to_owned();
        match sys::fork() {
            Ok(Forked::Child) => child(&spec, &shell, throttle, again),
            Ok(Forked::Parent(pid)) => {
                let d = &mut self.list[i];
                d.has_daemonized = false;
                d.pid = Some(pid);
                d.status = 1;
                d.pidfile_checks = 0;
                d.respawns += 1;
                d.last_spawn = now;
            }
            Err(e) => vlog!(
                "[uwsgi-daemons] unable to spawn \"{}\": fork(): {e}",
                spec.command
            ),
        }
    }

    /// A child died: if it is a dumb daemon, respawn it (unless `stopping`).
    pub fn reaped(&mut self, pid: Pid, stopping: bool) -> Death {
        let Some(i) = self.list.iter().position(|d| d.pid == Some(pid)) else {
            return Death::Unknown;
        };
        let d = &mut self.list[i];
        if d.spec.pidfile.is_some() {
            // The launcher of a smart daemon exits once the daemon detached.
            if d.has_daemonized {
                vlog!(
                    "[uwsgi-daemons] BUG !!! daemon \"{}\" has already daemonized !!!",
                    d.spec.command
                );
            }
            d.has_daemonized = true;
            return Death::Handled;
        }
        d.pid = None;
        if stopping {
            vlog!("daemon \"{}\" (pid: {pid}) annihilated", d.spec.command);
            return Death::Handled;
        }
        if d.spec.control {
            vlog!(
                "[uwsgi-daemons] control daemon \"{}\" (pid: {pid}) died, stopping the instance",
                d.spec.command
            );
            return Death::Control;
        }
        vlog!("daemon \"{}\" (pid: {pid}) annihilated", d.spec.command);
        self.spawn(i);
        Death::Handled
    }

    /// Once a second: smart daemons' pidfiles, touched files.
    pub fn tick(&mut self) {
        for i in 0..self.list.len() {
            if let Some(t) = self.list[i].touches.check() {
                let d = &self.list[i];
                if let Some(pid) = d.pid {
                    vlog!(
                        "*** {} has been touched... reloading daemon \"{}\" (pid: {pid}) !!! ***",
                        t.display(),
                        d.spec.command
                    );
                    let sig = if d.spec.reload_signal > 0 {
                        d.spec.reload_signal
                    } else {
                        d.spec.stop_signal
                    };
                    if let Ok(s) = Signal::try_from(sig) {
                        let _ = kill(Pid::from_raw(-pid.as_raw()), s);
                    }
                }
            }
            let Some(pf) = self.list[i].spec.pidfile.clone() else {
                continue;
            };
            let d = &mut self.list[i];
            match check_pidfile(&pf) {
                None => {
                    if d.status == 2 {
                        vlog!(
                            "[uwsgi-daemons] \"{}\" (pid: {}) is gone, respawning it",
                            d.spec.command,
                            d.pid.map_or(0, Pid::as_raw)
                        );
                        self.spawn(i);
                    } else {
                        d.pidfile_checks += 1;
                        if d.pidfile_checks >= d.spec.freq {
                            if !d.has_daemonized {
                                vlog!(
                                    "[uwsgi-daemons] \"{}\" (pid: {}) did not daemonize !!!",
                                    d.spec.command,
                                    d.pid.map_or(0, Pid::as_raw)
                                );
                                d.pidfile_checks = 0;
                            } else {
                                vlog!(
                                    "[uwsgi-daemons] found changed pidfile for \"{}\" (old_pid: {} new_pid: -1)",
                                    d.spec.command,
                                    d.pid.map_or(0, Pid::as_raw)
                                );
                                self.spawn(i);
                            }
                        }
                    }
                }
                Some(pid) if Some(pid) != d.pid => {
                    vlog!(
                        "[uwsgi-daemons] found changed pid for \"{}\" (old_pid: {} new_pid: {pid})",
                        d.spec.command,
                        d.pid.map_or(0, Pid::as_raw)
                    );
                    d.pid = Some(pid);
                    d.status = 2;
                }
                Some(_) => d.status = 2,
            }
        }
    }

    /// Stops the dumb daemons (instance stop or reload): their stop signal (or reload
    /// signal, when reloading and one is set) to the process group every second, SIGKILL
    /// after the mercy. Smart daemons are left running.
    pub fn stop_all(&mut self, reloading: bool) {
        let mercy = Duration::from_secs(if self.reload_mercy > 0 {
            self.reload_mercy
        } else {
            3
        });
        for d in &mut self.list {
            let Some(pid) = d.pid else { continue };
            if d.spec.pidfile.is_some() {
                continue;
            }
            vlog!(
                "[uwsgi-daemons] stopping daemon (pid: {pid}): {}",
                d.spec.command
            );
            let sig = if reloading && d.spec.reload_signal > 0 {
                d.spec.reload_signal
            } else {
                d.spec.stop_signal
            };
            let sig = Signal::try_from(sig).unwrap_or(Signal::SIGTERM);
            let group = Pid::from_raw(-pid.as_raw());
            let deadline = Instant::now() + mercy;
            let mut next_signal = Instant::now();
            loop {
                if let Ok(
                    nix::sys::wait::WaitStatus::Exited(..)
                    | nix::sys::wait::WaitStatus::Signaled(..),
                ) = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
                {
                    break;
                }
                if kill(pid, None).is_err() {
                    break;
                }
                if Instant::now() >= deadline {
                    vlog!(
                        "[uwsgi-daemons] daemon did not die in time, killing (pid: {pid}): {}",
                        d.spec.command
                    );
                    let _ = kill(group, Signal::SIGKILL);
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                    break;
                }
                if Instant::now() >= next_signal {
                    let _ = kill(group, sig);
                    next_signal = Instant::now() + Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            d.pid = None;
        }
    }

    /// The pids of the dumb daemons (for tests and the stats).
    pub fn pids(&self) -> Vec<(String, Option<Pid>)> {
        self.list
            .iter()
            .map(|d| (d.spec.command.clone(), d.pid))
            .collect()
    }
}

/// Closes every descriptor above 2 (the daemon gets nothing of the instance).
fn close_fds() {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        let _ = nix::unistd::close(fd);
    }
}

/// In the forked child: set up and exec the command; never returns.
fn child(spec: &Spec, shell: &str, throttle: u64, again: bool) -> ! {
    use std::os::unix::process::CommandExt;
    close_fds();
    if let Some(dir) = &spec.chdir
        && let Err(e) = std::env::set_current_dir(dir)
    {
        vlog!("uwsgi_spawn_daemon()/chdir(): {e}");
        std::process::exit(1);
    }
    if let Some(g) = &spec.gid {
        match crate::privileges::parse_gid(g).map(nix::unistd::setgid) {
            Ok(Ok(())) => {}
            _ => {
                vlog!("uwsgi_spawn_daemon()/setgid(): cannot switch to {g}");
                std::process::exit(1);
            }
        }
    }
    if let Some(u) = &spec.uid {
        match crate::privileges::parse_uid(u).map(nix::unistd::setuid) {
            Ok(Ok(())) => {}
            _ => {
                vlog!("uwsgi_spawn_daemon()/setuid(): cannot switch to {u}");
                std::process::exit(1);
            }
        }
    }
    if spec.daemonize {
        match sys::fork() {
            Ok(Forked::Child) => {}
            Ok(Forked::Parent(_)) => std::process::exit(0),
            Err(_) => std::process::exit(1),
        }
        if let Some(pf) = &spec.pidfile {
            let _ = std::fs::write(pf, format!("{}\n", std::process::id()));
        }
    }
    if !spec.honour_stdin
        && let Ok(null) = std::fs::File::open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    if nix::unistd::setsid().is_err() {
        vlog!("uwsgi_spawn_daemon()/setsid() failed");
        std::process::exit(1);
    }
    if spec.pidfile.is_none() {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    if throttle > 0 {
        vlog!(
            "[uwsgi-daemons] throttling \"{}\" for {throttle} seconds",
            spec.command
        );
        std::thread::sleep(Duration::from_secs(throttle));
    }
    let _ = sys::signals::unblock_all();
    vlog!(
        "[uwsgi-daemons] {}spawning \"{}\" (uid: {} gid: {})",
        if again { "re" } else { "" },
        spec.command,
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    let err = std::process::Command::new(shell)
        .arg("-c")
        .arg(&spec.command)
        .exec();
    vlog!(
        "[uwsgi-daemons] unable to spawn \"{}\": {err}",
        spec.command
    );
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyval_forms() {
        let s = parse_keyval("cmd=my_daemon.sh,pidfile=/tmp/my.pid,uid=33,gid=33,stopsignal=3")
            .unwrap();
        assert_eq!(s.command, "my_daemon.sh");
        assert_eq!(s.pidfile, Some(PathBuf::from("/tmp/my.pid")));
        assert_eq!((s.stop_signal, s.uid.as_deref()), (3, Some("33")));
        let s = parse_keyval("exec=echo a\\,b,control=1,touch=/a;/b").unwrap();
        assert_eq!(s.command, "echo a,b");
        assert!(s.control);
        assert_eq!(s.touch.len(), 2);
        assert!(parse_keyval("freq=3").is_err());
        assert!(parse_keyval("cmd=x,bogus=1").is_err());
    }

    #[test]
    fn smart_forms() {
        let s = parse_smart("/tmp/x.pid memcached -d -P /tmp/x.pid", false).unwrap();
        assert_eq!(s.command, "memcached -d -P /tmp/x.pid");
        let s = parse_smart("/tmp/x.pid,5 cmd", true).unwrap();
        assert_eq!((s.freq, s.daemonize), (5, true));
        assert!(parse_smart("nospace", false).is_err());
    }
}
