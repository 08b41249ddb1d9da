//! Starting vassal processes, exactly as uWSGI starts them (argv, environment, descriptors,
//! working directory, death signal), and the only module with `unsafe` in this crate.
//!
//! Everything a child needs is prepared in the parent before the fork: argv, the full
//! environment, the descriptors to keep and (as a fallback for kernels without
//! `close_range`) the list of open descriptors. The child runs only async-signal-safe
//! system calls between fork and exec: `prctl(PR_SET_PDEATHSIG)`, `getppid`,
//! `close_range(CLOSE_RANGE_CLOEXEC)` and `fcntl(F_SETFD)` (see [`child_setup`]); the
//! uid/gid switch, process group, chdir and stdin `dup2` are done by std's own
//! async-signal-safe child code. The Emperor is single-threaded, so forking is safe.
//!
//! `vassals-start-hook` and `exec-as-vassal` run in the vassal's own process before the
//! vassal binary, as in uWSGI, but through `/bin/sh` (which then `exec`s the vassal), so
//! the Emperor never waits for them.

use imperium_monitors::NameRules;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Everything needed to start one process.
#[derive(Debug)]
pub struct SpawnPlan {
    /// What to execute (searched in PATH when it has no slash).
    pub program: OsString,
    /// The full argv, argv[0] included.
    pub argv: Vec<OsString>,
    /// The complete environment.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// Descriptor for fd 0 (the on-demand socket); None: /dev/null.
    pub stdin: Option<OwnedFd>,
    /// Descriptors the child keeps (the protocol pipes, `safe-fd`s), same numbers.
    pub keep_fds: Vec<RawFd>,
    /// Tyrant mode credentials.
    pub uid_gid: Option<(u32, u32)>,
    /// Put the child in its own process group (vassals: so that a kill reaches workers).
    pub own_group: bool,
}

/// What the Emperor passes to every vassal, independent of the vassal.
#[derive(Debug, Clone, Default)]
pub struct ArgvTemplate {
    pub argv0: String,
    pub inherit_before: Vec<String>,
    pub include_before: Vec<String>,
    pub vassal_set: Vec<String>,
    pub inherit: Vec<String>,
    pub include: Vec<String>,
}

impl ArgvTemplate {
    /// argv in uWSGI's exact order: argv0, `--inherit`s and `--include`s "before", `--set`s,
    /// the format flag and config reference, then `--inherit`s and `--include`s.
    pub fn build(&self, rules: &NameRules, name: &str, config_ref: &str) -> Vec<String> {
        let mut v = vec![self.argv0.clone()];
        for t in &self.inherit_before {
            v.extend(["--inherit".to_owned(), t.clone()]);
        }
        for t in &self.include_before {
            v.extend(["--include".to_owned(), t.clone()]);
        }
        for s in &self.vassal_set {
            v.extend(["--set".to_owned(), s.clone()]);
        }
        v.push(rules.format_flag(name).to_owned());
        v.push(config_ref.to_owned());
        for t in &self.inherit {
            v.extend(["--inherit".to_owned(), t.clone()]);
        }
        for t in &self.include {
            v.extend(["--include".to_owned(), t.clone()]);
        }
        v
    }
}

/// Variables the Emperor never passes on: its own supervisor's notification socket and
/// activation/watchdog variables, its own Emperor's descriptors, and uWSGI's reload counter.
const DROPPED: [&str; 9] = [
    "UWSGI_RELOADS",
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "UWSGI_EMPEROR_FD",
    "UWSGI_EMPEROR_FD_CONFIG",
];

/// The environment every vassal starts from: the Emperor's, minus [`DROPPED`], with every
/// `UWSGI_VASSAL_<X>=v` renamed `UWSGI_<X>=v` (the renamed value wins over an existing
/// `UWSGI_<X>`). Built on a copy, unlike uWSGI's in-place rewrite that corrupts `environ`.
pub fn base_env(from: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let mut plain: Vec<(OsString, OsString)> = Vec::new();
    let mut renamed: Vec<(OsString, OsString)> = Vec::new();
    for (k, v) in from {
        let kb = k.as_bytes();
        if DROPPED.iter().any(|d| d.as_bytes() == kb) {
            continue;
        }
        if let Some(rest) = kb.strip_prefix(b"UWSGI_VASSAL_")
            && !rest.is_empty()
        {
            let mut nk = b"UWSGI_".to_vec();
            nk.extend_from_slice(rest);
            renamed.push((OsStr::from_bytes(&nk).to_owned(), v));
            continue;
        }
        plain.push((k, v));
    }
    plain.retain(|(k, _)| !renamed.iter().any(|(rk, _)| rk == k));
    plain.extend(renamed);
    plain
}

