//! Hooks: actions run at fixed points of the instance's life, as uWSGI runs them.
//!
//! Each [`Phase`] runs, in this order: its advanced chain (`hook-<phase> = action:args`),
//! then the hardcoded lists `mount-<phase>`, `umount-<phase>`, `exec-<phase>` (a shell
//! command) and `call-<phase>` (a C symbol). A failing action in a fatal phase stops the
//! instance (the caller gets an `Err`); in a non-fatal phase it is only logged.
//!
//! Actions: `exec`, `safeexec`, `print`/`log`, `write`, `writen`, `append`, `appendn`,
//! `writefifo`, `create`/`creat`, `unlink`, `mkdir`, `cd`/`chdir`, `putenv`, `chmod`,
//! `chown`, `chown2`, `sticky`, `hostname`, `mount`, `umount`, `call`, `callret`,
//! `callint`, `callintret`, `wait_for_fs`, `wait_for_file`, `wait_for_dir`,
//! `wait_for_socket`, `exit`. A leading `!` on the action hides its arguments from
//! the log (a private hook).

use crate::sys::dl;
use crate::vlog;
use imperium_config::Config;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

/// A point in the instance's life where hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Right after the configuration is read, before anything else (logging included).
    Asap,
    /// Before jailing (first start only).
    PreJail,
    /// Right after jailing, in the parent when jailing forks.
    PostJail,
    /// After jailing, in the jailed process.
    InJail,
    /// Last chance as root, before the privileges are dropped.
    AsRoot,
    /// Right after the privileges are dropped.
    AsUser,
    /// Before the applications are loaded.
    PreApp,
    /// After the applications are loaded.
    PostApp,
    /// In every newly forked worker.
    PostFork,
    /// In each worker before it starts accepting.
    Accepting,
    /// In worker 1 before it starts accepting.
    Accepting1,
    /// In each worker before it first accepts (once per instance per worker slot).
    AcceptingOnce,
    /// In worker 1 before it first accepts, once per instance.
    Accepting1Once,
    /// When the master's loop starts.
    MasterStart,
    /// Before the instance exits or reloads.
    AsUserAtexit,
    /// When the Emperor sends stop.
    EmperorStop,
    /// When the Emperor sends reload.
    EmperorReload,
    /// When the connection to the Emperor is lost.
    EmperorLost,
}

impl Phase {
    /// The option suffix (`hook-<suffix>`, `exec-<suffix>`...).
    pub fn suffix(self) -> &'static str {
        match self {
            Phase::Asap => "asap",
            Phase::PreJail => "pre-jail",
            Phase::PostJail => "post-jail",
            Phase::InJail => "in-jail",
            Phase::AsRoot => "as-root",
            Phase::AsUser => "as-user",
            Phase::PreApp => "pre-app",
            Phase::PostApp => "post-app",
            Phase::PostFork => "post-fork",
            Phase::Accepting => "accepting",
            Phase::Accepting1 => "accepting1",
            Phase::AcceptingOnce => "accepting-once",
            Phase::Accepting1Once => "accepting1-once",
            Phase::MasterStart => "master-start",
            Phase::AsUserAtexit => "as-user-atexit",
            Phase::EmperorStop => "emperor-stop",
            Phase::EmperorReload => "emperor-reload",
            Phase::EmperorLost => "emperor-lost",
        }
    }

    /// The label uWSGI prints in `running "..." (<label>)...`.
    pub fn label(self) -> &'static str {
        match self {
            Phase::AsRoot => "as root",
            Phase::AsUser => "as user",
            Phase::PreApp => "pre app",
            Phase::PostApp => "post app",
            Phase::AsUserAtexit => "atexit",
            p => p.suffix(),
        }
    }

    /// Whether a failure stops the instance.
    pub fn fatal(self) -> bool {
        !matches!(
            self,
            Phase::AsUserAtexit | Phase::EmperorStop | Phase::EmperorReload | Phase::EmperorLost
        )
    }
}

/// A hook that failed (or could not be understood).
#[derive(Debug)]
pub struct HookError(pub String);

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HookError {}

fn err(msg: impl Into<String>) -> HookError {
    HookError(msg.into())
}

