//! The Emperor's outside interfaces through the real binary: signals (Ragnarok, HUP,
//! USR1), the stats server (UNIX, TCP, HTTP), the command socket, systemd notification and
//! socket activation, and on-demand vassals.

#[path = "support/harness.rs"]
mod harness;

use harness::*;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

fn pid_of(s: &Scratch, name: &str) -> i32 {
    wait_until(&format!("{name} started"), || {
        starts(s).iter().any(|st| st.get("argv").contains(name))
    });
    starts(s)
        .iter()
        .rev()
        .find(|st| st.get("argv").contains(name))
        .unwrap()
        .pid
}

#[test]
fn ragnarok_leaves_no_process_behind() {
    let s = Scratch::new("ragnarok");
    s.vassal("a.ini", "send:1,orphan");
    s.vassal("b.ini", "send:1");
    s.vassal("stubborn.ini", "send:1,ignore-stop");
    let mut e = Emperor::start(&s, &Emperor::probe_args(&s, &["--reload-mercy", "2"]));
    let pids: Vec<i32> = ["a.ini", "b.ini", "stubborn.ini"]
        .iter()
        .map(|n| pid_of(&s, n))
        .collect();
    wait_until("the orphans of a.ini", || {
        s.events().iter().any(|ev| ev.event == "orphans")
    });
    let orphans = s
        .events()
        .into_iter()
        .find(|ev| ev.event == "orphans")
        .unwrap();
    let daemon: i32 = orphans.get("daemon").parse().unwrap();
    let child: i32 = orphans.get("child").parse().unwrap();
    assert!(alive(daemon) && alive(child));
    e.signal(15);
    e.wait_log("*** RAGNAROK EVOKED ***");
    e.signal(15);
    e.wait_log("RAGNAROK ALREADY EVOKED");
    let st = e.wait_exit();
    assert!(st.success(), "exit status {st:?}");
    let log = e.stderr();
    assert!(
        log.contains("NO MERCY for vassal stubborn.ini !!!"),
        "{log}"
    );
    assert!(log.contains("The Emperor is buried."), "{log}");
    for p in pids.iter().chain([&daemon, &child]) {
        wait_until(&format!("process {p} gone"), || !alive(*p));
    }
}

#[test]
fn sighup_reloads_every_vassal_and_sigusr1_logs_their_status() {
    let s = Scratch::new("hup");
    s.vassal("a.ini", "send:1");
    s.vassal("b.ini", "send:1,send:17");
    let mut e = Emperor::start(&s, &Emperor::probe_args(&s, &[]));
    let a = pid_of(&s, "a.ini");
    let b = pid_of(&s, "b.ini");
    e.wait_log("vassal b.ini is now loyal");
    e.signal(1);
    for p in [a, b] {
        wait_until("reload byte", || {
            s.events()
                .iter()
                .any(|ev| ev.pid == p && ev.event == "byte" && ev.get("value") == "1")
        });
        assert!(alive(p), "a reload keeps the pid");
    }
    e.signal(10);
    e.wait_log("vassal instance a.ini (last modified");
    e.wait_log("vassal instance b.ini (last modified");
    let log = e.stderr();
    assert!(
        log.lines()
            .any(|l| l.starts_with("vassal instance b.ini") && l.contains("loyal 1")),
        "{log}"
    );
    assert_eq!(starts(&s).len(), 2);
    e.signal(15);
    assert!(e.wait_exit().success());
}

const VASSAL_KEYS: [&str; 20] = [
    "id",
    "pid",
    "born",
    "last_mod",
    "last_heartbeat",
    "loyal",
    "ready",
    "accepting",
    "last_loyal",
    "last_ready",
    "last_accepting",
    "first_run",
    "last_run",
    "cursed",
    "zerg",
    "on_demand",
    "uid",
    "gid",
    "monitor",
    "respawns",
];

