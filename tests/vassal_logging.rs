//! Logging through the real binary: `log-format` variables, `log-micros`, `log-date`,
//! `logto` to a UDP address, `logger`/`req-logger` (file: and syslog:) through the log
//! master, and the log file's rotation (`log-maxsize`, FIFO `L`) and reopening (FIFO `l`).

mod vassal_support;

use std::io::Write;
use vassal_support::*;

fn get(port: u16, path: &str) -> String {
    let mut c = connect(&Target::Tcp(format!("127.0.0.1:{port}")));
    c.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: tester\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    String::from_utf8_lossy(&read_to_close(&mut c)).into_owned()
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn wait_file(p: &std::path::Path, needle: &str) -> String {
    let mut got = String::new();
    wait_until(&format!("{needle:?} in {}", p.display()), || {
        got = read(p);
        got.contains(needle)
    });
    got
}

#[test]
fn log_format_variables_and_micros() {
    let s = Scratch::new("log-format");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--log-format",
            "\"%(method) %(uri) %(proto)\" %(status) %(var.PATH_INFO) %(uagent) %(nope) wid=%(wid) pid=%(pid)",
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    assert!(get(port, "/x?a=1").starts_with("HTTP/1.1 500"));
    let line = i.wait_log("\"GET /x?a=1 HTTP/1.1\"");
    assert_eq!(
        line,
        format!(
            "\"GET /x?a=1 HTTP/1.1\" 500 /x tester - wid=1 pid={}",
            i.worker_pids(1)[0]
        )
    );

    let i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--master", "--log-micros"],
    );
    let port = i.port(0);
    i.wait_ready(1);
    get(port, "/m");
    let line = i.wait_log("GET /m =>");
    assert!(line.contains(" micros (HTTP/1.1 500)"), "{line}");
}

#[test]
fn log_date_prefixes_lines() {
    let s = Scratch::new("log-date");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--log-date=%Y-%m-stamp",
        ],
    );
    i.wait_ready(1);
    let line = i.wait_log("spawned uWSGI master process");
    let year = std::process::Command::new("date")
        .arg("+%Y-%m")
        .output()
        .unwrap();
    let want = format!(
        "{}-stamp - spawned uWSGI master process",
        String::from_utf8_lossy(&year.stdout).trim()
    );
    assert!(line.starts_with(&want), "{line}");
    let i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--master", "--log-date"],
    );
    let line = i.wait_log("spawned uWSGI master process");
    // ctime: "Mon Nov 30 01:02:03 2026 - "
    assert_eq!(&line[24..27], " - ", "{line}");
}

#[test]
fn logto_udp_sends_datagrams() {
    let s = Scratch::new("logto-udp");
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(LONG)).unwrap();
    let addr = rx.local_addr().unwrap().to_string();
    let _i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--master", "--logto", &addr],
    );
    let mut buf = [0u8; 65536];
    let mut seen = Vec::new();
    wait_until("the master's spawn line over UDP", || {
        if let Ok(n) = rx.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen.iter().any(|d| d.contains("spawned uWSGI worker 1"))
    });
    // One line per datagram.
    assert!(
        seen.iter()
            .all(|d| d.ends_with('\n') && d.matches('\n').count() == 1),
        "{seen:?}"
    );
}

#[test]
fn req_logger_and_logger_split_the_lines() {
    let s = Scratch::new("loggers");
    let (req, err) = (s.path("req.log"), s.path("err.log"));
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--processes",
            "2",
            "--req-logger",
            &format!("file:{}", req.display()),
            "--logger",
            &format!("file:{}", err.display()),
        ],
    );
    let errlog = wait_file(&err, "bound to TCP address");
    let port: u16 = errlog
        .lines()
        .find(|l| l.contains("bound to TCP address"))
        .unwrap()
        .split("address 127.0.0.1:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    wait_file(&err, "spawned uWSGI worker 2");
    get(port, "/req-only");
    let r = wait_file(&req, "GET /req-only");
    assert!(!r.contains("spawned uWSGI"), "{r}");
    // The worker's own lines go through the master to the general logger.
    wait_file(&err, "no python application found");
    assert!(!read(&err).contains("GET /req-only =>"));
    assert!(
        !i.stderr().contains("spawned uWSGI worker"),
        "nothing on the original stderr: {}",
        i.stderr()
    );
}