/// Where a program would be found by `execvp`, or None.
pub fn resolve_program(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return is_executable(p).then(|| p.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(&path).map(|d| d.join(p)).find(|c| is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Quotes a string for `/bin/sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Wraps a vassal plan so that `vassals-start-hook` (run as `hook <name>` with
/// `UWSGI_VASSALS_DIR`, its failure ignored) and `exec-as-vassal` commands (each must
/// succeed) run in the vassal process before it execs the vassal binary.
pub fn wrap_with_hooks(plan: &mut SpawnPlan, start_hook: Option<&str>, exec_as_vassal: &[String], name: &str, vassals_dir: &str) {
    if start_hook.is_none() && exec_as_vassal.is_empty() {
        return;
    }
    let mut script = String::new();
    if let Some(hook) = start_hook {
        let (h, n) = (sh_quote(hook), sh_quote(name));
        script.push_str(&format!(
            "echo \"[emperor] running vassal start-hook: \"{h}\" \"{n} >&2; UWSGI_VASSALS_DIR={} {h} {n}; echo \"[emperor] \"{n}\" start-hook returned $?\" >&2; ",
            sh_quote(vassals_dir)
        ));
    }
    for cmd in exec_as_vassal {
        let q = sh_quote(cmd);
        script.push_str(&format!(
            "echo \"running \\\"\"{q}\"\\\" (as-vassal)...\" >&2; /bin/sh -c {q} || {{ rc=$?; echo \"command \\\"\"{q}\"\\\" exited with non-zero code: $rc\" >&2; exit 1; }}; "
        ));
    }
    script.push_str("exec \"$0\" \"$@\"");
    let mut argv = vec![OsString::from("/bin/sh"), OsString::from("-c"), OsString::from(script), plan.program.clone()];
    argv.extend(plan.argv.iter().skip(1).cloned());
    plan.program = OsString::from("/bin/sh");
    plan.argv = argv;
}

/// The descriptors open in this process (fallback list for the child).
fn open_fds() -> Vec<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default()
}

/// Runs in the child between fork and exec. Only async-signal-safe system calls; no
/// allocation (the slices were built before the fork).
fn child_setup(keep: &[RawFd], fallback: &[RawFd], emperor_pid: libc::pid_t, deathsig: bool) -> io::Result<()> {
    // SAFETY: plain system calls on integers; none of them touches memory owned by Rust
    // objects, and all are async-signal-safe.
    unsafe {
        if deathsig {
            // If the Emperor dies, so does the vassal (set after any uid change, which
            // would have cleared it). Re-check the parent: it may already be gone.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != emperor_pid {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        // Every inherited descriptor from 3 up closes at exec, except ours.
        let r = libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_uint);
        if r != 0 {
            for &fd in fallback {
                if fd >= 3 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
        }
        for &fd in keep {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Starts a process; returns its pid. Does not wait for it (deaths are reaped by the
/// Emperor's SIGCHLD handling).
pub fn spawn(plan: SpawnPlan) -> io::Result<u32> {
    spawn_with(plan, true)
}

/// Starts a helper command (hooks): same descriptor hygiene, no own process group.
pub fn spawn_helper(program: &str, args: &[&str], env: &[(OsString, OsString)], cwd: &Path) -> io::Result<u32> {
    let mut argv = vec![OsString::from(program)];
    argv.extend(args.iter().map(OsString::from));
    let plan = SpawnPlan {
        program: OsString::from(program),
        argv,
        env: env.to_vec(),
        cwd: cwd.to_owned(),
        stdin: None,
        keep_fds: Vec::new(),
        uid_gid: None,
        own_group: false,
    };
    spawn_with(plan, true)
}

fn spawn_with(plan: SpawnPlan, deathsig: bool) -> io::Result<u32> {
    let mut cmd = Command::new(&plan.program);
    if let Some(a0) = plan.argv.first() {
        cmd.arg0(a0);
    }
    cmd.args(plan.argv.iter().skip(1));
    cmd.env_clear();
    cmd.envs(plan.env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str())));
    cmd.current_dir(&plan.cwd);
    cmd.stdin(match plan.stdin {
        Some(fd) => Stdio::from(fd),
        None => Stdio::null(),
    });
    if let Some((uid, gid)) = plan.uid_gid {
        // std drops supplementary groups (setgroups(0)) when switching from root.
        cmd.gid(gid);
        cmd.uid(uid);
    }
    if plan.own_group {
        cmd.process_group(0);
    }
    let keep = plan.keep_fds;
    let fallback = open_fds();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child of this single-threaded process and
    // calls only async-signal-safe functions (see child_setup); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || child_setup(&keep, &fallback, parent, deathsig));
    }
    let child = cmd.spawn()?;
    Ok(child.id())
}

/// Adopts a descriptor this process inherited (`UWSGI_EMPEROR_FD` of a sub-Emperor), if
/// it is open.
pub fn adopt_inherited_fd(raw: RawFd) -> Option<OwnedFd> {
    if raw < 3 {
        return None;
    }
    // SAFETY: F_GETFD on an integer only reads the descriptor table.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: the descriptor is open and was inherited through exec; nothing else in this
    // process knows about it, so taking ownership is sound. Called once per descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: as above, a plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl() -> ArgvTemplate {
        ArgvTemplate {
            argv0: "/usr/bin/uwsgi".into(),
            inherit_before: vec!["B.ini".into()],
            include_before: vec!["IB.ini".into()],
            vassal_set: vec!["processes=8".into()],
            inherit: vec!["H.ini".into()],
            include: vec!["I.ini".into()],
        }
    }

    #[test]
    fn argv_order() {
        let v = tpl().build(&NameRules::default(), "a.ini", "a.ini");
        assert_eq!(
            v,
            [
                "/usr/bin/uwsgi", "--inherit", "B.ini", "--include", "IB.ini", "--set", "processes=8", "--ini", "a.ini",
                "--inherit", "H.ini", "--include", "I.ini"
            ]
        );
        let plain = ArgvTemplate { argv0: "x".into(), ..Default::default() };
        assert_eq!(plain.build(&NameRules::default(), "d/app.yaml", "d/app.yaml"), ["x", "--yaml", "d/app.yaml"]);
        assert_eq!(plain.build(&NameRules::default(), "p.xml", "emperor://p.xml"), ["x", "--xml", "emperor://p.xml"]);
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    #[test]
    fn environment_contract() {
        let out = base_env(env(&[
            ("PATH", "/bin"),
            ("UWSGI_RELOADS", "3"),
            ("NOTIFY_SOCKET", "/run/n"),
            ("UWSGI_VASSAL_SOCKET", "/tmp/%n.sock"),
            ("UWSGI_SOCKET", "old"),
            ("UWSGI_VASSAL_", "empty-suffix"),
            ("UWSGI_EMPEROR_FD", "7"),
            ("UWSGI_VASSAL_PROCESSES", "4"),
        ]));
        assert_eq!(
            out,
            env(&[
                ("PATH", "/bin"),
                ("UWSGI_VASSAL_", "empty-suffix"),
                ("UWSGI_SOCKET", "/tmp/%n.sock"),
                ("UWSGI_PROCESSES", "4")
            ])
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
    }

    #[test]
    fn program_resolution() {
        assert!(resolve_program(OsStr::new("sh")).is_some());
        assert!(resolve_program(OsStr::new("/nonexistent/uwsgi")).is_none());
        assert!(resolve_program(OsStr::new("no-such-program-imperium")).is_none());
    }

    #[test]
    fn hooks_wrap_the_exec() {
        let mut plan = SpawnPlan {
            program: "/bin/echo".into(),
            argv: vec!["/bin/echo".into(), "--ini".into(), "a.ini".into()],
            env: vec![],
            cwd: "/".into(),
            stdin: None,
            keep_fds: vec![],
            uid_gid: None,
            own_group: false,
        };
        wrap_with_hooks(&mut plan, Some("/bin/true"), &["true".to_owned()], "a.ini", "/v");
        assert_eq!(plan.program, "/bin/sh");
        assert_eq!(plan.argv[3], "/bin/echo");
        assert_eq!(&plan.argv[4..], ["--ini", "a.ini"]);
        let s = plan.argv[2].to_str().unwrap();
        assert!(s.ends_with("exec \"$0\" \"$@\""));
    }
}
