//! The command line's one-shot actions and the configuration sources that the differential
//! corpus cannot compare with uWSGI: `http://`, `emperor://` (a config pushed over
//! `UWSGI_EMPEROR_FD_CONFIG`), `data://` (a blob appended to the binary), and the binary
//! working under the name `uwsgi`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_imperium")
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("config-cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn cmd(program: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `--show-config` block of a run.
fn block(o: &Output) -> String {
    let e = stderr(o);
    let start = e
        .find(";uWSGI instance configuration")
        .unwrap_or_else(|| panic!("no show-config block in:\n{e}"));
    let end = e.find(";end of configuration").expect("end of block");
    e[start..end].to_string()
}

#[test]
fn version_prints_the_version_and_exits_zero() {
    let d = scratch("version");
    let o = cmd(Path::new(bin()), &d, &["--version"])
        .output()
        .expect("run");
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn help_lists_options_with_short_flags() {
    let d = scratch("help");
    let o = cmd(Path::new(bin()), &d, &["--help"])
        .output()
        .expect("run");
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("Usage: "), "{out}");
    assert!(out.contains("-s|--socket"), "socket row missing");
    assert!(out.contains("-M|--master"), "master row missing");
    assert!(out.contains("--emperor-tyrant"), "emperor rows missing");
    assert!(out.lines().count() > 800, "expected every option");
}

#[test]
fn get_prints_first_values_and_exits() {
    let d = scratch("get");
    std::fs::write(
        d.join("a.ini"),
        "[uwsgi]\nsocket = /tmp/first.sock\nsocket = /tmp/second.sock\nx = %(socket)\n",
    )
    .unwrap();
    let o = cmd(
        Path::new(bin()),
        &d,
        &[
            "--ini", "a.ini", "--get", "socket", "--get", "x", "--get", "nothing",
        ],
    )
    .output()
    .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "/tmp/first.sock\n/tmp/first.sock\n");
}

#[test]
fn unimplemented_options_are_reported_once_by_name() {
    let d = scratch("unimplemented");
    std::fs::write(
        d.join("a.ini"),
        "[uwsgi]\nsnmp-community = x\nsnmp-community = y\n",
    )
    .unwrap();
    let o = cmd(Path::new(bin()), &d, &["--ini", "a.ini"])
        .output()
        .expect("run");
    let e = stderr(&o);
    assert_eq!(
        e.matches("option 'snmp-community' is recognised but not implemented yet")
            .count(),
        1,
        "{e}"
    );
}

#[test]
fn works_under_the_name_uwsgi() {
    let d = scratch("symlink");
    let link = d.join("uwsgi");
    std::os::unix::fs::symlink(bin(), &link).expect("symlink");
    std::fs::write(d.join("app.ini"), "[uwsgi]\nx = %n\n").unwrap();
    let o = cmd(&link, &d, &["--show-config", "app.ini"])
        .output()
        .expect("run");
    assert!(block(&o).contains("x = app\n"), "{}", stderr(&o));
    let v = cmd(&link, &d, &["--version"]).output().expect("run");
    assert_eq!(stdout(&v).trim(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn http_source_is_fetched_and_magic_expanded() {
    let d = scratch("http");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = [0u8; 2048];
        let n = s.read(&mut req).unwrap_or(0);
        let body = "[uwsgi]\nfrom = http\nname = %o\n";
        let resp = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes());
        String::from_utf8_lossy(&req[..n]).into_owned()
    });
    let url = format!("http://127.0.0.1:{port}/configs/app.ini");
    let o = cmd(Path::new(bin()), &d, &["--show-config", "--ini", &url])
        .output()
        .expect("run");
    let req = server.join().expect("server");
    assert!(
        req.starts_with("GET /configs/app.ini HTTP/1.0\r\n"),
        "{req}"
    );
    let b = block(&o);
    assert!(b.contains("from = http\n"), "{b}");
    assert!(b.contains(&format!("name = {url}\n")), "{b}");
}

#[test]
fn http_source_error_status_is_a_clear_error() {
    let d = scratch("http-404");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = [0u8; 2048];
        let _ = s.read(&mut req);
        let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\n\r\nnope");
    });
    let url = format!("http://127.0.0.1:{port}/missing.ini");
    let o = cmd(Path::new(bin()), &d, &["--ini", &url])
        .output()
        .expect("run");
    server.join().expect("server");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("404"), "{}", stderr(&o));
}