#[test]
fn syslog_logger_sends_rfc3164_datagrams() {
    let s = Scratch::new("syslog");
    // The test owns /dev/log (the machine runs no syslog daemon; the test command installs none).
    let dev_log = std::path::Path::new("/dev/log");
    assert!(
        !dev_log.exists(),
        "/dev/log exists: a syslog daemon runs here; this test needs the path"
    );
    let rx = std::os::unix::net::UnixDatagram::bind(dev_log).unwrap();
    rx.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--logger",
            "syslog:myapp,local6",
        ],
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let end = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < end
        && !got
            .iter()
            .any(|d: &String| d.contains("spawned uWSGI worker 1"))
    {
        if let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    i.signal("INT");
    i.wait_exit();
    let _ = std::fs::remove_file(dev_log);
    let line = got
        .iter()
        .find(|d| d.contains("spawned uWSGI worker 1"))
        .unwrap_or_else(|| panic!("no syslog datagram: {got:?}"));
    // local6 (22) * 8 + info (6) = 182.
    assert!(line.starts_with("<182>"), "{line}");
    assert!(line.contains(" myapp: spawned uWSGI worker 1"), "{line}");
    assert!(!line.ends_with('\n'));
}

#[test]
fn log_file_rotation_and_reopen() {
    let s = Scratch::new("log-rotate");
    let log = s.path("u.log");
    let fifo = s.path("fifo");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--log-master",
            "--logto",
            &log.to_string_lossy(),
            "--master-fifo",
            &fifo.to_string_lossy(),
            "--log-backupname",
            &s.s("u.old"),
        ],
    );
    let first = wait_file(&log, "bound to TCP address");
    let port: u16 = first
        .lines()
        .find(|l| l.contains("bound to TCP address"))
        .unwrap()
        .split("address 127.0.0.1:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    wait_file(&log, "spawned uWSGI worker 1");
    wait_until("the fifo", || fifo.exists());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(b"L")
        .unwrap();
    let old = wait_file(&s.path("u.old"), "triggering rotation to");
    assert!(old.contains("spawned uWSGI worker 1"));
    get(port, "/after-rotation");
    let new = wait_file(&log, "GET /after-rotation");
    assert!(!new.contains("spawned uWSGI worker 1"), "{new}");
    // Reopen: the file was moved away by someone else; `l` writes to a new one at the path.
    std::fs::rename(&log, s.path("moved.log")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(b"l")
        .unwrap();
    wait_file(&s.path("moved.log"), "triggering log-reopen...");
    wait_file(&log, "reopened.");
    get(port, "/after-reopen");
    wait_file(&log, "GET /after-reopen");
    drop(i);

    // log-maxsize rotates by itself to <file>.<unixtime>.
    let s = Scratch::new("log-maxsize");
    let log = s.path("m.log");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--logto",
            &log.to_string_lossy(),
            "--log-maxsize",
            "1000",
        ],
    );
    let first = wait_file(&log, "bound to TCP address");
    let port: u16 = first
        .lines()
        .find(|l| l.contains("bound to TCP address"))
        .unwrap()
        .split("address 127.0.0.1:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for n in 0..5 {
        get(port, &format!("/fill/{n}"));
    }
    wait_until("a rotated log file", || {
        std::fs::read_dir(&s.dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("m.log."))
    });
    drop(i);
}

fn get_with(port: u16, path: &str, extra: &str) {
    let mut c = connect(&Target::Tcp(format!("127.0.0.1:{port}")));
    c.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    read_to_close(&mut c);
}