/// The shells tried for `exec` hooks (`binsh`, then `/bin/sh`).
fn shells(config: Option<&Config>) -> Vec<String> {
    let mut v: Vec<String> = config
        .map(|c| c.get_all("binsh").into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    v.push("/bin/sh".into());
    v
}

/// Runs `cmd` with the first usable shell and waits; the exit code (`-1` when it could not
/// run, `128 + n` when a signal ended it).
pub fn run_command(config: Option<&Config>, cmd: &str) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    for sh in shells(config) {
        if !std::path::Path::new(&sh).exists() {
            continue;
        }
        let mut child = match std::process::Command::new(&sh).arg("-c").arg(cmd).spawn() {
            Ok(c) => c,
            Err(e) => {
                vlog!("unable to run \"{cmd}\" with {sh}: {e}");
                return -1;
            }
        };
        // The command's output may go into the log master's pipe, which this process may
        // be the reader of: keep draining it while waiting.
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    crate::logging::drain();
                    return s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
                }
                Ok(None) => {
                    crate::logging::drain();
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => {
                    vlog!("waitpid() of \"{cmd}\": {e}");
                    return -1;
                }
            }
        }
    }
    vlog!("no usable shell to run \"{cmd}\"");
    -1
}

fn split2(arg: &str, what: &str, syntax: &str) -> Result<(String, String), HookError> {
    match arg.split_once(' ') {
        Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
        None => Err(err(format!(
            "invalid hook {what} syntax, must be: {syntax}"
        ))),
    }
}

fn write_file(path: &str, data: &[u8], append: bool, mode: u32) -> Result<(), HookError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).mode(mode);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    let mut f = o
        .open(path)
        .map_err(|e| err(format!("open(\"{path}\"): {e}")))?;
    f.write_all(data)
        .map_err(|e| err(format!("write(\"{path}\"): {e}")))
}

fn parse_mode(v: &str) -> Option<u32> {
    u32::from_str_radix(v.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
}

fn uid_of(v: &str) -> Option<u32> {
    v.parse().ok().or_else(|| {
        nix::unistd::User::from_name(v)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    })
}

fn gid_of(v: &str) -> Option<u32> {
    v.parse().ok().or_else(|| {
        nix::unistd::Group::from_name(v)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    })
}

fn chown(arg: &str, by_name: bool) -> Result<(), HookError> {
    let parts: Vec<&str> = arg.split(' ').collect();
    let [file, u, g] = parts[..] else {
        return Err(err(
            "invalid hook chown syntax, must be: <file> <uid> <gid>",
        ));
    };
    let (uid, gid) = if by_name {
        (
            uid_of(u).ok_or_else(|| err(format!("unable to find uid {u}")))?,
            gid_of(g).ok_or_else(|| err(format!("unable to find gid {g}")))?,
        )
    } else {
        (
            u.parse()
                .map_err(|_| err("invalid hook chown2 syntax, uid must be a number"))?,
            g.parse()
                .map_err(|_| err("invalid hook chown2 syntax, gid must be a number"))?,
        )
    };
    std::os::unix::fs::chown(file, Some(uid), Some(gid))
        .map_err(|e| err(format!("chown(\"{file}\"): {e}")))
}

/// Mount flags by uWSGI's names.
fn mount_flags(list: &str) -> Result<nix::mount::MsFlags, HookError> {
    use nix::mount::MsFlags as F;
    let mut f = F::empty();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        f |= match name {
            "bind" => F::MS_BIND,
            "dirsync" => F::MS_DIRSYNC,
            "mandlock" => F::MS_MANDLOCK,
            "move" => F::MS_MOVE,
            "noatime" => F::MS_NOATIME,
            "nodev" => F::MS_NODEV,
            "noexec" => F::MS_NOEXEC,
            "rdonly" | "readonly" | "ro" => F::MS_RDONLY,
            "remount" => F::MS_REMOUNT,
            "nosuid" => F::MS_NOSUID,
            "sync" => F::MS_SYNCHRONOUS,
            "rec" | "recursive" => F::MS_REC,
            "private" => F::MS_PRIVATE,
            "slave" => F::MS_SLAVE,
            "shared" => F::MS_SHARED,
            "unbindable" => F::MS_UNBINDABLE,
            other => return Err(err(format!("unknown mount flag: {other}"))),
        };
    }
    Ok(f)
}

/// `mount` action and `mount-<phase>`: `<fs> <source> <mountpoint> [flags [data]]`.
pub fn mount(arg: &str) -> Result<(), HookError> {
    let mut it = arg.splitn(5, ' ');
    let (Some(fs), Some(src), Some(target)) = (it.next(), it.next(), it.next()) else {
        return Err(err("uwsgi_mount_hook() invalid syntax"));
    };
    let flags = mount_flags(it.next().unwrap_or(""))?;
    let data = it.next();
    let fs = (fs != "none").then_some(fs);
    nix::mount::mount(Some(src), target, fs, flags, data).map_err(|e| {
        err(format!(
            "uwsgi_mount(): mount(\"{src}\" on \"{target}\"): {e}"
        ))
    })
}

