//! The process model through the real binary: master and workers, respawn, max-requests,
//! harakiri, signals exactly as uWSGI's master (HUP graceful reload keeping the listening
//! socket, TERM brutal reload or shutdown with die-on-term, INT/QUIT shutdown, USR1 stats),
//! pidfile, need-app, chdir, env, uid/gid.

mod vassal_support;

use std::io::Write;
use vassal_support::*;

const NO_APP_10: &[u8] = b"HTTP/1.0 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nInternal Server Error";

fn http(i: &Instance) -> Target {
    Target::Tcp(format!("127.0.0.1:{}", i.port(0)))
}

#[test]
fn workers_are_spawned_and_respawned() {
    let s = Scratch::new("respawn");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "3",
        ],
    );
    i.wait_ready(3);
    assert!(i.stderr().contains("*** Starting imperium "));
    assert!(i.stderr().contains("*** Operational MODE: preforking ***"));
    assert!(
        i.stderr()
            .contains(&format!("spawned uWSGI master process (pid: {})", i.pid()))
    );
    let w2 = i.worker_pids(2)[0];
    signal(w2, "KILL");
    i.wait_log(&format!(
        "DAMN ! worker 2 (pid: {w2}) died, killed by signal 9 :( trying respawn ..."
    ));
    i.wait_log("Respawned uWSGI worker 2 (new pid: ");
    let new = *i.worker_pids(2).last().unwrap();
    assert_ne!(new, w2);
    assert!(alive(new));
    assert_eq!(roundtrip(&http(&i), b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
}

#[test]
fn max_requests_recycles_the_worker() {
    let s = Scratch::new("maxreq");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "1",
            "--max-requests",
            "2",
            "--min-worker-lifetime",
            "0",
        ],
    );
    i.wait_ready(1);
    let t = http(&i);
    let first = i.worker_pids(1)[0];
    for _ in 0..2 {
        assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
    }
    i.wait_log(&format!("...The work of process {first} is done. Seeya!"));
    i.wait_log(&format!("worker 1 killed successfully (pid: {first})"));
    i.wait_log("Respawned uWSGI worker 1 (new pid: ");
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
    let line = i.wait_log("|req: -1/3]");
    let second = *i.worker_pids(1).last().unwrap();
    assert!(line.starts_with(&format!("[pid: {second}|")), "{line}");
}

#[test]
fn harakiri_kills_a_stuck_worker_and_a_new_one_serves() {
    let s = Scratch::new("harakiri");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "1",
            "--harakiri",
            "1",
            "--socket-timeout",
            "120",
            "--harakiri-verbose",
        ],
    );
    i.wait_ready(1);
    let t = http(&i);
    let stuck = i.worker_pids(1)[0];
    // The worker waits for a body that never comes: stuck inside the request.
    let mut c = connect(&t);
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc")
        .unwrap();
    i.wait_log(&format!(
        "*** HARAKIRI ON WORKER 1 (pid: {stuck}, try: 1) ***"
    ));
    assert_eq!(
        read_to_close(&mut c),
        b"",
        "the stuck client's connection is closed"
    );
    i.wait_log("Respawned uWSGI worker 1 (new pid: ");
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
    assert!(!alive(stuck));
}

