//! Real peers for the monitor tests: a throwaway PostgreSQL database per test (through
//! `psql`), a TCP proxy the test can stop and start (a server "going away"), the Python of
//! target/venv (pika, pyzmq, mockupdb) and the monitor helper processes of an Emperor.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A database created for one test and dropped at the end.
pub struct PgDb {
    pub name: String,
}

fn psql(db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl PgDb {
    /// A new database with the `vassals` table uWSGI's default query reads, plus uid, gid
    /// and socket columns.
    pub fn new(tag: &str) -> PgDb {
        let name = format!(
            "imperium_t_{tag}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let _ = psql("postgres", &format!("DROP DATABASE IF EXISTS {name}"));
        psql("postgres", &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!("PostgreSQL on 127.0.0.1:5432 is required (scripts/test.sh starts it): {e}")
        });
        let db = PgDb { name };
        db.sql("CREATE TABLE vassals (name text, config text, ts timestamptz DEFAULT now(), uid int, gid int, socket text)");
        db
    }

    pub fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql).unwrap_or_else(|e| panic!("SQL failed: {sql}: {e}"))
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        psql(&self.name, sql)
    }

    /// The conninfo for a monitor (through `port`, for a proxy).
    pub fn conninfo(&self, port: u16) -> String {
        format!(
            "host=127.0.0.1 port={port} user=postgres dbname={}",
            self.name
        )
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A TCP forwarder to a real server that the test can take down (refusing connections and
/// cutting the open ones) and bring back on the same port.
pub struct Proxy {
    pub port: u16,
    ip: String,
    target: String,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    generation: Arc<AtomicU32>,
}

impl Proxy {
    pub fn new(target: &str) -> Proxy {
        Self::listen_on("127.0.0.1", target)
    }

    /// A proxy listening on `ip` (0.0.0.0 to be reached from network namespaces).
    pub fn listen_on(ip: &str, target: &str) -> Proxy {
        let l = TcpListener::bind((ip, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Proxy {
            port,
            ip: ip.to_owned(),
            target: target.to_owned(),
            up: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            generation: Arc::new(AtomicU32::new(0)),
        };
        p.serve(l);
        p
    }

    fn serve(&self, l: TcpListener) {
        self.up.store(true, Ordering::SeqCst);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (up, conns, target, gens) = (
            self.up.clone(),
            self.conns.clone(),
            self.target.clone(),
            self.generation.clone(),
        );
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) && gens.load(Ordering::SeqCst) == generation {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let Ok(s) = TcpStream::connect(&target) else {
                            continue;
                        };
                        conns.lock().unwrap().push(c.try_clone().unwrap());
                        conns.lock().unwrap().push(s.try_clone().unwrap());
                        pump(c.try_clone().unwrap(), s.try_clone().unwrap());
                        pump(s, c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    /// The server goes away: the port refuses connections, open ones are cut.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// It comes back on the same port.
    pub fn up(&self) {
        let mut tries = 0;
        let l = loop {
            match TcpListener::bind((self.ip.as_str(), self.port)) {
                Ok(l) => break l,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 200, "cannot re-bind the proxy port: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        self.serve(l);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The Python of target/venv (pika, pyzmq, mockupdb are installed there by scripts/test.sh).
pub fn venv_python() -> String {
    let candidates = [
        std::env::var("IMPERIUM_VENV")
            .map(|v| format!("{v}/bin/python"))
            .unwrap_or_default(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/venv/bin/python").to_owned(),
    ];
    for c in candidates {
        if !c.is_empty() && Path::new(&c).is_file() {
            return c;
        }
    }
    panic!(
        "target/venv is missing: run scripts/test.sh (it installs pika, pyzmq and mockupdb there)"
    );
}

/// Runs a Python snippet with the venv's Python; panics with its stderr on failure.
pub fn python(code: &str, args: &[&str]) -> String {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        code
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pids of the monitor helper processes whose parent is `emperor`.
pub fn monitor_helpers(emperor: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !cmd.starts_with(b"imperium [") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut it = after.split_whitespace();
        let state = it.next();
        if state == Some("Z") {
            continue;
        }
        if it.next().and_then(|p| p.parse::<i32>().ok()) == Some(emperor) {
            out.push(pid);
        }
    }
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP GET; the status line, or None when nothing answers.
pub fn http_status(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::to_owned)
}

/// A RabbitMQ vhost and user made for one test (so parallel tests never share the
/// `uwsgi.emperor` fanout exchange), deleted at the end.
pub struct RabbitVhost {
    pub vhost: String,
    pub user: String,
    pub password: String,
}

fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl RabbitVhost {
    pub fn new(tag: &str) -> RabbitVhost {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let vhost = format!("imperium_t_{tag}_{}_{n}", std::process::id());
        let user = format!("imp_{tag}_{}_{n}", std::process::id());
        let password = format!("pw-{n}-secret");
        rabbitmqctl(&["add_vhost", &vhost])
            .unwrap_or_else(|e| panic!("RabbitMQ is required (scripts/test.sh starts it): {e}"));
        rabbitmqctl(&["add_user", &user, &password]).unwrap();
        rabbitmqctl(&["set_permissions", "-p", &vhost, &user, ".*", ".*", ".*"]).unwrap();
        RabbitVhost {
            vhost,
            user,
            password,
        }
    }

    /// The monitor URI through `port` (a proxy, or 5672).
    pub fn uri(&self, port: u16) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:{port}/{}",
            self.user, self.password, self.vhost
        )
    }

    /// Publishes one message on the `uwsgi.emperor` fanout exchange (pika).
    pub fn publish(&self, routing_key: &str, body: &[u8]) {
        self.publish_with(routing_key, body, &[]);
    }

    /// Publishes with headers (`key=value`; a value of digits is sent as an integer).
    pub fn publish_with(&self, routing_key: &str, body: &[u8], headers: &[&str]) {
        let f = std::env::temp_dir().join(format!(
            "imperium-amqp-body-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&f, body).unwrap();
        let uri = self.uri(5672);
        let path = f.to_string_lossy().into_owned();
        let mut args = vec![uri.as_str(), routing_key, path.as_str()];
        args.extend_from_slice(headers);
        python(
            "import pika, sys\n\
             uri, rk, path = sys.argv[1:4]\n\
             h = {}\n\
             for kv in sys.argv[4:]:\n\
             \x20   k, v = kv.split('=', 1); h[k] = int(v) if v.isdigit() else v\n\
             c = pika.BlockingConnection(pika.URLParameters(uri))\n\
             ch = c.channel()\n\
             ch.exchange_declare(exchange='uwsgi.emperor', exchange_type='fanout')\n\
             props = pika.BasicProperties(headers=h) if h else None\n\
             ch.basic_publish(exchange='uwsgi.emperor', routing_key=rk, body=open(path, 'rb').read(), properties=props)\n\
             c.close()\n",
            &args,
        );
        let _ = std::fs::remove_file(f);
    }
}

impl Drop for RabbitVhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.vhost]);
        let _ = rabbitmqctl(&["delete_user", &self.user]);
    }
}

/// Sends one multipart message with a libzmq PUSH socket (pyzmq). The parts travel
/// through a file (length-prefixed), as they may be larger than an argument.
pub fn zmq_push(endpoint: &str, parts: &[&[u8]]) {
    let f = std::env::temp_dir().join(format!(
        "imperium-zmq-parts-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let mut data = Vec::new();
    for p in parts {
        data.extend_from_slice(&(p.len() as u32).to_le_bytes());
        data.extend_from_slice(p);
    }
    std::fs::write(&f, data).unwrap();
    python(
        "import zmq, sys\n\
         data = open(sys.argv[2], 'rb').read()\n\
         parts, i = [], 0\n\
         while i < len(data):\n\
         \x20   n = int.from_bytes(data[i:i+4], 'little'); parts.append(data[i+4:i+4+n]); i += 4 + n\n\
         ctx = zmq.Context()\n\
         s = ctx.socket(zmq.PUSH)\n\
         s.setsockopt(zmq.LINGER, 10000)\n\
         s.connect(sys.argv[1])\n\
         s.send_multipart(parts)\n\
         s.close()\n\
         ctx.term()\n",
        &[endpoint, &f.to_string_lossy()],
    );
    let _ = std::fs::remove_file(f);
}

/// A test-vassal config to push (its probe log, script and a tag logged at start).
pub fn probe_cfg(log: &Path, tag: &str, script: &str) -> String {
    format!(
        "[uwsgi]\nprobe-log = {}\nprobe-script = {script}\nprobe-tag = {tag}\n",
        log.display()
    )
}

/// A MockupDB server (tests/support/mongo_fixture.py) answering `find` on `vassals` with
/// the documents of a state file (extended JSON) the test rewrites.
pub struct MongoFixture {
    pub port: u16,
    pub state: std::path::PathBuf,
    child: Option<std::process::Child>,
}

pub const MONGO_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/mongo_fixture.py"
);

impl MongoFixture {
    pub fn new(dir: &Path) -> MongoFixture {
        let state = dir.join("mongo-state.json");
        std::fs::write(&state, "[]").unwrap();
        let mut f = MongoFixture {
            port: free_port(),
            state,
            child: None,
        };
        f.start();
        f
    }

    /// Starts (again) on the same port; waits until it listens.
    pub fn start(&mut self) {
        use std::io::BufRead;
        let mut child = Command::new(venv_python())
            .arg(MONGO_FIXTURE)
            .arg(&self.state)
            .arg(self.port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cannot run the MockupDB fixture");
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("ready"),
            "MockupDB fixture did not start: {line:?} (scripts/test.sh installs mockupdb into target/venv)"
        );
        self.child = Some(child);
    }

    /// The server goes away.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The documents `find` returns from now on (extended JSON array).
    pub fn set_docs(&self, json: &str) {
        let tmp = self.state.with_extension("tmp");
        std::fs::write(&tmp, json).unwrap();
        std::fs::rename(&tmp, &self.state).unwrap();
    }
}

impl Drop for MongoFixture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An extended-JSON BSON date.
pub fn json_date(secs: i64) -> String {
    format!("{{\"$date\": {{\"$numberLong\": \"{}\"}}}}", secs * 1000)
}

/// A network namespace made by a test, linked to the host by a veth pair: the host side
/// is 10.77.N.1/30, the namespace side 10.77.N.2/30 with a default route to the host.
/// Deleted (with its veth pair) at the end.
pub struct NetNs {
    pub name: String,
    pub host_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("cannot run ip (scripts/test.sh installs iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    pub fn new(n: u8) -> NetNs {
        let tag = std::process::id() % 10_000;
        let name = format!("imp-fleet-{tag}-{n}");
        let host_if = format!("impf{tag}h{n}");
        let ns_if = format!("impf{tag}n{n}");
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        let subnet = 100 + n;
        let host_ip = format!("10.77.{subnet}.1");
        let ns_ip = format!("10.77.{subnet}.2/30");
        ip(&["netns", "add", &name]);
        let ns = NetNs {
            name: name.clone(),
            host_ip: host_ip.clone(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "netns", "exec", &name, "ip", "addr", "add", &ns_ip, "dev", &ns_if,
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &ns_if, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        ip(&[
            "netns", "exec", &name, "ip", "route", "add", "default", "via", &host_ip,
        ]);
        ns
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A tiny HTTP/1.0 server for `http://` config URLs: `set(path, Some(body))` serves it with
/// 200, `set(path, None)` makes it answer 404.
pub struct HttpFiles {
    pub port: u16,
    files: Arc<Mutex<std::collections::HashMap<String, Option<String>>>>,
}

impl HttpFiles {
    pub fn new() -> HttpFiles {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let files: Arc<Mutex<std::collections::HashMap<String, Option<String>>>> = Arc::default();
        let f2 = files.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut buf = [0u8; 4096];
                let n = c.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = f2.lock().unwrap().get(&path).cloned().flatten();
                let resp = match body {
                    Some(b) => format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()),
                    None => "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
                };
                let _ = c.write_all(resp.as_bytes());
            }
        });
        HttpFiles { port, files }
    }

    pub fn set(&self, path: &str, body: Option<&str>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.map(str::to_owned));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