/// `umount` action and `umount-<phase>`: `<mountpoint> [flags]` (`detach`, `force`).
pub fn umount(arg: &str) -> Result<(), HookError> {
    use nix::mount::MntFlags as F;
    let (target, flags) = arg.split_once(' ').unwrap_or((arg, ""));
    let mut f = F::empty();
    for name in flags.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        f |= match name {
            "detach" | "lazy" => F::MNT_DETACH,
            "force" => F::MNT_FORCE,
            "expire" => F::MNT_EXPIRE,
            // uWSGI accepts the mount names here too; recursion is what MNT_DETACH does.
            "rec" | "recursive" => F::MNT_DETACH,
            other => return Err(err(format!("unknown umount flag: {other}"))),
        };
    }
    nix::mount::umount2(target, f)
        .map_err(|e| err(format!("uwsgi_umount(): umount(\"{target}\"): {e}")))
}

/// `call <symbol> [arg]`: calls it; with `ret`, a non-zero return is a failure.
fn call(arg: &str, int_arg: bool, check_ret: bool) -> Result<(), HookError> {
    let (name, a) = match arg.split_once(' ') {
        Some((n, a)) => (n, Some(a)),
        None => (arg, None),
    };
    let sym = dl::lookup(name).ok_or_else(|| err(format!("unable to call function \"{arg}\"")))?;
    let ret = if int_arg {
        let n: i32 = a.map(|s| s.trim().parse().unwrap_or(0)).unwrap_or(0);
        sym.call_int(n)
    } else {
        sym.call_str(a)
            .ok_or_else(|| err(format!("unable to call function \"{arg}\"")))?
    };
    if check_ret && ret != 0 {
        return Err(err(format!("function \"{arg}\" returned {ret}")));
    }
    Ok(())
}

/// Runs one action (`name`, `args`). `Err` on failure.
pub fn action(config: Option<&Config>, name: &str, arg: &str) -> Result<(), HookError> {
    match name {
        "exec" | "safeexec" => {
            let ret = run_command(config, arg);
            if ret != 0 {
                let msg = format!("command \"{arg}\" exited with non-zero code: {ret}");
                if name == "safeexec" {
                    vlog!("{msg}");
                    return Ok(());
                }
                return Err(err(msg));
            }
            Ok(())
        }
        "print" | "log" => {
            vlog!("{arg}");
            Ok(())
        }
        "write" | "writen" | "append" | "appendn" => {
            let append = name.starts_with("append");
            let (file, mut data) = match arg.split_once(' ') {
                Some((f, d)) => (f.to_owned(), d.as_bytes().to_vec()),
                None if name == "appendn" => (arg.to_owned(), Vec::new()),
                None => {
                    return Err(err(format!(
                        "invalid hook {name} syntax, must be: <file> <string>"
                    )));
                }
            };
            if name.ends_with('n') {
                data.push(b'\n');
            }
            write_file(&file, &data, append, 0o666)
        }
        "writefifo" => {
            let (file, data) = split2(arg, "writefifo", "<file> <string>")?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&file)
                .map_err(|e| err(format!("open(\"{file}\"): {e}")))?;
            f.write_all(data.as_bytes())
                .map_err(|e| err(format!("uwsgi_hook_writefifo()/write(): {e}")))
        }
        "create" | "creat" => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(arg)
            .map(drop)
            .map_err(|e| err(format!("open(\"{arg}\"): {e}"))),
        "unlink" => std::fs::remove_file(arg)
            .map_err(|e| err(format!("uwsgi_hook_unlink()/unlink(\"{arg}\"): {e}"))),
        "mkdir" => std::fs::DirBuilder::new()
            .mode(0o777)
            .create(arg)
            .map_err(|e| err(format!("uwsgi_hook_mkdir()/mkdir(\"{arg}\"): {e}"))),
        "cd" | "chdir" => std::env::set_current_dir(arg)
            .map_err(|e| err(format!("uwsgi_hook_chdir()/chdir(\"{arg}\"): {e}"))),
        "putenv" => match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                crate::sys::env::set(k, v);
                Ok(())
            }
            _ => Err(err(format!(
                "uwsgi_hook_putenv(): invalid variable \"{arg}\""
            ))),
        },
        "chmod" => {
            let (file, mode) = split2(arg, "chmod", "<file> <mode>")?;
            let m =
                parse_mode(&mode).ok_or_else(|| err(format!("invalid hook chmod mask: {mode}")))?;
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                file.as_str(),
                nix::sys::stat::Mode::from_bits_truncate(m),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| err(format!("uwsgi_hook_chmod()/chmod(\"{file}\"): {e}")))
        }
        "sticky" => {
            use std::os::unix::fs::PermissionsExt;
            let md = std::fs::metadata(arg)
                .map_err(|e| err(format!("uwsgi_hook_sticky()/stat(\"{arg}\"): {e}")))?;
            let mode = md.permissions().mode() | 0o1000;
            std::fs::set_permissions(arg, std::fs::Permissions::from_mode(mode))
                .map_err(|e| err(format!("uwsgi_hook_sticky()/chmod(\"{arg}\"): {e}")))
        }
        "chown" => chown(arg, true),
        "chown2" => chown(arg, false),
        "hostname" => nix::unistd::sethostname(arg)
            .map_err(|e| err(format!("uwsgi_hook_hostname()/sethostname(): {e}"))),
        "mount" => mount(arg),
        "umount" => umount(arg),
        "call" => call(arg, false, false),
        "callret" => call(arg, false, true),
        "callint" => call(arg, true, false),
        "callintret" => call(arg, true, true),
        "wait_for_fs" | "wait_for_file" | "wait_for_dir" | "wait_for_socket" => {
            use crate::waits::{self, Kind};
            let t = config.map_or(60, |c| {
                match c.int_or("wait-for-fs-timeout", 60).unwrap_or(60) {
                    n if n > 0 => n as u64,
                    _ => 60,
                }
            });
            let ok = match name {
                "wait_for_fs" => waits::fs(arg, Kind::Any, t),
                "wait_for_file" => waits::fs(arg, Kind::File, t),
                "wait_for_dir" => waits::fs(arg, Kind::Dir, t),
                _ => waits::socket(arg, t),
            };
            if ok {
                Ok(())
            } else {
                Err(err(format!("{arg} unavailable")))
            }
        }
        "exit" => {
            // uWSGI only honours a status longer than one character (`exit:3` exits 0);
            // imperium exits with the number given (docs/compat.md).
            let code = arg.trim().parse().unwrap_or(0);
            vlog!("exit hook: exiting with status {code}");
            std::process::exit(code)
        }
        _ => Err(err(format!("hook action not found: {name}"))),
    }
}