#[test]
fn conditional_request_logging_and_extras() {
    let s = Scratch::new("log-cond");
    // disable-logging with log-5xx: the 500 is still logged.
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--disable-logging",
            "--log-5xx",
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    get_with(port, "/five", "");
    i.wait_log("GET /five =>");
    // disable-logging with log-4xx only: nothing.
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--disable-logging",
            "--log-4xx",
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    get_with(port, "/four", "");
    i.wait_log("no python application found");
    get_with(port, "/four2", "");
    i.wait_count("no python application found", 2);
    assert!(!i.stderr().contains("GET /four"), "{}", i.stderr());
    // memory-report and log-x-forwarded-for.
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--memory-report",
            "--log-x-forwarded-for",
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    get_with(port, "/mem", "X-Forwarded-For: 10.1.2.3\r\n");
    let line = i.wait_log("GET /mem =>");
    assert!(line.starts_with("{address space usage: "), "{line}");
    assert!(line.contains("} {rss usage: "), "{line}");
    assert!(line.contains("] 10.1.2.3 () {"), "{line}");
}

#[test]
fn routes_drains_filters_and_encoders() {
    let s = Scratch::new("log-route");
    let (a, all) = (s.path("a.log"), s.path("all.log"));
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--logger",
            &format!("a file:{}", a.display()),
            "--logger",
            &format!("file:{}", all.display()),
            "--log-route",
            "a ^spawned uWSGI worker",
            "--log-drain",
            "your mercy",
            "--log-encoder",
            "prefix [X] ",
            "--log-encoder",
            "prefix:a [A] ",
        ],
    );
    let _ = i;
    let got_a = wait_file(&a, "spawned uWSGI worker 1");
    wait_file(&all, "spawned uWSGI master process");
    let got_all = read(&all);
    // Routed lines go to the named logger only; the drain drops its lines everywhere.
    assert!(
        got_a
            .lines()
            .all(|l| l.starts_with("[A] [X] spawned uWSGI worker")),
        "{got_a}"
    );
    assert!(!got_all.contains("spawned uWSGI worker"), "{got_all}");
    assert!(!got_all.contains("your mercy"), "{got_all}");
    assert!(got_all.lines().all(|l| l.starts_with("[X] ")), "{got_all}");

    // log-filter keeps only matching lines; json encoder with nl.
    let j = s.path("j.log");
    let _i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--logger",
            &format!("file:{}", j.display()),
            "--log-filter",
            "uWSGI",
            "--log-encoder",
            "json {\"msg\":\"${msg}\",\"unix\":${unix}}",
            "--log-encoder",
            "nl",
        ],
    );
    let got = wait_file(&j, "spawned uWSGI worker 1");
    for l in got.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["msg"].as_str().unwrap().contains("uWSGI"), "{l}");
        assert!(v["unix"].as_u64().unwrap() > 0);
    }
}

#[test]
fn a_chatty_hook_does_not_block_the_log_master() {
    let s = Scratch::new("log-chatty");
    let f = s.path("all.log");
    // 3 MB of output from a hook the master waits for: far more than the pipe holds.
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--logger",
            &format!("file:{}", f.display()),
            "--exec-as-user",
            "head -c 3000000 /dev/zero | tr '\\0' a | fold -w 99",
        ],
    );
    wait_file(&f, "spawned uWSGI worker 1");
    let lines = read(&f)
        .lines()
        .filter(|l| l.len() == 99 && l.bytes().all(|b| b == b'a'))
        .count();
    assert_eq!(
        lines, 30303,
        "every line of the hook's output reached the logger"
    );
    drop(i);
}

#[test]
fn logto2_opens_after_the_privilege_drop() {
    let s = Scratch::new("logto2");
    let f = s.path("l2.log");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--logto2",
            &f.to_string_lossy(),
        ],
    );
    let got = wait_file(&f, "spawned uWSGI worker 1");
    // Lines before the drop went to the original standard error.
    assert!(
        i.stderr().contains("bound to TCP address"),
        "{}",
        i.stderr()
    );
    assert!(!got.contains("bound to TCP address"), "{got}");
}

