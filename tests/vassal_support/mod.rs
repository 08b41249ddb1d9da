//! Helpers for the vassal integration tests: a scratch directory, the real `imperium`
//! binary run as an instance with its log in a file, uwsgi/HTTP clients over real sockets,
//! and polling with generous deadlines (the tests never assert on timing).
#![allow(dead_code)]

pub use imperium_vassal::serde_json::{self, Value};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_imperium");
/// Generous: the machine is shared; nothing here measures time.
pub const LONG: Duration = Duration::from_secs(40);

/// A directory removed at the end of the test (kept when it fails).
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("imperium-v-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
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

/// Sends a signal with kill(1) (the tests use no unsafe code and no extra crates).
pub fn signal(pid: i32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(st) => st
            .rfind(')')
            .and_then(|i| st[i + 1..].split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// The pids whose parent is `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(st) = fs::read_to_string(format!("/proc/{n}/stat")) else {
            continue;
        };
        let ppid = st
            .rfind(')')
            .and_then(|i| st[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(n);
        }
    }
    out
}

/// A running instance.
pub struct Instance {
    pub child: Child,
    pub log: PathBuf,
    pub status: Option<ExitStatus>,
}

impl Instance {
    /// Runs `imperium` with `args` in `s.dir`, stdin on /dev/null, stderr into a file.
    pub fn start(s: &Scratch, args: &[&str]) -> Instance {
        Self::spawn(s, Command::new(BIN).args(args), "instance.log")
    }

    /// Runs a prepared command (its stderr goes into `log_name` of the scratch dir).
    pub fn spawn(s: &Scratch, cmd: &mut Command, log_name: &str) -> Instance {
        let log = s.path(log_name);
        let f = fs::File::create(&log).unwrap();
        cmd.current_dir(&s.dir)
            .stdout(Stdio::null())
            .stderr(f)
            .env_remove("UWSGI_RELOADS");
        // Variables a test does not set itself are not inherited from the test runner.
        for var in [
            "UWSGI_EMPEROR_FD",
            "UWSGI_EMPEROR_FD_CONFIG",
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
        ] {
            if cmd.get_envs().all(|(k, _)| k != var) {
                cmd.env_remove(var);
            }
        }
        let child = cmd.spawn().expect("cannot run the imperium binary");
        Instance {
            child,
            log,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `needle`; returns that line.
    pub fn wait_log(&self, needle: &str) -> String {
        let mut found = String::new();
        wait_until(
            &format!("log line containing {needle:?} in {}", self.log.display()),
            || match self.stderr().lines().find(|l| l.contains(needle)) {
                Some(l) => {
                    found = l.to_owned();
                    true
                }
                None => false,
            },
        );
        found
    }

    /// Waits until `needle` appears at least `n` times.
    pub fn wait_count(&self, needle: &str, n: usize) {
        wait_until(&format!("{n} log lines containing {needle:?}"), || {
            self.count(needle) >= n
        });
    }

    pub fn count(&self, needle: &str) -> usize {
        self.stderr().matches(needle).count()
    }

    /// The port of TCP socket `index` (from the `bound to TCP address` line).
    pub fn port(&self, index: usize) -> u16 {
        let line = self.wait_log(&format!("uwsgi socket {index} bound to TCP"));
        let addr = line
            .split("address ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Worker pids from `spawned`/`Respawned` lines, in order, for worker `id`.
    pub fn worker_pids(&self, id: usize) -> Vec<i32> {
        self.stderr()
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                if let Some(rest) = l.strip_prefix(&format!("spawned uWSGI worker {id} (pid: ")) {
                    return rest.split(',').next()?.parse().ok();
                }
                l.strip_prefix(&format!("Respawned uWSGI worker {id} (new pid: "))?
                    .trim_end_matches(')')
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Waits for the master to be up with `workers` workers spawned.
    pub fn wait_ready(&self, workers: usize) {
        self.wait_log("spawned uWSGI master process");
        for id in 1..=workers {
            self.wait_log(&format!("spawned uWSGI worker {id} "));
        }
    }

    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let end = Instant::now() + LONG;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the instance did not exit; log:\n{}", self.stderr());
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            // The master first (a master outliving its workers would respawn them), then
            // the children it had (imperium's die with it anyway; the real uWSGI's may not).
            let kids = children(self.pid());
            let _ = self.child.kill();
            let _ = self.child.wait();
            for c in kids {
                let _ = Command::new("kill")
                    .args(["-KILL", &c.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "--- instance log {} ---\n{}",
                self.log.display(),
                self.stderr()
            );
        }
    }
}

/// A uwsgi packet (modifier1 0) carrying `vars`.
pub fn uwsgi_packet(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v.as_bytes());
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out
}

/// A typical request from a web server.
pub fn uwsgi_get(path: &str) -> Vec<u8> {
    uwsgi_packet(&[
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "10.0.0.1"),
    ])
}

/// Where to connect.
#[derive(Clone, Debug)]
pub enum Target {
    Tcp(String),
    Unix(PathBuf),
    Abstract(String),
}

pub enum Conn {
    Tcp(std::net::TcpStream),
    Unix(UnixStream),
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(b),
            Conn::Unix(s) => s.read(b),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(b),
            Conn::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Conn {
    pub fn shutdown_write(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

pub fn connect(t: &Target) -> Conn {
    let c = match t {
        Target::Tcp(a) => Conn::Tcp(
            std::net::TcpStream::connect(a).unwrap_or_else(|e| panic!("connect {a}: {e}")),
        ),
        Target::Unix(p) => Conn::Unix(
            UnixStream::connect(p).unwrap_or_else(|e| panic!("connect {}: {e}", p.display())),
        ),
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            Conn::Unix(
                UnixStream::connect_addr(&a).unwrap_or_else(|e| panic!("connect @{name}: {e}")),
            )
        }
    };
    let t = Some(LONG);
    match &c {
        Conn::Tcp(s) => {
            s.set_read_timeout(t).unwrap();
        }
        Conn::Unix(s) => {
            s.set_read_timeout(t).unwrap();
        }
    }
    c
}

/// Reads until the peer closes (or an error such as a reset).
pub fn read_to_close(c: &mut Conn) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `data` and reads the whole answer (the server closes the connection).
pub fn roundtrip(t: &Target, data: &[u8]) -> Vec<u8> {
    let mut c = connect(t);
    c.write_all(data).unwrap();
    read_to_close(&mut c)
}

/// Reads exactly one HTTP response with a Content-Length body.
pub fn read_response(c: &mut Conn) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut b).unwrap(),
            1,
            "connection closed in the middle of a response head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(b[0]);
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// The stats document served at `t`.
pub fn stats(t: &Target) -> Value {
    let raw = roundtrip(t, b"");
    serde_json::from_slice(&raw)
        .unwrap_or_else(|e| panic!("stats is not JSON ({e}): {}", String::from_utf8_lossy(&raw)))
}

/// Every key path of a JSON document (`workers[].cores[].id`...), sorted.
pub fn key_paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.push(p.clone());
                    walk(v, &p, out);
                }
            }
            Value::Array(a) => {
                for v in a {
                    walk(v, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out.sort();
    out.dedup();
    out
}

/// The real uWSGI (the oracle): `$IMPERIUM_UWSGI` or `target/venv/bin/uwsgi`.
pub fn uwsgi_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("IMPERIUM_UWSGI").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/uwsgi");
    assert!(
        p.is_file(),
        "no real uWSGI at {} (scripts/test.sh builds it)",
        p.display()
    );
    p
}
