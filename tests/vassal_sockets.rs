//! Listening sockets of the instance, through the real binary: every bind form (UNIX path,
//! abstract, TCP v4 with an automatic port, TCP v6), `chmod-socket`, `vacuum`, `listen`,
//! `reuse-port`, adoption of a listening socket on fd 0, and the errors.

mod vassal_support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use vassal_support::*;

const NO_APP_11: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nInternal Server Error";

#[test]
fn unix_socket_chmod_and_vacuum() {
    let s = Scratch::new("unix");
    let sock = s.s("app.sock");
    let pid = s.s("app.pid");
    let mut i = Instance::start(
        &s,
        &[
            "--socket",
            &sock,
            "--chmod-socket=660",
            "--vacuum",
            "--master",
            "--pidfile",
            &pid,
        ],
    );
    i.wait_ready(1);
    assert!(
        i.stderr()
            .contains(&format!("uwsgi socket 0 bound to UNIX address {sock} fd 3")),
        "{}",
        i.stderr()
    );
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        i.pid().to_string()
    );
    assert_eq!(
        roundtrip(&Target::Unix(sock.clone().into()), &uwsgi_get("/")),
        NO_APP_11
    );

    i.signal("INT");
    assert!(i.wait_exit().success());
    assert!(
        !std::path::Path::new(&sock).exists(),
        "vacuum left the socket"
    );
    assert!(
        !std::path::Path::new(&pid).exists(),
        "vacuum left the pidfile"
    );
    assert!(
        i.stderr()
            .contains(&format!("VACUUM: unix socket {sock} removed."))
    );
}

#[test]
fn bare_chmod_socket_is_666_and_no_vacuum_keeps_the_file() {
    let s = Scratch::new("chmod666");
    let sock = s.s("a.sock");
    let mut i = Instance::start(&s, &["--socket", &sock, "--chmod-socket", "--master"]);
    i.wait_ready(1);
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o666
    );
    assert!(
        i.stderr()
            .contains("chmod() socket to 666 for lazy and brave users")
    );
    i.signal("INT");
    assert!(i.wait_exit().success());
    assert!(
        std::path::Path::new(&sock).exists(),
        "without vacuum the socket file stays"
    );
}

#[test]
fn tcp_v4_auto_port_v6_and_listen() {
    let s = Scratch::new("tcp");
    let i = Instance::start(
        &s,
        &[
            "--socket",
            "127.0.0.1:0",
            "--http-socket",
            "[::1]:0",
            "--master",
            "--processes",
            "2",
            "--listen",
            "7",
        ],
    );
    i.wait_ready(2);
    let p4 = i.port(0);
    let line = i.wait_log("uwsgi socket 1 bound to TCP6 address [::1]:");
    assert!(line.contains("(port auto-assigned)"), "{line}");
    let p6: u16 = line
        .split("[::1]:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        i.stderr()
            .contains("your server socket listen backlog is limited to 7 connections")
    );
    assert_eq!(
        roundtrip(&Target::Tcp(format!("127.0.0.1:{p4}")), &uwsgi_get("/")),
        NO_APP_11
    );
    let r = roundtrip(
        &Target::Tcp(format!("[::1]:{p6}")),
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert!(
        r.starts_with(b"HTTP/1.0 500 Internal Server Error\r\n"),
        "{}",
        String::from_utf8_lossy(&r)
    );
}

#[test]
fn abstract_socket() {
    let s = Scratch::new("abstract");
    let name = format!("imperium-test-{}", std::process::id());
    let i = Instance::start(&s, &["--socket", &format!("@{name}"), "--master"]);
    i.wait_ready(1);
    assert!(
        i.stderr()
            .contains(&format!("bound to UNIX address @{name} fd 3"))
    );
    assert_eq!(
        roundtrip(&Target::Abstract(name), &uwsgi_get("/")),
        NO_APP_11
    );
}

#[test]
fn reuse_port_lets_two_instances_share_a_port() {
    let s = Scratch::new("reuseport");
    let a = Instance::start(&s, &["--socket", "127.0.0.1:0", "--reuse-port", "--master"]);
    a.wait_ready(1);
    let port = a.port(0);
    let addr = format!("127.0.0.1:{port}");
    let s2 = Scratch::new("reuseport2");
    let b = Instance::start(&s2, &["--socket", &addr, "--reuse-port", "--master"]);
    b.wait_ready(1);
    assert_eq!(
        roundtrip(&Target::Tcp(addr.clone()), &uwsgi_get("/")),
        NO_APP_11
    );

    let s3 = Scratch::new("reuseport3");
    let mut c = Instance::start(&s3, &["--socket", &addr, "--master"]);
    assert_eq!(c.wait_exit().code(), Some(1));
    let log = c.stderr();
    assert!(
        log.contains(&format!(
            "probably another instance of uWSGI is running on the same address ({addr})."
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("unable to create server socket on: {addr}")),
        "{log}"
    );
}

#[test]
fn listening_socket_on_fd0_is_adopted() {
    let s = Scratch::new("fd0");
    let path = s.path("ondemand.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--master", "--processes", "1"])
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            listener,
        )));
    let i = Instance::spawn(&s, &mut cmd, "instance.log");
    i.wait_ready(1);
    assert!(
        i.stderr().contains(&format!(
            "uwsgi socket 0 inherited UNIX address {} fd 0",
            path.display()
        )),
        "{}",
        i.stderr()
    );
    assert_eq!(roundtrip(&Target::Unix(path), &uwsgi_get("/")), NO_APP_11);
}