#[test]
fn rsyslog_pipe_and_rotating_file_loggers() {
    let s = Scratch::new("log-more");
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(LONG)).unwrap();
    let piped = s.path("piped.log");
    let rot = s.path("rot.log");
    let _i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--logger",
            &format!("rsyslog:{},myident,30", rx.local_addr().unwrap()),
            "--logger",
            &format!("pipe:cat >> {}", piped.display()),
            "--logger",
            &format!(
                "file:logfile={},maxsize=300,backupname={}",
                rot.display(),
                s.s("rot.old")
            ),
        ],
    );
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    wait_until("an rsyslog datagram", || {
        if let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got.iter().any(|d| d.contains("spawned uWSGI worker 1"))
    });
    let d = got
        .iter()
        .find(|d| d.contains("spawned uWSGI worker 1"))
        .unwrap();
    assert!(
        d.starts_with("<30>")
            && d.contains(" myident: spawned uWSGI worker 1")
            && !d.ends_with('\n'),
        "{d}"
    );
    wait_file(&piped, "spawned uWSGI worker 1");
    // The banner is longer than 300 bytes: the file logger rotated itself.
    wait_file(&s.path("rot.old"), "triggering rotation to");
}

#[test]
fn reloads_keep_or_reopen_the_log() {
    let s = Scratch::new("log-reload");
    for (reopen, master_log) in [(false, false), (true, false), (false, true), (true, true)] {
        let log = s.path("r.log");
        let moved = s.path("moved.log");
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(&moved);
        let mut args = vec!["--http-socket", "127.0.0.1:0", "--master"];
        let l = log.to_string_lossy().into_owned();
        args.extend(["--logto", &l]);
        if reopen {
            args.push("--log-reopen");
        }
        if master_log {
            args.push("--log-master");
        }
        let i = Instance::start(&s, &args);
        wait_file(&log, "spawned uWSGI worker 1");
        std::fs::rename(&log, &moved).unwrap();
        i.signal("HUP");
        let case = format!("log-reopen {reopen}, log-master {master_log}");
        if reopen {
            wait_file(&log, "gracefully (RE)spawned uWSGI master process");
            assert!(!read(&moved).contains("gracefully (RE)spawned"), "{case}");
        } else {
            wait_file(&moved, "gracefully (RE)spawned uWSGI master process");
            assert!(!log.exists(), "{case}");
        }
        // Workers of the new generation log too.
        let target = if reopen { &log } else { &moved };
        wait_until(&format!("{case}: the new worker's line"), || {
            read(target).matches("spawned uWSGI worker 1").count() >= if reopen { 1 } else { 2 }
        });
        drop(i);
    }
}

#[test]
fn threaded_logger_keeps_the_master_free_of_a_stuck_logger() {
    let s = Scratch::new("log-threaded");
    let stats_sock = s.path("stats.sock");
    // Request lines go to a logger that never reads its pipe; everything else to the
    // original log (the instance's standard error).
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--threaded-logger",
            "--logger",
            "stuck pipe:exec sleep 30",
            "--log-route",
            "stuck GET /",
            "--stats",
            &stats_sock.to_string_lossy(),
        ],
    );
    let port = i.port(0);
    i.wait_ready(1);
    let comms: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", i.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect();
    assert!(comms.iter().any(|c| c == "uWSGILogger"), "{comms:?}");
    // More than a pipe's 64 KiB of request lines: the logger thread is now stuck writing.
    let long = format!("/{}", "x".repeat(400));
    for _ in 0..200 {
        assert!(get(port, &long).starts_with("HTTP/1.1 500"));
    }
    // The master's loop still serves the stats (it never writes to the loggers itself).
    let doc = stats(&Target::Unix(stats_sock.clone()));
    assert_eq!(doc["workers"][0]["requests"], 200);
}
