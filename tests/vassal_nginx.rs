//! Real clients: nginx (the Debian package) talks to the vassal with `uwsgi_pass` over
//! TCP and over a UNIX socket, and uwsgitop (PyPI, in target/venv) reads the stats server.
//! Until an application host is loaded the vassal answers uWSGI's no-app 500; the tests
//! check what crosses the uwsgi protocol: the status and headers the vassal produced reach
//! the client through nginx, and the variables nginx sent are the ones the vassal logs.

mod vassal_support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use vassal_support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in the foreground with a generated configuration; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(s: &Scratch, locations: &str) -> Nginx {
        let dir = s.path("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n{locations}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nginx is not installed (scripts/test.sh installs it)");
        let child = Command::new(nginx)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("cannot run nginx");
        let n = Nginx { child, port, dir };
        wait_until("nginx listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        n
    }

    /// One request through nginx; the whole response.
    fn get(&self, path: &str) -> String {
        let mut c = connect(&Target::Tcp(format!("127.0.0.1:{}", self.port)));
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: nginx.test\r\nUser-Agent: imperium-test\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        String::from_utf8_lossy(&read_to_close(&mut c)).into_owned()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- nginx error log ---\n{}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
        }
    }
}

#[test]
fn nginx_uwsgi_pass_over_tcp_and_unix() {
    let s = Scratch::new("nginx");
    let sock = s.path("v.sock");
    let i = Instance::start(
        &s,
        &[
            "--socket",
            "127.0.0.1:0",
            "--socket",
            &sock.to_string_lossy(),
            "--master",
            "--processes",
            "2",
        ],
    );
    let vport = i.port(0);
    i.wait_ready(2);
    let params = "/etc/nginx/uwsgi_params";
    let nginx = Nginx::start(
        &s,
        &format!(
            "    location /tcp/ {{ include {params}; uwsgi_pass 127.0.0.1:{vport}; }}\n    location /unix/ {{ include {params}; uwsgi_pass unix:{}; }}",
            sock.display()
        ),
    );
    for path in ["/tcp/hello?x=1", "/unix/there?y=2", "/tcp/again"] {
        let r = nginx.get(path);
        assert!(
            r.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{path}: {r}"
        );
        assert!(
            r.contains("\r\nContent-Type: text/plain\r\n"),
            "{path}: {r}"
        );
        // nginx re-frames the body the vassal sent (21 bytes) as one chunk.
        assert!(
            r.ends_with("\r\n\r\n15\r\nInternal Server Error\r\n0\r\n\r\n"),
            "{path}: {r}"
        );
        // The vassal parsed nginx's packet: method, URI, protocol and client address.
        let uri = path;
        let line = i.wait_log(&format!("GET {uri} => generated 21 bytes"));
        assert!(line.contains("] 127.0.0.1 () {"), "{line}");
        assert!(line.contains("(HTTP/1.1 500) 2 headers"), "{line}");
    }
    // nginx's own view: both upstream kinds answered.
    let access = std::fs::read_to_string(nginx.dir.join("access.log")).unwrap();
    assert_eq!(access.matches("\" 500 ").count(), 3, "{access}");
}

#[test]
fn uwsgitop_reads_the_stats_server() {
    let s = Scratch::new("uwsgitop");
    let stats = s.path("stats.sock");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--stats",
            &stats.to_string_lossy(),
        ],
    );
    i.wait_ready(2);
    let venv = std::env::var_os("IMPERIUM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv"));
    let top = venv.join("bin/uwsgitop");
    assert!(
        top.is_file(),
        "no uwsgitop at {} (scripts/test.sh installs it)",
        top.display()
    );
    // uwsgitop is a curses program: run it on a pseudo-terminal for a few refreshes.
    let driver = r#"
import os, pty, sys, time, fcntl, termios, struct, signal
top, addr = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    os.environ["TERM"] = "xterm"
    os.execv(top, [top, "--frequency", "1", addr])
out = b""
end = time.time() + 4
while time.time() < end:
    try:
        import select
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            out += os.read(fd, 65536)
    except OSError:
        break
# SIGKILL: after a SIGINT, curses may block writing its clean-up to a pty nobody reads.
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;
    let out = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(driver)
        .arg(&top)
        .arg(&stats)
        .output()
        .expect("cannot run python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WID"),
        "uwsgitop drew no worker table: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("Traceback"), "{text}");
    // One row per worker, with its pid.
    for w in 1..=2 {
        let pid = i.worker_pids(w)[0];
        assert!(
            text.contains(&pid.to_string()),
            "worker {w} ({pid}) missing: {text}"
        );
    }
}
