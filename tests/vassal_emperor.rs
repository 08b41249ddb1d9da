//! The vassal's side of the Emperor protocol, through the real binary: a fake Emperor
//! (this test, on a socketpair) reads the bytes the instance sends (1 spawned, 5 accepting,
//! 17 loyal, 26 heartbeat) and drives it with 1 (reload), 0 (stop), 2 (graceful stop) and
//! end of file; `daemonize` is refused under an Emperor. Then the real uWSGI 2.0.31
//! Emperor governs an imperium vassal: spawn, ready, loyal, reload on touch, stop.

mod vassal_support;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vassal_support::*;

const NO_APP_10: &[u8] = b"HTTP/1.0 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nInternal Server Error";

/// Starts the instance as an Emperor would: the vassal end of the socketpair on fd 3 and
/// `UWSGI_EMPEROR_FD=3` (a shell puts the descriptor there, so the test needs no unsafe).
fn governed(s: &Scratch, args: &[&str]) -> (Instance, UnixStream) {
    let (emperor, vassal) = UnixStream::pair().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" 3<&0 0</dev/null")
        .arg(BIN)
        .args(args);
    cmd.env("UWSGI_EMPEROR_FD", "3")
        .stdin(Stdio::from(OwnedFd::from(vassal)));
    let i = Instance::spawn(s, &mut cmd, "vassal.log");
    emperor
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (i, emperor)
}

/// Reads bytes from the vassal until `want` arrives; returns everything read.
fn read_until(e: &mut UnixStream, want: u8) -> Vec<u8> {
    let end = Instant::now() + LONG;
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while Instant::now() < end {
        match e.read(&mut b) {
            Ok(1) => {
                got.push(b[0]);
                if b[0] == want {
                    return got;
                }
            }
            Ok(_) => panic!("the vassal closed its end; got {got:?}"),
            Err(_) => {}
        }
    }
    panic!("byte {want} never came; got {got:?}");
}

#[test]
fn protocol_bytes_reload_and_stop() {
    let s = Scratch::new("emp-proto");
    let (mut i, mut e) = governed(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--processes",
            "1",
            "--heartbeat",
            "1",
        ],
    );
    assert_eq!(read_until(&mut e, 1), vec![1], "ready comes first");
    assert!(!read_until(&mut e, 5).contains(&17));
    assert!(
        i.stderr()
            .contains("*** has_emperor mode detected (fd: 3) ***")
    );
    assert!(
        i.stderr().contains("spawned uWSGI master process"),
        "an Emperor forces the master"
    );
    let t = Target::Tcp(format!("127.0.0.1:{}", i.port(0)));
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
    read_until(&mut e, 17);
    i.wait_log("announcing my loyalty to the Emperor...");
    read_until(&mut e, 26);
    read_until(&mut e, 26);

    // 1: graceful reload; same pid, ready again.
    let master = i.pid();
    e.write_all(&[1]).unwrap();
    i.wait_log("received message 1 from emperor");
    read_until(&mut e, 1);
    i.wait_log(&format!(
        "gracefully (RE)spawned uWSGI master process (pid: {master})"
    ));
    read_until(&mut e, 5);
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);

    // 0: stop.
    e.write_all(&[0]).unwrap();
    assert!(i.wait_exit().success());
    assert!(i.stderr().contains("goodbye to uWSGI."));
}

#[test]
fn losing_the_emperor_ends_the_instance() {
    let s = Scratch::new("emp-eof");
    let (mut i, mut e) = governed(&s, &["--http-socket", "127.0.0.1:0", "--processes", "2"]);
    read_until(&mut e, 5);
    i.wait_ready(2);
    let workers: Vec<i32> = (1..=2).map(|w| i.worker_pids(w)[0]).collect();
    drop(e);
    assert_eq!(i.wait_exit().code(), Some(1));
    assert!(i.stderr().contains("lost connection with my emperor !!!"));
    for w in workers {
        wait_until("workers gone with their master", || !alive(w));
    }
}

#[test]
fn byte_2_is_a_graceful_stop() {
    let s = Scratch::new("emp-graceful");
    let (mut i, mut e) = governed(&s, &["--http-socket", "127.0.0.1:0"]);
    read_until(&mut e, 5);
    e.write_all(&[2]).unwrap();
    assert!(i.wait_exit().success());
    assert!(i.stderr().contains("graceful shutdown triggered..."));
}

#[test]
fn daemonize_is_refused_under_an_emperor() {
    let s = Scratch::new("emp-daemonize");
    let logfile = s.s("daemon.log");
    let (i, mut e) = governed(
        &s,
        &["--http-socket", "127.0.0.1:0", "--daemonize", &logfile],
    );
    read_until(&mut e, 5);
    let text = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        text.contains("spawned uWSGI master process"),
        "the log goes to the daemonize file: {text}"
    );
    assert!(
        i.stderr()
            .contains("refused: an Emperor governs this instance"),
        "{}",
        i.stderr()
    );
    assert!(alive(i.pid()), "the vassal did not detach from its Emperor");
    assert!(text.contains(&format!("(pid: {})", i.pid())));
}