#[test]
fn no_socket_and_bad_sockets_exit_1_naming_the_problem() {
    let s = Scratch::new("nosocket");
    let mut i = Instance::start(&s, &["--master"]);
    assert_eq!(i.wait_exit().code(), Some(1));
    assert!(
        i.stderr()
            .contains("The -s/--socket option is missing and stdin is not a socket.")
    );

    let mut i = Instance::start(&s, &["--socket", "127.0.0.1:99999", "--master"]);
    assert_eq!(i.wait_exit().code(), Some(1));
    assert!(
        i.stderr().contains("127.0.0.1:99999") && i.stderr().contains("invalid port"),
        "{}",
        i.stderr()
    );

    let mut i = Instance::start(&s, &["--socket", "/nonexistent-dir/x.sock", "--master"]);
    assert_eq!(i.wait_exit().code(), Some(1));
    assert!(
        i.stderr()
            .contains("unable to create server socket on: /nonexistent-dir/x.sock"),
        "{}",
        i.stderr()
    );

    let mut i = Instance::start(
        &s,
        &["--socket", &s.s("a.sock"), "--chmod-socket=rw", "--master"],
    );
    assert_eq!(i.wait_exit().code(), Some(1));
    assert!(i.stderr().contains("chmod-socket"), "{}", i.stderr());
}

/// Runs the instance as systemd would: the listening socket on fd 3, `LISTEN_FDS=1` and
/// `LISTEN_PID` set to the instance's own pid (the shell's `$$`, which exec keeps).
fn socket_activated(s: &Scratch, listener: std::net::TcpListener, args: &[&str]) -> Instance {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\" 3<&0 0</dev/null")
        .arg(BIN)
        .args(args);
    cmd.stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
        listener,
    )));
    Instance::spawn(s, &mut cmd, "instance.log")
}

#[test]
fn systemd_socket_activation() {
    // A configured address takes the activated socket and its protocol.
    let s = Scratch::new("activation");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let i = socket_activated(
        &s,
        l,
        &["--http-socket", &addr, "--master", "--processes", "2"],
    );
    i.wait_ready(2);
    assert!(
        i.stderr()
            .contains("- SystemD socket activation detected -")
    );
    assert!(
        i.stderr().contains(&format!(
            "uwsgi socket 0 inherited INET address {addr} fd 3"
        )),
        "{}",
        i.stderr()
    );
    assert!(
        !i.stderr().contains("bound to TCP address"),
        "nothing is bound again"
    );
    let r = roundtrip(&Target::Tcp(addr.clone()), b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        r.starts_with(b"HTTP/1.0 500 "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    // Kept across a reload.
    i.signal("HUP");
    i.wait_log("gracefully (RE)spawned uWSGI master process");
    assert!(roundtrip(&Target::Tcp(addr), b"GET / HTTP/1.0\r\n\r\n").starts_with(b"HTTP/1.0 500 "));

    // An activated socket no option names speaks the default protocol (uwsgi).
    let s2 = Scratch::new("activation2");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let i = socket_activated(&s2, l, &["--master"]);
    i.wait_ready(1);
    assert_eq!(
        roundtrip(&Target::Tcp(addr.clone()), &uwsgi_get("/")),
        NO_APP_11
    );
    i.signal("HUP");
    i.wait_log("gracefully (RE)spawned uWSGI master process");
    assert_eq!(roundtrip(&Target::Tcp(addr), &uwsgi_get("/")), NO_APP_11);
}
