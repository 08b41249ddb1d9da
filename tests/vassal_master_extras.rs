//! The master's remaining controls through the real binary: `shared-socket` with `=N`,
//! `reload-on-rss`/`evil-reload-on-as`, SIGUSR2 worker status, and the FIFO letters
//! `S`, `+`, `C` (cheap mode), `f` (a master copy), `E`.

mod vassal_support;

use std::io::Write;
use vassal_support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16) -> String {
    let mut c = connect(&Target::Tcp(format!("127.0.0.1:{port}")));
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    String::from_utf8_lossy(&read_to_close(&mut c)).into_owned()
}

fn fifo(path: &std::path::Path, cmds: &str) {
    wait_until("the fifo", || path.exists());
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all(cmds.as_bytes())
        .unwrap();
}

#[test]
fn shared_socket_references() {
    let s = Scratch::new("shared");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let i = Instance::start(
        &s,
        &["--shared-socket", &addr, "--http-socket", "=0", "--master"],
    );
    i.wait_ready(1);
    i.wait_log(&format!("uwsgi socket 0 bound to TCP address {addr}"));
    assert!(get(port).starts_with("HTTP/1.1 500"));
    let mut bad = Instance::start(&s, &["--shared-socket", &addr, "--http-socket", "=3"]);
    assert_eq!(bad.wait_exit().code(), Some(1));
    assert!(
        bad.stderr().contains("unable to use shared socket 3"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn memory_limits_recycle_workers() {
    let s = Scratch::new("rss");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--reload-on-rss",
            "1",
            "--min-worker-lifetime",
            "0",
        ],
    );
    i.wait_ready(1);
    i.wait_log("worker 1 (pid: ");
    i.wait_log("rss usage");
    i.wait_log("is over its limit: recycling it");
    i.wait_log("Respawned uWSGI worker 1");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--evil-reload-on-as",
            "1",
        ],
    );
    i.wait_ready(1);
    i.wait_log("*** EVIL RELOAD ON WORKER 1 ADDRESS SPACE: ");
    i.wait_log("Respawned uWSGI worker 1");
}

#[test]
fn usr2_logs_what_workers_do() {
    let s = Scratch::new("usr2");
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
    i.signal("USR2");
    let w1 = i.worker_pids(1)[0];
    i.wait_log(&format!(
        "SIGUSR2: --- uWSGI worker 1 (pid: {w1}) is idle ---"
    ));
    i.wait_log("SIGUSR2: --- uWSGI worker 2 (pid: ");
    // A SIGUSR2 sent to a worker itself does not kill it.
    signal(w1, "USR2");
    i.signal("USR2");
    i.wait_count(
        &format!("SIGUSR2: --- uWSGI worker 1 (pid: {w1}) is idle ---"),
        2,
    );
    assert!(alive(w1));
}

#[test]
fn fifo_letters() {
    let s = Scratch::new("fifo-letters");
    let f = s.path("fifo");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--master-fifo",
            &f.to_string_lossy(),
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    fifo(&f, "SS+E");
    i.wait_log("subscriptions blocked");
    i.wait_log("subscriptions re-enabled");
    i.wait_log("cheaper mode is not enabled: '+' ignored");
    i.wait_log("no Emperor to ask for a rescan");
    // Cheap mode: the workers go, the next connection brings them back.
    fifo(&f, "C");
    i.wait_log("cheap mode enabled: waiting for socket connection...");
    i.wait_log("gone (cheap mode)");
    assert!(get(port).starts_with("HTTP/1.1 500"));
    i.wait_log("[cheap] a connection arrived: spawning the workers");
    // A master copy on the same sockets.
    fifo(&f, "f");
    let line = i.wait_log("new master copy spawned with pid ");
    let copy: i32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    wait_until("the copy runs", || {
        alive(copy) && !children(copy).is_empty()
    });
    for c in children(copy) {
        signal(c, "KILL");
    }
    signal(copy, "KILL");
}