#[test]
fn the_real_uwsgi_emperor_governs_an_imperium_vassal() {
    let s = Scratch::new("emp-real");
    let vassals = s.path("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    let sock = s.s("a.sock");
    let ini = vassals.join("a.ini");
    std::fs::write(
        &ini,
        format!("[uwsgi]\nhttp-socket = {sock}\nprocesses = 1\n"),
    )
    .unwrap();
    let mut cmd = Command::new(uwsgi_bin());
    cmd.args([
        "--emperor",
        &vassals.to_string_lossy(),
        "--binary-path",
        BIN,
        "--emperor-freq",
        "1",
    ])
    .stdin(Stdio::null());
    let mut emp = Instance::spawn(&s, &mut cmd, "emperor.log");
    emp.wait_log("[emperor] vassal a.ini has been spawned");
    emp.wait_log("[emperor] vassal a.ini is ready to accept requests");
    assert_eq!(
        roundtrip(
            &Target::Unix(sock.clone().into()),
            b"GET / HTTP/1.0\r\n\r\n"
        ),
        NO_APP_10
    );
    emp.wait_log("[emperor] vassal a.ini is now loyal");
    let master_line = emp.wait_log("spawned uWSGI master process (pid: ");
    let master: i32 = master_line
        .split("(pid: ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();

    // Touch: the Emperor sends 1, the vassal reloads in place.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &ini,
        format!("[uwsgi]\nhttp-socket = {sock}\nprocesses = 1\n# touched\n"),
    )
    .unwrap();
    emp.wait_log("[emperor] reload the uwsgi instance a.ini");
    emp.wait_log(&format!(
        "gracefully (RE)spawned uWSGI master process (pid: {master})"
    ));
    assert_eq!(
        roundtrip(
            &Target::Unix(sock.clone().into()),
            b"GET / HTTP/1.0\r\n\r\n"
        ),
        NO_APP_10
    );

    // Remove: the Emperor sends 0, the vassal stops.
    std::fs::remove_file(&ini).unwrap();
    emp.wait_log("[emperor] removed uwsgi instance a.ini");
    wait_until("the vassal master exits", || !alive(master));
    emp.signal("INT");
    emp.wait_exit();
}

#[test]
fn imperiums_own_emperor_governs_an_imperium_vassal() {
    let s = Scratch::new("emp-own");
    let vassals = s.path("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    let sock = s.s("b.sock");
    let ini = vassals.join("b.ini");
    std::fs::write(
        &ini,
        format!("[uwsgi]\nhttp-socket = {sock}\nprocesses = 2\n"),
    )
    .unwrap();
    let mut emp = Instance::start(&s, &["--emperor", &vassals.to_string_lossy()]);
    emp.wait_log("[emperor] vassal b.ini is ready to accept requests");
    assert_eq!(
        roundtrip(
            &Target::Unix(sock.clone().into()),
            b"GET / HTTP/1.0\r\n\r\n"
        ),
        NO_APP_10
    );
    emp.wait_log("[emperor] vassal b.ini is now loyal");
    let master_line = emp.wait_log("spawned uWSGI master process (pid: ");
    let master: i32 = master_line
        .split("(pid: ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    std::fs::remove_file(&ini).unwrap();
    emp.wait_log("received message 0 from emperor");
    wait_until("the vassal master exits", || !alive(master));
    emp.signal("INT");
    assert!(emp.wait_exit().success());
}

#[test]
fn die_on_idle_asks_the_emperor_with_22() {
    let s = Scratch::new("emp-idle");
    let (mut i, mut e) = governed(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--idle",
            "1",
            "--die-on-idle",
        ],
    );
    read_until(&mut e, 22);
    i.wait_log("workers have been inactive for more than 1 seconds");
    // The Emperor answers with a stop.
    e.write_all(&[0]).unwrap();
    assert!(i.wait_exit().success());
}

#[test]
fn a_full_backlog_asks_the_emperor_for_reinforcements_with_30() {
    let s = Scratch::new("emp-sos");
    let (i, mut e) = governed(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--processes",
            "1",
            "--vassal-sos-backlog",
            "2",
            "--socket-timeout",
            "120",
        ],
    );
    read_until(&mut e, 5);
    let t = Target::Tcp(format!("127.0.0.1:{}", i.port(0)));
    // The only worker is held by a request whose body never comes; two more clients wait
    // in the listen queue.
    let mut busy = connect(&t);
    busy.write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
        .unwrap();
    // (They send their request: with TCP_DEFER_ACCEPT a silent client is not queued yet.)
    let _queued: Vec<Conn> = (0..3)
        .map(|_| {
            let mut c = connect(&t);
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            c
        })
        .collect();
    read_until(&mut e, 30);
    i.wait_log("asking Emperor for reinforcements (backlog: ");
}
