//! Starting vassal processes, exactly as uWSGI starts them (argv, environment, descriptors,
//! working directory, death signal), plus the isolation of each vassal (namespaces,
//! cgroup, tyrant credentials, bounding set, NO_NEW_PRIVS), and the only module with
//! `unsafe` in this crate.
//!
//! Everything a child needs is prepared in the parent before the clone: argv, the full
//! environment, the descriptors to keep, the cgroup descriptors and the credentials. The
//! process itself is created by `imperium_namespaces::child::spawn` (`clone3` with
//! namespace flags and `CLONE_INTO_CGROUP`; only async-signal-safe calls until `execve`;
//! the parent-death signal is armed after the uid change and the parent re-checked).
//! The Emperor is single-threaded, so cloning is safe.
//!
//! `vassals-start-hook` and `exec-as-vassal` run in the vassal's own process before the
//! vassal binary, as in uWSGI, but through `/bin/sh` (which then `exec`s the vassal), so
//! the Emperor never waits for them: they run inside the vassal's namespaces and cgroup,
//! with its credentials.

use imperium_monitors::NameRules;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    /// Namespaces, cgroup, credentials and capability limits of the vassal.
    pub isolation: Option<Isolated>,
}

/// The isolation of one vassal, prepared by `isolation.rs` before the spawn.
#[derive(Debug, Default)]
pub struct Isolated {
    pub namespaces: imperium_namespaces::nsflags::NsFlags,
    /// The vassal's v2 cgroup directory (`CLONE_INTO_CGROUP`).
    pub cgroup_dir: Option<OwnedFd>,
    /// `cgroup.procs` of the v2 group (written only if the clone could not enter it).
    pub cgroup_dir_procs: Option<OwnedFd>,
    /// `cgroup.procs` of every other hierarchy, opened for the child to join.
    pub cgroup_procs: Vec<OwnedFd>,
    pub id_maps: Option<imperium_namespaces::child::IdMaps>,
    pub bounding: Option<imperium_namespaces::caps::CapSet>,
    /// Tyrant credentials with supplementary groups (overrides `uid_gid`).
    pub creds: Option<imperium_namespaces::child::Creds>,
    pub no_new_privs: bool,
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
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Quotes a string for `/bin/sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Wraps a vassal plan so that `vassals-start-hook` (run as `hook <name>` with
/// `UWSGI_VASSALS_DIR`, its failure ignored) and `exec-as-vassal` commands (each must
/// succeed) run in the vassal process before it execs the vassal binary.
pub fn wrap_with_hooks(
    plan: &mut SpawnPlan,
    start_hook: Option<&str>,
    as_vassal: &[(&str, String)],
    exec_as_vassal: &[String],
    name: &str,
    vassals_dir: &str,
) {
    if start_hook.is_none() && as_vassal.is_empty() && exec_as_vassal.is_empty() {
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
    // hook-as-vassal, mount-as-vassal, umount-as-vassal, then (after exec-as-vassal)
    // call-as-vassal*: this binary as a helper (see hooks.rs), each must succeed.
    let me = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/proc/self/exe".into());
    let helper = |script: &mut String, kind: &str, value: &str| {
        script.push_str(&format!(
            "{}={} {} || exit 1; ",
            crate::hooks::HELPER_ENV,
            sh_quote(&format!("{kind}\t{value}")),
            sh_quote(&me)
        ));
    };
    for (kind, value) in as_vassal.iter().filter(|(k, _)| !k.starts_with("call")) {
        helper(&mut script, kind, value);
    }
    for cmd in exec_as_vassal {
        let q = sh_quote(cmd);
        script.push_str(&format!(
            "echo \"running \\\"\"{q}\"\\\" (as-vassal)...\" >&2; /bin/sh -c {q} || {{ rc=$?; echo \"command \\\"\"{q}\"\\\" exited with non-zero code: $rc\" >&2; exit 1; }}; "
        ));
    }
    for (kind, value) in as_vassal.iter().filter(|(k, _)| k.starts_with("call")) {
        helper(&mut script, kind, value);
    }
    script.push_str("exec \"$0\" \"$@\"");
    let mut argv = vec![
        OsString::from("/bin/sh"),
        OsString::from("-c"),
        OsString::from(script),
        plan.program.clone(),
    ];
    argv.extend(plan.argv.iter().skip(1).cloned());
    plan.program = OsString::from("/bin/sh");
    plan.argv = argv;
}

/// Starts a process; returns its pid. Does not wait for it (deaths are reaped by the
/// Emperor's SIGCHLD handling).
pub fn spawn(plan: SpawnPlan) -> io::Result<u32> {
    spawn_with(plan, true)
}

/// Starts a helper command (hooks): same descriptor hygiene, no own process group.
pub fn spawn_helper(
    program: &str,
    args: &[&str],
    env: &[(OsString, OsString)],
    cwd: &Path,
) -> io::Result<u32> {
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
        isolation: None,
    };
    spawn_with(plan, true)
}

fn spawn_with(plan: SpawnPlan, deathsig: bool) -> io::Result<u32> {
    use imperium_namespaces::child::{self, ChildSpec, Creds};
    use std::os::fd::AsRawFd;
    let program =
        resolve_program(&plan.program).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    let iso = plan.isolation.unwrap_or_default();
    let creds = iso.creds.clone().or(plan.uid_gid.map(|(uid, gid)| Creds {
        uid,
        gid,
        groups: Vec::new(),
    }));
    let spec = ChildSpec {
        program,
        argv: plan.argv,
        env: plan.env,
        cwd: plan.cwd,
        stdin: plan.stdin.as_ref().map(|f| f.as_raw_fd()),
        keep_fds: plan.keep_fds,
        namespaces: iso.namespaces,
        cgroup_dir: iso.cgroup_dir.as_ref().map(|f| f.as_raw_fd()),
        cgroup_dir_procs: iso.cgroup_dir_procs.as_ref().map(|f| f.as_raw_fd()),
        cgroup_procs: iso.cgroup_procs.iter().map(|f| f.as_raw_fd()).collect(),
        id_maps: iso.id_maps.clone(),
        bounding: iso.bounding,
        no_new_privs: iso.no_new_privs || creds.as_ref().is_some_and(|c| c.uid != 0),
        creds,
        // If the Emperor dies, so does the vassal (armed after the uid change).
        deathsig: deathsig.then_some(libc::SIGKILL),
        own_group: plan.own_group,
    };
    match child::spawn(&spec) {
        Ok(pid) => Ok(pid as u32),
        Err(e) if e.step == child::Step::Exec || e.step == child::Step::Clone => Err(e.error),
        Err(e) => Err(io::Error::new(e.error.kind(), e.to_string())),
    }
}

/// Keeps the Emperor's heap small and unfragmented: large buffers (a stats document of a
/// thousand vassals is ~400 KB) always get their own mapping and go back to the system
/// when freed. glibc would otherwise raise its mmap threshold after the first such free
/// and carve the next ones out of the heap between long-lived vassal records, where the
/// holes stay; every clone then copies the page tables of that larger heap.
pub fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called once at boot, before any
    // thread or child exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
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
                "/usr/bin/uwsgi",
                "--inherit",
                "B.ini",
                "--include",
                "IB.ini",
                "--set",
                "processes=8",
                "--ini",
                "a.ini",
                "--inherit",
                "H.ini",
                "--include",
                "I.ini"
            ]
        );
        let plain = ArgvTemplate {
            argv0: "x".into(),
            ..Default::default()
        };
        assert_eq!(
            plain.build(&NameRules::default(), "d/app.yaml", "d/app.yaml"),
            ["x", "--yaml", "d/app.yaml"]
        );
        assert_eq!(
            plain.build(&NameRules::default(), "p.xml", "emperor://p.xml"),
            ["x", "--xml", "emperor://p.xml"]
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
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
            isolation: None,
        };
        wrap_with_hooks(
            &mut plan,
            Some("/bin/true"),
            &[],
            &["true".to_owned()],
            "a.ini",
            "/v",
        );
        assert_eq!(plan.program, "/bin/sh");
        assert_eq!(plan.argv[3], "/bin/echo");
        assert_eq!(&plan.argv[4..], ["--ini", "a.ini"]);
        let s = plan.argv[2].to_str().unwrap();
        assert!(s.ends_with("exec \"$0\" \"$@\""));
    }
}
