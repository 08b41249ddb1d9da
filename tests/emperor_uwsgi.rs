//! Compatibility with the real uWSGI 2.0.31: imperium's Emperor governs uWSGI vassals
//! (`binary-path` pointing at uWSGI). They become ready, accepting and loyal in the stats,
//! reload on touch (same pid, same socket), stop on delete, and die with Ragnarok.
//! The uWSGI binary comes from scripts/test.sh (IMPERIUM_UWSGI); it is never skipped.

#[path = "support/harness.rs"]
mod harness;

use harness::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One uwsgi-protocol request with no variables; uWSGI answers (an error, without an
/// app) and counts it as served, which makes the vassal loyal.
fn poke(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(&[0, 0, 0, 0]).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn master_pid(stats: &std::path::Path) -> i64 {
    vassal_stats(stats, "app.ini")["pid"].as_i64().unwrap_or(0)
}

#[test]
fn imperium_governs_real_uwsgi_vassals() {
    let uwsgi = real_uwsgi();
    let s = Scratch::new("uwsgi");
    let port = free_port();
    let cfg = s.vassals().join("app.ini");
    let text = format!(
        "[uwsgi]\nsocket = 127.0.0.1:{port}\nmaster = true\nprocesses = 1\nreload-mercy = 5\nworker-reload-mercy = 5\n"
    );
    write_atomic(&cfg, &text);
    let stats = s.path("stats.sock");
    let mut e = Emperor::start(
        &s,
        &[
            "--emperor".into(),
            s.vassals().to_string_lossy().into_owned(),
            "--binary-path".into(),
            uwsgi,
            "--emperor-freq".into(),
            "1".into(),
            "--emperor-stats".into(),
            stats.to_string_lossy().into_owned(),
        ],
    );
    wait_until("uWSGI vassal ready and accepting", || {
        let v = vassal_stats(&stats, "app.ini");
        v["ready"] == 1 && v["accepting"] == 1
    });
    let _ = poke(port);
    wait_until("uWSGI vassal loyal", || {
        vassal_stats(&stats, "app.ini")["loyal"] == 1
    });
    e.wait_log("vassal app.ini is now loyal");
    let pid = master_pid(&stats);
    assert!(pid > 0);
    // A change reloads it gracefully: same master pid, ready again.
    fs::write(&cfg, format!("{text}# touched\n")).unwrap();
    e.wait_log("reload the uwsgi instance app.ini");
    // (A reloaded uWSGI master announces itself with byte 5 only, not byte 1.)
    wait_until("uWSGI vassal accepting after the reload", || {
        let v = vassal_stats(&stats, "app.ini");
        v["accepting"] == 1 && v["respawns"] == 1 && v["state"] != "reloading"
    });
    assert_eq!(
        master_pid(&stats),
        pid,
        "a graceful reload keeps the master pid"
    );
    let _ = poke(port);
    // Removal stops it.
    fs::remove_file(&cfg).unwrap();
    e.wait_log("removed uwsgi instance app.ini");
    wait_until("the uWSGI master gone", || !alive(pid as i32));
    assert!(stats_unix(&stats)["vassals"].as_array().unwrap().is_empty());
    // Ragnarok with a running uWSGI vassal: nothing left.
    write_atomic(&cfg, &text);
    wait_until("uWSGI vassal back", || {
        vassal_stats(&stats, "app.ini")["ready"] == 1
    });
    let pid = master_pid(&stats);
    let workers: Vec<i32> = harness_children(pid as i32);
    e.signal(3);
    assert!(e.wait_exit().success());
    for p in std::iter::once(pid as i32).chain(workers) {
        wait_until(&format!("uWSGI process {p} gone"), || !alive(p));
    }
}

/// Children of a process, from /proc.
fn harness_children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(st) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        if let Some(rest) = st.rfind(')').map(|i| &st[i + 1..])
            && rest
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<i32>().ok())
                == Some(pid)
        {
            out.push(p);
        }
    }
    out
}