#[test]
fn emperor_source_reads_a_pushed_config() {
    let d = scratch("emperor");
    let text = b"[uwsgi]\nfrom = emperor\n";
    let framed = imperium_config::wire::encode_pushed_config(text);
    let mut child = cmd(
        Path::new(bin()),
        &d,
        &["--show-config", "--ini", "emperor://app.ini"],
    )
    .env("UWSGI_EMPEROR_FD_CONFIG", "0")
    .stdin(Stdio::piped())
    .stderr(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&framed)
        .expect("push");
    let o = child.wait_with_output().expect("wait");
    let b = block(&o);
    assert!(b.contains("from = emperor\n"), "{b}");
    // The descriptor variable is internal: it never becomes an option.
    assert!(!b.contains("emperor-fd-config"), "{b}");
}

#[test]
fn emperor_source_outside_a_vassal_is_an_error() {
    let d = scratch("emperor-none");
    let o = cmd(Path::new(bin()), &d, &["--ini", "emperor://app.ini"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a vassal instance"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn data_source_reads_a_blob_appended_to_the_binary() {
    let d = scratch("data");
    let copy = d.join("imperium-with-data");
    std::fs::copy(bin(), &copy).expect("copy binary");
    let blob = b"[uwsgi]\nfrom = data slot\n";
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .expect("open copy");
    f.write_all(blob).unwrap();
    f.write_all(&(blob.len() as u64).to_le_bytes()).unwrap();
    drop(f);
    // Another test thread forking at the same moment may still hold our write descriptor
    // until it execs (ETXTBSY): retry briefly.
    let mut tries = 0;
    let o = loop {
        match cmd(&copy, &d, &["--show-config", "--ini", "data://0"]).output() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect("run"),
        }
    };
    assert!(block(&o).contains("from = data slot\n"), "{}", stderr(&o));
}

#[test]
fn env_options_come_before_the_command_line() {
    let d = scratch("env-order");
    let o = cmd(Path::new(bin()), &d, &["--show-config", "--set", "x=cli"])
        .env("UWSGI_X", "env")
        .env("UWSGI_RELOADS", "2")
        .output()
        .expect("run");
    let b = block(&o);
    let env_at = b.find("x = env").expect("env option");
    let cli_at = b.find("x = cli").expect("cli option");
    assert!(env_at < cli_at, "{b}");
    assert!(!b.contains("reloads"), "{b}");
}

#[test]
fn fallback_config_reexecutes_with_the_fallback_file() {
    let d = scratch("fallback");
    std::fs::write(
        d.join("app.ini"),
        "[uwsgi]\nfallback-config = safe.ini\nprocesses = many\n",
    )
    .unwrap();
    std::fs::write(
        d.join("safe.ini"),
        "[uwsgi]\nshow-config = true\nfrom = the safe config\n",
    )
    .unwrap();
    let o = cmd(Path::new(bin()), &d, &["--ini", "app.ini"])
        .output()
        .expect("run");
    let e = stderr(&o);
    assert!(e.contains("exited with status 1 !!!"), "{e}");
    assert!(e.contains("!!! Fallback config to safe.ini !!!"), "{e}");
    assert!(block(&o).contains("from = the safe config\n"), "{e}");
}

#[test]
fn fallback_config_loop_stops() {
    let d = scratch("fallback-loop");
    std::fs::write(
        d.join("app.ini"),
        "[uwsgi]\nfallback-config = app.ini\nprocesses = many\n",
    )
    .unwrap();
    let o = cmd(Path::new(bin()), &d, &["app.ini"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("fallbacks in a row already"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn emperor_source_reads_a_config_pushed_over_a_socketpair() {
    // Both uWSGI's Emperor and imperium's push configs over a socketpair, which /dev/fd
    // cannot reopen: the descriptor must be read directly.
    let d = scratch("emperor-socketpair");
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let child = cmd(
        Path::new(bin()),
        &d,
        &["--show-config", "--ini", "emperor://app.ini"],
    )
    .env("UWSGI_EMPEROR_FD_CONFIG", "0")
    .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
    .stderr(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn");
    let mut ours = ours;
    ours.write_all(&imperium_config::wire::encode_pushed_config(
        b"[uwsgi]\nfrom = socketpair\n",
    ))
    .expect("push");
    let o = child.wait_with_output().expect("wait");
    assert!(block(&o).contains("from = socketpair\n"), "{}", stderr(&o));
}

#[test]
fn fd_source_reads_a_socket() {
    let d = scratch("fd-socket");
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let child = cmd(Path::new(bin()), &d, &["--show-config", "--ini", "fd://0"])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut ours = ours;
    ours.write_all(b"[uwsgi]\nfrom = fd socket\n")
        .expect("write");
    drop(ours);
    let o = child.wait_with_output().expect("wait");
    assert!(block(&o).contains("from = fd socket\n"), "{}", stderr(&o));
}
