//! Helpers shared by the integration tests: where the binaries are, scratch directories,
//! and running a process whose stderr is read line by line until a marker, under a
//! timeout, then killed with its whole process group.
//!
//! Use from a test file with `mod common;`. Only std is used.

#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The PATH every test child gets: fixed, so results do not depend on the caller's PATH.
pub const TEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `imperium` binary cargo built for this test run.
pub fn imperium_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_imperium"))
}

/// The repository root (the root package's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real uWSGI used as the oracle: `$IMPERIUM_UWSGI`, else `target/venv/bin/uwsgi`.
/// Panics (never skips) when neither exists: `scripts/test.sh` builds it.
pub fn uwsgi_bin() -> PathBuf {
    let from_env = std::env::var_os("IMPERIUM_UWSGI").filter(|v| !v.is_empty());
    let candidate = match &from_env {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("target/venv/bin/uwsgi"),
    };
    if candidate.is_file() {
        return candidate;
    }
    match from_env {
        Some(p) => panic!(
            "IMPERIUM_UWSGI={} does not exist; run scripts/test.sh, which builds uWSGI 2.0.31 \
             into target/venv and exports IMPERIUM_UWSGI",
            PathBuf::from(p).display()
        ),
        None => panic!(
            "no real uWSGI to compare with: IMPERIUM_UWSGI is unset and {} does not exist; \
             run scripts/test.sh (it builds uWSGI 2.0.31 into target/venv)",
            candidate.display()
        ),
    }
}

/// A fresh, empty directory `<target>/tmp/<parts...>` (removed first if present).
pub fn scratch_dir(parts: &[&str]) -> PathBuf {
    let mut d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for p in parts {
        d.push(p);
    }
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    d
}

/// Copies `src` into `dst` recursively, keeping symlinks as symlinks (with their target
/// text unchanged) and file permissions. Top-level entries named in `skip` are left out.
pub fn copy_tree(src: &Path, dst: &Path, skip: &[&str]) -> std::io::Result<()> {
    fs::create_dir_all(dst)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        let ft = fs::symlink_metadata(&from)?.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            copy_tree(&from, &to, &[])?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

unsafe extern "C" {
    // From the C library std already links; no extra dependency.
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// Kills the whole process group led by `child` (spawned with `process_group(0)`), then
/// reaps the child.
pub fn kill_group(child: &mut Child) -> Option<ExitStatus> {
    let pid = child.id() as i32;
    // SAFETY: plain syscall wrapper; a negative pid names the process group.
    unsafe {
        kill(-pid, SIGKILL);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The marker line was read (the process group was then killed).
    Marker,
    /// stderr closed before the marker; the exit status.
    Exited(Option<ExitStatus>),
    /// Neither the marker nor EOF within the time limit.
    TimedOut,
    /// The process could not be started.
    SpawnFailed(String),
}

/// The stderr lines read (without line ends, invalid UTF-8 replaced) and how the run ended.
#[derive(Debug, Clone)]
pub struct MarkerRun {
    pub lines: Vec<String>,
    pub ending: Ending,
}

impl MarkerRun {
    /// Everything read from stderr, as one text.
    pub fn stderr_text(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// A one-line description of how the run ended.
    pub fn ending_text(&self) -> String {
        match &self.ending {
            Ending::Marker => "printed the end marker".to_string(),
            Ending::Exited(Some(st)) => format!("exited ({st}) before the end marker"),
            Ending::Exited(None) => "closed stderr before the end marker".to_string(),
            Ending::TimedOut => "timed out before the end marker".to_string(),
            Ending::SpawnFailed(e) => format!("could not be started: {e}"),
        }
    }
}

/// What to run.
pub struct Spec<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    /// The complete environment (the child's environment is cleared first).
    pub env: &'a [(String, String)],
    /// A file fed to stdin; `None` = /dev/null.
    pub stdin: Option<&'a Path>,
}

/// Runs `spec` in its own process group with stdout discarded, reading stderr line by line
/// until a line equal to `marker`, EOF or `timeout`; then kills the whole group.
pub fn run_until_marker(spec: &Spec, marker: &str, timeout: Duration) -> MarkerRun {
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.args)
        .current_dir(spec.cwd)
        .env_clear()
        .envs(
            spec.env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    match spec.stdin {
        Some(p) => match fs::File::open(p) {
            Ok(f) => {
                cmd.stdin(Stdio::from(f));
            }
            Err(e) => {
                return MarkerRun {
                    lines: vec![],
                    ending: Ending::SpawnFailed(format!("open stdin file {}: {e}", p.display())),
                };
            }
        },
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return MarkerRun {
                lines: vec![],
                ending: Ending::SpawnFailed(format!("{}: {e}", spec.program.display())),
            };
        }
    };
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    // The reader is detached: if a grandchild outside the group kept the pipe open, the
    // test must not hang on it.
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    let ending = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill_group(&mut child);
            break Ending::TimedOut;
        }
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line == marker;
                lines.push(line);
                if done {
                    kill_group(&mut child);
                    break Ending::Marker;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_group(&mut child);
                break Ending::TimedOut;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // EOF: every holder of the pipe closed it. Normally the process exited;
                // if it lives on without stderr, kill it at the deadline.
                let ended = loop {
                    match child.try_wait() {
                        Ok(Some(st)) => break Ending::Exited(Some(st)),
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Ok(None) => break Ending::Exited(kill_group(&mut child)),
                        Err(_) => break Ending::Exited(None),
                    }
                };
                break ended;
            }
        }
    };
    MarkerRun { lines, ending }
}