#[test]
fn stats_json_over_tcp_and_http() {
    let s = Scratch::new("stats");
    s.vassal("a.ini", "send:1,send:5,send:17,hb:0.5");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut e = Emperor::start(&s, &Emperor::probe_args(&s, &["--emperor-stats", &addr]));
    e.wait_log("vassal a.ini is now loyal");
    let get = || -> Value {
        let c = std::net::TcpStream::connect(&addr).unwrap();
        serde_json::from_str(&read_all(c)).unwrap()
    };
    wait_until(
        "ready, accepting, loyal and a heartbeat in the stats",
        || {
            let v = &get()["vassals"][0];
            v["ready"] == 1
                && v["accepting"] == 1
                && v["loyal"] == 1
                && v["last_heartbeat"].as_u64().unwrap_or(0) > 0
        },
    );
    let st = get();
    let top: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        top,
        [
            "version",
            "pid",
            "uid",
            "gid",
            "cwd",
            "emperor",
            "emperor_tyrant",
            "throttle_level",
            "vassals",
            "blacklist"
        ]
    );
    let v = &st["vassals"][0];
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(&keys[..20], VASSAL_KEYS, "uWSGI's keys, in uWSGI's order");
    for extra in ["state", "restarts", "backoff_ms", "next_spawn_at"] {
        assert!(v.get(extra).is_some(), "{extra} missing: {v}");
    }
    assert_eq!(v["id"], "a.ini");
    assert_eq!(v["monitor"], s.vassals().to_string_lossy().as_ref());
    assert_eq!(v["state"], "loyal");
    assert_eq!(st["pid"], e.pid());
    assert_eq!(st["emperor"][0], s.vassals().to_string_lossy().as_ref());
    e.signal(15);
    assert!(e.wait_exit().success());

    // The same over a UNIX socket with stats-http.
    let sock = s.path("stats.sock");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &["--emperor-stats", &sock.to_string_lossy(), "--stats-http"],
        ),
    );
    e.wait_log("stats server enabled");
    let mut c = UnixStream::connect(&sock).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let text = read_all(c);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Type: application/json"));
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let _: Value = serde_json::from_str(body).unwrap();
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn command_socket() {
    let s = Scratch::new("command");
    s.vassal("a.ini", "send:1,send:17");
    s.vassal("bad.ini", "exit:1");
    let sock = s.path("cmd.sock");
    // `emperor-command-socket` is an imperium option (uWSGI 2.0's command line does not
    // know it); it is set here through the environment, as any option can be.
    let mut e = Emperor::start_with(
        &s,
        &Emperor::probe_args(&s, &["--emperor-throttle", "5000"]),
        &[("UWSGI_EMPEROR_COMMAND_SOCKET", &sock.to_string_lossy())],
    );
    let a = pid_of(&s, "a.ini");
    e.wait_log("vassal a.ini is now loyal");
    let list = command(&sock, "list");
    assert_eq!(list["ok"], true);
    assert_eq!(list["vassals"].as_array().unwrap().len(), 2);
    let r = command(&sock, "reload a.ini");
    assert_eq!(r["ok"], true, "{r}");
    wait_until("reload byte", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == a && ev.event == "byte" && ev.get("value") == "1")
    });
    let r = command(&sock, r#"{"cmd": "stop", "vassal": "a.ini"}"#);
    assert_eq!(r["vassal"]["state"], "stopping", "{r}");
    wait_until("stopped", || {
        command(&sock, "list")["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "a.ini" && v["state"] == "stopped")
    });
    assert!(!alive(a));
    assert_eq!(command(&sock, "start a.ini")["ok"], true);
    wait_until("a.ini started again", || pid_of(&s, "a.ini") != a);
    let b = pid_of(&s, "a.ini");
    assert_eq!(command(&sock, "respawn-now a.ini")["ok"], true);
    wait_until("a.ini respawned", || pid_of(&s, "a.ini") != b);
    // bad.ini backs off by 5 s per failure; reset-backoff spawns it at once.
    wait_until("bad.ini throttled", || {
        command(&sock, "list")["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "bad.ini" && v["state"] == "throttled")
    });
    let before = starts(&s)
        .iter()
        .filter(|st| st.get("argv").contains("bad.ini"))
        .count();
    assert_eq!(command(&sock, "reset-backoff bad.ini")["ok"], true);
    wait_until("bad.ini spawned after reset-backoff", || {
        starts(&s)
            .iter()
            .filter(|st| st.get("argv").contains("bad.ini"))
            .count()
            > before
    });
    let err = command(&sock, "stop nope.ini");
    assert_eq!(err["ok"], false);
    assert!(err["error"].as_str().unwrap().contains("no vassal named"));
    assert_eq!(command(&sock, "frobnicate")["ok"], false);
    e.signal(15);
    assert!(e.wait_exit().success());
}

/// Everything received on the notification socket so far.
struct Notifications {
    sock: UnixDatagram,
    seen: String,
}

impl Notifications {
    fn wait(&mut self, until: &str) -> String {
        let mut buf = [0u8; 4096];
        let sock = &self.sock;
        let seen = &mut self.seen;
        wait_until(&format!("notification {until:?}"), || {
            while let Ok(n) = sock.recv(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                seen.push('\n');
            }
            seen.contains(until)
        });
        self.seen.clone()
    }
}

#[test]
fn systemd_notify() {
    let s = Scratch::new("notify");
    s.vassal("a.ini", "send:1");
    let path = s.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut n = Notifications {
        sock,
        seen: String::new(),
    };
    let args = Emperor::probe_args(&s, &[]);
    let mut e = Emperor::start_with(
        &s,
        &args,
        &[
            ("NOTIFY_SOCKET", &path.to_string_lossy()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let seen = n.wait("READY=1");
    assert!(seen.contains("STATUS=The Emperor is governing"), "{seen}");
    n.wait("STATUS=The Emperor is governing 1 vassals");
    n.wait("WATCHDOG=1");
    wait_until("a.ini started", || !starts(&s).is_empty());
    let st = starts(&s).remove(0);
    assert_eq!(st.get("notify"), "", "vassals never see NOTIFY_SOCKET");
    e.signal(1);
    let seen = n.wait("RELOADING=1");
    assert!(seen.contains("MONOTONIC_USEC="), "{seen}");
    e.signal(15);
    n.wait("STOPPING=1");
    assert!(e.wait_exit().success());
    n.wait("STATUS=The Emperor is buried.");
}

#[test]
fn systemd_socket_activation_of_the_stats_socket() {
    let s = Scratch::new("activate");
    s.vassal("a.ini", "send:1");
    let sock = s.path("stats.sock");
    let mut args: Vec<String> = vec![
        "-l".into(),
        sock.to_string_lossy().into_owned(),
        "--fdname=stats".into(),
        BIN.into(),
    ];
    args.extend(Emperor::probe_args(
        &s,
        &["--emperor-stats", "/nonexistent/dir/never-bound.sock"],
    ));
    let log = s.path("emperor.log");
    let mut child = std::process::Command::new("systemd-socket-activate")
        .args(&args)
        .current_dir(&s.dir)
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) is needed: run scripts/test.sh");
    wait_until("the activated socket", || sock.exists());
    // systemd-socket-activate execs the Emperor on the first connection.
    let st = stats_unix(&sock);
    assert!(st["emperor"].is_array(), "{st}");
    wait_until("a.ini in stats", || {
        stats_unix(&sock)["vassals"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    wait_until("a.ini started", || !starts(&s).is_empty());
    let st = starts(&s).remove(0);
    assert!(
        !st.get("env").contains("LISTEN_"),
        "activation variables are not passed on"
    );
    // systemd-socket-activate forks the service: stop the Emperor by the pid it reports.
    let emperor = stats_unix(&sock)["pid"].as_i64().unwrap();
    signal(emperor as i32, 15);
    wait_until("the activated Emperor gone", || !alive(emperor as i32));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn on_demand_cycle() {
    let s = Scratch::new("ondemand");
    let sockets = s.path("sockets");
    fs::create_dir_all(&sockets).unwrap();
    s.vassal("od.ini", "send:1,accept,idle:0.5");
    let stats = s.path("stats.sock");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-on-demand-directory",
                &sockets.to_string_lossy(),
                "--emperor-stats",
                &stats.to_string_lossy(),
            ],
        ),
    );
    let od = sockets.join("od.socket");
    e.wait_log("\"on demand\" instance detected, waiting for connections on socket");
    wait_until("socket bound", || od.exists());
    let ino = fs::metadata(&od).unwrap().ino();
    assert_eq!(fs::metadata(&od).unwrap().mode() & 0o777, 0o666);
    let v = vassal_stats(&stats, "od.ini");
    assert_eq!(v["state"], "on-demand");
    assert_eq!(v["pid"], -1);
    assert_eq!(v["on_demand"], od.to_string_lossy().as_ref());
    assert!(
        starts(&s).is_empty(),
        "no process before the first connection"
    );
    for round in 1..=2 {
        let mut c = UnixStream::connect(&od).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "hello\n");
        wait_until("spawned on demand", || starts(&s).len() == round);
        let st = starts(&s).remove(round - 1);
        assert_eq!(
            st.get("fd0"),
            format!("unix:{}", od.display()),
            "fd 0 is the listening socket"
        );
        // Idle: byte 22, stop, back to waiting.
        e.wait_log("bringing back instance od.ini to on-demand mode");
        wait_until("back to on-demand", || {
            vassal_stats(&stats, "od.ini")["state"] == "on-demand"
        });
        wait_until("the idle vassal exited", || !alive(st.pid));
        assert_eq!(
            fs::metadata(&od).unwrap().ino(),
            ino,
            "the socket is never closed"
        );
    }
    e.signal(15);
    assert!(e.wait_exit().success());
}