#[test]
fn hup_reloads_gracefully_and_keeps_the_listening_socket() {
    let s = Scratch::new("hup");
    let sock = s.s("r.sock");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            &sock,
            "--master",
            "--processes",
            "1",
            "--socket-timeout",
            "120",
        ],
    );
    i.wait_ready(1);
    let t = Target::Unix(sock.clone().into());
    let master = i.pid();
    let old = i.worker_pids(1)[0];

    // A request in progress (its body is still coming) holds the worker...
    let mut busy = connect(&t);
    busy.write_all(b"POST / HTTP/1.0\r\nContent-Length: 6\r\n\r\nabc")
        .unwrap();
    i.wait_log("spawned uWSGI worker 1");
    std::thread::sleep(std::time::Duration::from_millis(300));
    i.signal("HUP");
    i.wait_log("...gracefully killing workers...");
    // ...while a new client connects: it waits in the backlog of the kept socket.
    let mut during = connect(&t);
    during.write_all(b"GET /during HTTP/1.0\r\n\r\n").unwrap();
    // The in-flight request completes with its answer, then the master re-executes.
    busy.write_all(b"def").unwrap();
    assert_eq!(read_to_close(&mut busy), NO_APP_10);
    i.wait_log("binary reloading uWSGI...");
    i.wait_log(&format!(
        "gracefully (RE)spawned uWSGI master process (pid: {master})"
    ));
    assert!(
        i.stderr().contains(&format!(
            "uwsgi socket 0 inherited UNIX address {sock} fd 3"
        )),
        "{}",
        i.stderr()
    );
    assert_eq!(
        read_to_close(&mut during),
        NO_APP_10,
        "the connection made during the reload is served"
    );
    let new = *i.worker_pids(1).last().unwrap();
    assert_ne!(new, old);
    assert!(alive(master));
}

#[test]
fn term_is_a_brutal_reload_unless_die_on_term() {
    let s = Scratch::new("term");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
        ],
    );
    i.wait_ready(2);
    let port = i.port(0);
    i.signal("TERM");
    i.wait_log("...brutally killing workers...");
    i.wait_log(&format!(
        "gracefully (RE)spawned uWSGI master process (pid: {})",
        i.pid()
    ));
    i.wait_count("spawned uWSGI worker 2 ", 2);
    assert!(
        i.stderr()
            .contains(&format!("inherited INET address 127.0.0.1:{port} fd 3")),
        "{}",
        i.stderr()
    );
    assert_eq!(
        roundtrip(
            &Target::Tcp(format!("127.0.0.1:{port}")),
            b"GET / HTTP/1.0\r\n\r\n"
        ),
        NO_APP_10
    );

    let s2 = Scratch::new("term-die");
    let mut d = Instance::start(
        &s2,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--die-on-term",
        ],
    );
    d.wait_ready(2);
    let workers: Vec<i32> = (1..=2).map(|w| d.worker_pids(w)[0]).collect();
    d.signal("TERM");
    assert!(d.wait_exit().success());
    assert!(d.stderr().contains("goodbye to uWSGI."));
    for w in workers {
        wait_until("worker gone", || !alive(w));
    }
}

#[test]
fn quit_with_die_on_term_is_a_brutal_reload() {
    let s = Scratch::new("quit-die");
    let i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--master", "--die-on-term"],
    );
    i.wait_ready(1);
    i.signal("QUIT");
    i.wait_log("...brutally killing workers...");
    i.wait_log("gracefully (RE)spawned uWSGI master process");
}

#[test]
fn int_and_quit_shut_down() {
    for sig in ["INT", "QUIT"] {
        let s = Scratch::new(&format!("stop-{sig}"));
        let mut i = Instance::start(
            &s,
            &[
                "--http-socket",
                "127.0.0.1:0",
                "--master",
                "--processes",
                "2",
            ],
        );
        i.wait_ready(2);
        let workers: Vec<i32> = (1..=2).map(|w| i.worker_pids(w)[0]).collect();
        i.signal(sig);
        assert!(i.wait_exit().success(), "{sig}");
        let log = i.stderr();
        assert!(
            log.contains("SIGINT/SIGTERM received...killing workers..."),
            "{log}"
        );
        assert!(
            log.contains("worker 1 buried after") && log.contains("worker 2 buried after"),
            "{log}"
        );
        assert!(log.contains("goodbye to uWSGI."));
        for w in workers {
            assert!(!alive(w), "worker {w} survived {sig}");
        }
    }
}

#[test]
fn usr1_logs_the_stats() {
    let s = Scratch::new("usr1");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
        ],
    );
    i.wait_ready(2);
    roundtrip(&http(&i), b"GET / HTTP/1.0\r\n\r\n");
    i.wait_log("|req: -1/1]");
    i.signal("USR1");
    i.wait_log("\tworkers total requests: 1");
    assert!(
        i.stderr().contains(";uWSGI instance configuration"),
        "{}",
        i.stderr()
    );
}

