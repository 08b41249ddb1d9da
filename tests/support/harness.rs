//! Shared helpers for the Emperor integration tests: a scratch directory, the real
//! `imperium` binary running as an Emperor with its log captured, the scriptable test
//! vassal, and polling with generous deadlines (never timing assertions).
#![allow(dead_code)]

pub use imperium_emperor::serde_json::{self, Value};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_imperium");
pub const PROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/test_vassal.py");
/// Generous: the machine is shared; nothing here measures time.
pub const LONG: Duration = Duration::from_secs(30);

/// A directory removed at the end of the test.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("imperium-t-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("vassals")).unwrap();
        Scratch { dir }
    }

    pub fn vassals(&self) -> PathBuf {
        self.dir.join("vassals")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// The probe log shared by every test vassal of this scratch directory.
    pub fn probe_log(&self) -> PathBuf {
        self.dir.join("probe.log")
    }

    /// Writes a test vassal config into the vassals directory.
    pub fn vassal(&self, name: &str, script: &str) -> PathBuf {
        let p = self.vassals().join(name);
        write_atomic(&p, &vassal_text(&self.probe_log(), script));
        p
    }

    pub fn events(&self) -> Vec<Event> {
        events(&self.probe_log())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn vassal_text(log: &Path, script: &str) -> String {
    format!(
        "[uwsgi]\nprobe-log = {}\nprobe-script = {script}\n",
        log.display()
    )
}

/// Writes through a temporary file and a rename (never a half-written config).
pub fn write_atomic(p: &Path, text: &str) {
    let tmp = p.with_file_name(format!(".{}.tmp", p.file_name().unwrap().to_string_lossy()));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, p).unwrap();
}

/// One line of the probe log.
#[derive(Debug, Clone)]
pub struct Event {
    pub pid: i32,
    pub event: String,
    pub fields: HashMap<String, String>,
}

impl Event {
    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
}

pub fn events(log: &Path) -> Vec<Event> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut fields = HashMap::new();
            for w in l.split(' ') {
                let (k, v) = w.split_once('=')?;
                fields.insert(k.to_owned(), v.replace("%20", " "));
            }
            let pid = fields.get("pid")?.parse().ok()?;
            let event = fields.get("event")?.clone();
            Some(Event { pid, event, fields })
        })
        .collect()
}

/// Polls `f` every 50 ms until it is true; fails the test after `LONG` with `what`.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + LONG;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

/// Starts pids of the probes, in order.
pub fn starts(s: &Scratch) -> Vec<Event> {
    s.events()
        .into_iter()
        .filter(|e| e.event == "start")
        .collect()
}

pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(st) => st
            .rfind(')')
            .and_then(|i| st[i + 1..].split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// A running Emperor.
pub struct Emperor {
    pub child: Child,
    pub log: PathBuf,
    pub status: Option<ExitStatus>,
}

impl Emperor {
    /// Runs `imperium` with the given arguments, stderr into a file of the scratch dir.
    pub fn start(s: &Scratch, args: &[String]) -> Emperor {
        Self::start_with(s, args, &[])
    }

    pub fn start_with(s: &Scratch, args: &[String], env: &[(&str, &str)]) -> Emperor {
        let log = s.path("emperor.log");
        let f = fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&s.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("cannot run the imperium binary");
        Emperor {
            child,
            log,
            status: None,
        }
    }

    /// Standard arguments: dir monitor on the scratch vassals, the probe as binary, fast
    /// rescans, plus `extra`.
    pub fn probe_args(s: &Scratch, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--emperor",
            &s.vassals().to_string_lossy(),
            "--binary-path",
            PROBE,
            "--emperor-freq",
            "1",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str) {
        wait_until(&format!("emperor log line containing {needle:?}"), || {
            self.stderr().contains(needle)
        });
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.stderr().matches(needle).count()
    }

    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits for the Emperor to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let end = Instant::now() + LONG * 2;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the Emperor did not exit; log:\n{}", self.stderr());
    }
}

impl Drop for Emperor {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- emperor log ---\n{}--- end ---", self.stderr());
        }
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal to a process.
pub fn signal(pid: i32, sig: i32) {
    use imperium_emperor::nix::sys::signal::{Signal, kill};
    use imperium_emperor::nix::unistd::Pid;
    let sig = Signal::try_from(sig).expect("a valid signal number");
    kill(Pid::from_raw(pid), sig).expect("kill()");
}

/// Reads everything a stream socket sends until it closes.
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// The stats JSON from a UNIX stats socket.
pub fn stats_unix(path: &Path) -> Value {
    let mut conn = None;
    wait_until("the stats socket accepting", || {
        conn = std::os::unix::net::UnixStream::connect(path).ok();
        conn.is_some()
    });
    let c = conn.expect("connected");
    let text = read_all(c);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"))
}

/// The stats entry of one vassal (Null when absent).
pub fn vassal_stats(path: &Path, id: &str) -> Value {
    let st = stats_unix(path);
    st["vassals"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// One command on the command socket; the JSON answer.
pub fn command(path: &Path, line: &str) -> Value {
    let mut conn = None;
    wait_until("the command socket accepting", || {
        conn = std::os::unix::net::UnixStream::connect(path).ok();
        conn.is_some()
    });
    let mut c = conn.expect("connected");
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let text = read_all(c);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("command answer is not JSON ({e}): {text}"))
}

/// The real uWSGI for compatibility tests: `IMPERIUM_UWSGI` (set by scripts/test.sh),
/// else target/venv/bin/uwsgi. Fails (never skips) when missing.
pub fn real_uwsgi() -> String {
    let candidates = [
        std::env::var("IMPERIUM_UWSGI").unwrap_or_default(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/venv/bin/uwsgi").to_owned(),
    ];
    for c in candidates {
        if !c.is_empty() && Path::new(&c).is_file() {
            return c;
        }
    }
    panic!(
        "the real uWSGI is missing: run scripts/test.sh (it installs uWSGI into target/venv and exports IMPERIUM_UWSGI)"
    );
}