#[test]
fn cheap_and_idle_cheap_mode() {
    let s = Scratch::new("cheap");
    let i = Instance::start(&s, &["--http-socket", "127.0.0.1:0", "--cheap"]);
    let port = i.port(0);
    i.wait_log("cheap mode enabled: waiting for socket connection...");
    assert!(i.worker_pids(1).is_empty());
    assert!(get(port).starts_with("HTTP/1.1 500"));
    i.wait_log("[cheap] a connection arrived: spawning the workers");

    let i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--master", "--idle", "1"],
    );
    let port = i.port(0);
    i.wait_ready(1);
    i.wait_log("workers have been inactive for more than 1 seconds");
    i.wait_log("going cheap...");
    i.wait_log("gone (cheap mode)");
    assert!(get(port).starts_with("HTTP/1.1 500"));
    i.wait_log("[cheap] a connection arrived: spawning the workers");
    // Idle again: cheap again.
    i.wait_count("going cheap...", 2);
}

/// Sends a request head that announces a body and never sends it: the worker (core)
/// that took it stays inside the request, reading the body, until `socket-timeout`.
fn stuck_request(port: u16, uri: &str) -> Conn {
    let mut c = connect(&Target::Tcp(format!("127.0.0.1:{port}")));
    c.write_all(format!("POST {uri} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n").as_bytes())
        .unwrap();
    c
}

#[test]
fn usr2_shows_the_request_uri() {
    let s = Scratch::new("usr2-uri");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--socket-timeout",
            "60",
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    let w1 = i.worker_pids(1)[0];
    let _held = stuck_request(port, "/slow/path?x=1");
    // The worker takes the request at some point after the write: ask until it shows.
    wait_until("the busy worker in SIGUSR2's report", || {
        i.signal("USR2");
        std::thread::sleep(std::time::Duration::from_millis(200));
        i.count("is managing request") > 0
    });
    let line = i.wait_log("is managing request");
    assert!(
        line.contains(&format!(
            "SIGUSR2: --- uWSGI worker 1 (pid: {w1}) is managing request /slow/path?x=1 since "
        )) && line.ends_with(" ---"),
        "{line}"
    );
}

#[test]
fn harakiri_per_request_thread() {
    let s = Scratch::new("harakiri-core");
    let stats_sock = s.path("stats.sock");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--threads",
            "2",
            "--harakiri",
            "2",
            "--socket-timeout",
            "60",
            "--stats",
            &stats_sock.to_string_lossy(),
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    let w1 = i.worker_pids(1)[0];
    let _held = stuck_request(port, "/stuck");
    wait_until("the stuck core in SIGUSR2's report", || {
        i.signal("USR2");
        std::thread::sleep(std::time::Duration::from_millis(200));
        i.count("is managing request /stuck") > 0
    });
    let line = i.wait_log("is managing request /stuck");
    assert!(
        line.contains(&format!("SIGUSR2: --- uWSGI worker 1 core "))
            && line.contains(&format!("(pid: {w1})")),
        "{line}"
    );
    // The other core serves and finishes requests meanwhile: that must not clear the
    // stuck core's deadline.
    for _ in 0..3 {
        assert!(get(port).starts_with("HTTP/1.1 500"));
    }
    // The stats show both cores, the stuck one busy with its start time.
    let doc = stats(&Target::Unix(stats_sock.clone()));
    let cores = doc["workers"][0]["cores"].as_array().unwrap().clone();
    assert_eq!(cores.len(), 2, "{cores:?}");
    let busy: Vec<_> = cores.iter().filter(|c| c["in_request"] == 1).collect();
    assert_eq!(busy.len(), 1, "{cores:?}");
    assert!(busy[0]["req_info"]["request_start"].as_u64().unwrap() > 0);
    assert_eq!(doc["workers"][0]["status"], "busy");
    i.wait_log("HARAKIRI: --- uWSGI worker 1 core ");
    let line = i.wait_log("WAS managing request");
    assert!(
        line.contains("WAS managing request /stuck since "),
        "{line}"
    );
    i.wait_log("HARAKIRI triggered by worker 1 core ");
    i.wait_log("Respawned uWSGI worker 1");
    assert!(i.worker_pids(1).len() >= 2);
}

#[test]
fn reload_on_rss_checked_after_each_request() {
    let s = Scratch::new("rss-after-request");
    // The master's own check runs every check-interval seconds: far away here, so what
    // recycles the worker is its check after the request.
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--reload-on-rss",
            "1",
            "--min-worker-lifetime",
            "0",
            "--check-interval",
            "600",
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    let w1 = i.worker_pids(1)[0];
    assert!(get(port).starts_with("HTTP/1.1 500"));
    i.wait_log(&format!("...The work of process {w1} is done. Seeya!"));
    i.wait_log("Respawned uWSGI worker 1");
    assert_eq!(i.count("is over its limit: recycling it"), 0);
}