#[test]
fn need_app_exits_22_without_an_app() {
    let s = Scratch::new("needapp");
    let mut i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--master", "--need-app"],
    );
    assert_eq!(i.wait_exit().code(), Some(22));
    assert!(i.stderr().contains("*** no app loaded. GAME OVER ***"));
    let i = Instance::start(&s, &["--http-socket", "127.0.0.1:0", "--master"]);
    i.wait_log("*** no app loaded. going in full dynamic mode ***");
}

#[test]
fn chdir_env_pidfile2_and_privileges() {
    let s = Scratch::new("privs");
    let work = s.path("work");
    std::fs::create_dir_all(&work).unwrap();
    // pidfile2 is written after the privilege drop: its directory must let nobody write.
    let open_dir = s.path("open");
    std::fs::create_dir_all(&open_dir).unwrap();
    std::fs::set_permissions(
        &open_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let pid2 = open_dir.join("p2.pid").to_string_lossy().into_owned();
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--chdir",
            &work.to_string_lossy(),
            "--env",
            "IMPERIUM_T=yes",
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
            "--pidfile2",
            &pid2,
        ],
    );
    i.wait_ready(1);
    let w = i.worker_pids(1)[0];
    let status = std::fs::read_to_string(format!("/proc/{w}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65534")),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Gid:") && l.split_whitespace().nth(1) == Some("65534")),
        "{status}"
    );
    assert_eq!(std::fs::read_link(format!("/proc/{w}/cwd")).unwrap(), work);
    assert_eq!(
        std::fs::read_to_string(&pid2).unwrap().trim(),
        i.pid().to_string()
    );
    // /proc/PID/environ shows the block given to exec: after a reload (an exec of the
    // master) it holds what `env` set and the reload count.
    i.signal("HUP");
    i.wait_log("gracefully (RE)spawned uWSGI master process");
    let env = std::fs::read(format!("/proc/{}/environ", i.pid())).unwrap();
    assert!(env.split(|&b| b == 0).any(|v| v == b"IMPERIUM_T=yes"));
    assert!(env.split(|&b| b == 0).any(|v| v == b"UWSGI_RELOADS=1"));
    i.signal("INT");
    assert!(i.wait_exit().success());
}

#[test]
fn without_master_the_process_is_its_only_worker() {
    let s = Scratch::new("nomaster");
    let mut i = Instance::start(&s, &["--http-socket", "127.0.0.1:0"]);
    i.wait_log(&format!(
        "spawned uWSGI worker 1 (and the only) (pid: {}, cores: 1)",
        i.pid()
    ));
    assert_eq!(roundtrip(&http(&i), b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
    i.signal("INT");
    i.wait_exit();
}

#[test]
fn workers_do_not_outlive_their_master() {
    let s = Scratch::new("orphans");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
        ],
    );
    i.wait_ready(2);
    let workers: Vec<i32> = (1..=2).map(|w| i.worker_pids(w)[0]).collect();
    signal(i.pid(), "KILL");
    for w in workers {
        wait_until("a worker of a killed master exits", || !alive(w));
    }
}

#[test]
fn systemd_notifications() {
    let s = Scratch::new("notify");
    let path = s.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(LONG)).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--http-socket", "127.0.0.1:0", "--master"])
        .env("NOTIFY_SOCKET", &path);
    let mut i = Instance::spawn(&s, &mut cmd, "instance.log");
    let next = || {
        let mut b = [0u8; 512];
        let n = sock.recv(&mut b).expect("a notification");
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    assert_eq!(next(), "STATUS=initializing uWSGI\n");
    assert_eq!(next(), "READY=1\nSTATUS=uWSGI is ready\n");
    i.signal("HUP");
    assert!(next().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(next(), "STATUS=initializing uWSGI\n");
    assert_eq!(next(), "READY=1\nSTATUS=uWSGI is ready\n");
    i.signal("INT");
    assert_eq!(next(), "STOPPING=1\nSTATUS=uWSGI is shutting down\n");
    assert!(i.wait_exit().success());
}