/// Checks every `hook-*` value's syntax (`action:args`, a known action) so a typo stops
/// the instance at startup, before anything runs.
pub fn validate(config: &Config) -> Result<(), HookError> {
    const KNOWN: &[&str] = &[
        "exec",
        "safeexec",
        "print",
        "log",
        "write",
        "writen",
        "append",
        "appendn",
        "writefifo",
        "create",
        "creat",
        "unlink",
        "mkdir",
        "cd",
        "chdir",
        "putenv",
        "chmod",
        "sticky",
        "chown",
        "chown2",
        "hostname",
        "mount",
        "umount",
        "call",
        "callret",
        "callint",
        "callintret",
        "exit",
        "wait_for_fs",
        "wait_for_file",
        "wait_for_dir",
        "wait_for_socket",
    ];
    for e in config.entries() {
        let Some(spec) = imperium_config::options::lookup(&e.key) else {
            continue;
        };
        let name = spec.canonical();
        if !name.starts_with("hook-") || name == "hook-touch" {
            continue;
        }
        let (action, _) = parse_line(&e.value)?;
        if !KNOWN.contains(&action) {
            return Err(err(format!("hook action not found: {action}")));
        }
    }
    Ok(())
}

/// Splits `[!]action:args`; the bool says private.
fn parse_line(line: &str) -> Result<(&str, bool), HookError> {
    let Some((action, _)) = line.split_once(':') else {
        return Err(err("invalid hook syntax, must be hook:args"));
    };
    Ok(match action.strip_prefix('!') {
        Some(a) => (a, true),
        None => (action, false),
    })
}

/// Runs one advanced hook line (`[!]action:args`) for `label`.
pub fn run_line(config: Option<&Config>, line: &str, label: &str) -> Result<(), HookError> {
    let (action_name, private) = parse_line(line)?;
    let args = line.split_once(':').map_or("", |(_, a)| a);
    if private {
        vlog!("running --- PRIVATE HOOK --- ({label})...");
    } else {
        vlog!("running \"{line}\" ({label})...");
    }
    action(config, action_name, args)
}

/// Runs every hook of `phase`. In a fatal phase the first failure is returned (after
/// being logged); otherwise failures are logged and the rest still run.
pub fn run(config: &Config, phase: Phase) -> Result<(), HookError> {
    let label = phase.label();
    let suffix = phase.suffix();
    let outcome = |r: Result<(), HookError>| -> Result<(), HookError> {
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                vlog!("{e}");
                if phase.fatal() {
                    vlog!("FATAL hook failed, destroying instance");
                    Err(e)
                } else {
                    Ok(())
                }
            }
        }
    };
    for line in config.get_all(&format!("hook-{suffix}")) {
        outcome(run_line(Some(config), line, label))?;
    }
    for v in config.get_all(&format!("mount-{suffix}")) {
        vlog!("mounting \"{v}\" ({label})...");
        outcome(mount(v))?;
    }
    for v in config.get_all(&format!("umount-{suffix}")) {
        vlog!("un-mounting \"{v}\" ({label})...");
        outcome(umount(v))?;
    }
    for v in config.get_all(&format!("exec-{suffix}")) {
        if phase == Phase::AsUser {
            vlog!(
                "running \"{v}\" (as uid: {} gid: {}) ...",
                nix::unistd::getuid(),
                nix::unistd::getgid()
            );
        } else {
            vlog!("running \"{v}\" ({label})...");
        }
        let ret = run_command(Some(config), v);
        if ret != 0 {
            outcome(Err(err(format!(
                "command \"{v}\" exited with non-zero code: {ret}"
            ))))?;
        }
    }
    for v in config.get_all(&format!("call-{suffix}")) {
        outcome(call(v, false, false))?;
    }
    Ok(())
}

/// Runs a phase whose failure ends the process with status 1 (startup phases).
pub fn run_or_exit(config: &Config, phase: Phase) {
    if run(config, phase).is_err() {
        std::process::exit(1);
    }
}

/// `hook-touch = <file> <action>` and `touch-exec = <file> <command>`: the master runs
/// the hook action, or the shell command, when the file is touched.
pub struct TouchHooks {
    /// (watched file, action or command, whether it is a shell command).
    watched: Vec<(crate::touch::Touches, String, bool)>,
}

impl TouchHooks {
    pub fn new(config: &Config) -> TouchHooks {
        let mut watched = Vec::new();
        for (opt, exec) in [("hook-touch", false), ("touch-exec", true)] {
            for v in config.get_all(opt) {
                if let Some((file, action)) = v.trim().split_once(' ') {
                    watched.push((
                        crate::touch::Touches::new(&[std::path::PathBuf::from(file)]),
                        action.trim().to_owned(),
                        exec,
                    ));
                }
            }
        }
        TouchHooks { watched }
    }

    /// Runs the actions of the touched files (failures are logged only).
    pub fn check(&mut self, config: &Config) {
        for (t, action, exec) in &mut self.watched {
            let Some(file) = t.check() else { continue };
            if *exec {
                vlog!(
                    "*** {} has been touched... running \"{action}\" ***",
                    file.display()
                );
                let ret = run_command(Some(config), action);
                if ret != 0 {
                    vlog!("command \"{action}\" exited with non-zero code: {ret}");
                }
            } else if let Err(e) = run_line(Some(config), action, "touch") {
                vlog!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_uwsgi() {
        assert_eq!(Phase::AsRoot.label(), "as root");
        assert_eq!(Phase::AsUserAtexit.label(), "atexit");
        assert_eq!(Phase::Asap.label(), "asap");
        assert!(!Phase::AsUserAtexit.fatal());
        assert!(Phase::AsRoot.fatal());
    }

    #[test]
    fn syntax_errors() {
        assert!(parse_line("noseparator").is_err());
        assert_eq!(parse_line("!print:x").unwrap(), ("print", true));
        assert!(
            action(None, "nosuchaction", "x")
                .unwrap_err()
                .0
                .contains("hook action not found: nosuchaction")
        );
    }

    #[test]
    fn file_actions() {
        let dir = std::env::temp_dir().join(format!("imperium-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        action(None, "mkdir", dir.to_str().unwrap()).unwrap();
        let f = dir.join("f");
        let fs = f.to_str().unwrap();
        action(None, "write", &format!("{fs} hello")).unwrap();
        action(None, "appendn", &format!("{fs} world")).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "helloworld\n");
        action(None, "writen", &format!("{fs} x y")).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "x y\n");
        action(None, "chmod", &format!("{fs} 600")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        action(None, "unlink", fs).unwrap();
        assert!(!f.exists());
        assert!(action(None, "exec", "exit 3").is_err());
        assert!(action(None, "exec", "true").is_ok());
        assert!(action(None, "safeexec", "false").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn call_reaches_libc() {
        action(None, "call", "putenv IMPERIUM_HOOK_TEST=1").unwrap();
        assert_eq!(std::env::var("IMPERIUM_HOOK_TEST").as_deref(), Ok("1"));
        assert!(action(None, "call", "surely_no_such_symbol_here").is_err());
    }
}
