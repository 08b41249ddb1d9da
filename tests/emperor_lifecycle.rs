//! The Emperor through the real binary with the scriptable test vassal: the spawn
//! contract, change detection, removal, crashes, exile, curses, heartbeats, throttling
//! and the blacklist, bad names, a flooding vassal, a missing binary, glob monitors.

#[path = "support/harness.rs"]
mod harness;

use harness::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

fn bytes_received(s: &Scratch, pid: i32, value: &str) -> usize {
    s.events()
        .iter()
        .filter(|e| e.pid == pid && e.event == "byte" && e.get("value") == value)
        .count()
}

fn first_start(s: &Scratch) -> Event {
    wait_until("the first vassal start", || !starts(s).is_empty());
    starts(s).remove(0)
}

#[test]
fn spawn_contract_argv_env_fds_cwd() {
    let s = Scratch::new("contract");
    s.vassal("a.ini", "send:1");
    // fd 7 is declared safe, fd 9 is not: only 7 may reach the vassal.
    let args = Emperor::probe_args(
        &s,
        &[
            "--vassal-set",
            "processes=8",
            "--vassals-include",
            "I.ini",
            "--vassals-inherit",
            "H.ini",
            "--safe-fd",
            "7",
        ],
    );
    let script = format!("exec 7</dev/null 9</dev/null; exec {BIN} \"$@\"");
    let mut sh_args = vec!["-c".to_owned(), script, "sh".to_owned()];
    sh_args.extend(args);
    let log = s.path("emperor.log");
    let mut child = std::process::Command::new("/bin/sh")
        .args(&sh_args)
        .current_dir(&s.dir)
        .env("UWSGI_VASSAL_SOCKET", "/tmp/%n.sock")
        .env("NOTIFY_SOCKET", "/nonexistent/notify")
        .env("UWSGI_RELOADS", "4")
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let st = first_start(&s);
    let _ = child.kill();
    let _ = child.wait();
    let argv: Vec<&str> = st.get("argv").split('|').collect();
    assert_eq!(
        argv,
        [
            PROBE,
            "--set",
            "processes=8",
            "--ini",
            "a.ini",
            "--inherit",
            "H.ini",
            "--include",
            "I.ini"
        ]
    );
    let env: Vec<&str> = st.get("env").split(',').collect();
    assert!(
        env.contains(&"UWSGI_SOCKET=/tmp/%n.sock"),
        "UWSGI_VASSAL_SOCKET renamed: {env:?}"
    );
    assert!(
        !env.iter()
            .any(|e| e.starts_with("UWSGI_VASSAL_") || e.starts_with("UWSGI_RELOADS")),
        "{env:?}"
    );
    let efd = env
        .iter()
        .find_map(|e| e.strip_prefix("UWSGI_EMPEROR_FD="))
        .expect("UWSGI_EMPEROR_FD");
    assert_eq!(st.get("notify"), "", "NOTIFY_SOCKET must not reach vassals");
    let mut fds: Vec<&str> = st.get("fds").split(',').collect();
    fds.sort();
    let mut want = vec!["0", "1", "2", "7", efd];
    want.sort();
    assert_eq!(
        fds, want,
        "only the protocol descriptor and safe fds are inherited"
    );
    assert_eq!(st.get("fd0"), "file:/dev/null");
    assert_eq!(
        st.get("cwd"),
        fs::canonicalize(s.vassals()).unwrap().to_str().unwrap()
    );
    assert_eq!(
        st.get("pgid"),
        st.pid.to_string(),
        "each vassal leads its own process group"
    );
}

#[test]
fn change_detection_and_removal() {
    let s = Scratch::new("change");
    let cfg = s.vassal("a.ini", "send:1,send:17");
    let mut e = Emperor::start(&s, &Emperor::probe_args(&s, &[]));
    let pid = first_start(&s).pid;
    let reloads = |n: usize| {
        wait_until(&format!("{n} reloads"), || {
            bytes_received(&s, pid, "1") >= n
        })
    };
    // Two edits of the same size in the same second: both are seen.
    fs::write(
        &cfg,
        format!("{}#1\n", vassal_text(&s.probe_log(), "send:1,send:17")),
    )
    .unwrap();
    reloads(1);
    fs::write(
        &cfg,
        format!("{}#2\n", vassal_text(&s.probe_log(), "send:1,send:17")),
    )
    .unwrap();
    reloads(2);
    // mtime moved backwards (a restored backup).
    let f = fs::File::options().write(true).open(&cfg).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    drop(f);
    reloads(3);
    // Atomic rename-over with identical content.
    let ino = fs::metadata(&cfg).unwrap().ino();
    write_atomic(&cfg, &fs::read_to_string(&cfg).unwrap());
    assert_ne!(ino, fs::metadata(&cfg).unwrap().ino());
    reloads(4);
    // Editor temporaries and other names never reach the vassal.
    fs::write(s.vassals().join(".a.ini.swp"), "x").unwrap();
    fs::write(s.vassals().join("a.ini~"), "x").unwrap();
    fs::write(s.vassals().join("notes.txt"), "x").unwrap();
    // Removal: stop byte, exit, record removed, never respawned.
    fs::remove_file(&cfg).unwrap();
    wait_until("the stop byte", || bytes_received(&s, pid, "0") == 1);
    e.wait_log("removed uwsgi instance a.ini");
    wait_until("the vassal's exit", || !alive(pid));
    assert_eq!(bytes_received(&s, pid, "1"), 4, "no reload for temporaries");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(starts(&s).len(), 1, "a removed vassal is not respawned");
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn crash_respawns_and_exit_26_exiles() {
    let s = Scratch::new("crash");
    s.vassal("crash.ini", "send:1,send:17,sleep:0.2,exit:3");
    let exile = s.vassal("exile.ini", "send:1,exit:26");
    let mut e = Emperor::start(&s, &Emperor::probe_args(&s, &[]));
    wait_until("three crash respawns", || {
        starts(&s)
            .iter()
            .filter(|st| st.get("argv").contains("crash.ini"))
            .count()
            >= 3
    });
    e.wait_log("exited with code 26: exiled until its config changes");
    let exiled = || {
        starts(&s)
            .iter()
            .filter(|st| st.get("argv").contains("exile.ini"))
            .count()
    };
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(exiled(), 1, "exit code 26 is not respawned");
    // Changing the config brings it back.
    fs::write(&exile, vassal_text(&s.probe_log(), "send:1")).unwrap();
    wait_until("the exiled vassal back after a change", || exiled() == 2);
    // Loyal crashes are never blacklisted.
    let st = e.stderr();
    assert!(
        st.contains("vassal crash.ini died (exit code 3): respawning it"),
        "{st}"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn curse_kills_a_vassal_that_ignores_stop() {
    let s = Scratch::new("curse");
    let cfg = s.vassal("stubborn.ini", "send:1,ignore-stop");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-curse-tolerance", "2"]),
    );
    let pid = first_start(&s).pid;
    fs::remove_file(&cfg).unwrap();
    wait_until("the ignored stop byte", || {
        bytes_received(&s, pid, "0") == 1
    });
    e.wait_log("vassal stubborn.ini did not die within 2 seconds: killing it");
    wait_until("the cursed vassal killed", || !alive(pid));
    e.wait_log("removed uwsgi instance stubborn.ini");
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn heartbeat_loss_kills_and_respawns() {
    let s = Scratch::new("heartbeat");
    s.vassal("hb.ini", "send:1,hb:0.2:1.5");
    s.vassal("quiet.ini", "send:1");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-required-heartbeat", "2"]),
    );
    e.wait_log("vassal hb.ini sent no heartbeat in last 2 seconds, brutally respawning it...");
    wait_until("hb.ini respawned", || {
        starts(&s)
            .iter()
            .filter(|st| st.get("argv").contains("hb.ini"))
            .count()
            >= 2
    });
    // A vassal that never sent a heartbeat is never killed for it.
    assert!(!e.stderr().contains("vassal quiet.ini sent no heartbeat"));
    assert_eq!(
        starts(&s)
            .iter()
            .filter(|st| st.get("argv").contains("quiet.ini"))
            .count(),
        1
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn unloyal_crash_loop_is_throttled_and_sigurg_clears_the_blacklist() {
    let s = Scratch::new("throttle");
    s.vassal("bad.ini", "exit:1");
    s.vassal("good.ini", "send:1,send:17,sleep:0.2,exit:1");
    let stats = s.path("stats.sock");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-throttle",
                "200",
                "--emperor-max-throttle",
                "600",
                "--emperor-stats",
                &stats.to_string_lossy(),
            ],
        ),
    );
    e.wait_log("next spawn in 600 ms");
    wait_until("a throttled state with the backoff deadline", || {
        let v = vassal_stats(&stats, "bad.ini");
        v["state"] == "throttled" && v["next_spawn_at"].as_u64().unwrap_or(0) > 0
    });
    let st = stats_unix(&stats);
    let bl = st["blacklist"].as_array().unwrap();
    let bad = bl
        .iter()
        .find(|b| b["id"] == "bad.ini")
        .expect("bad.ini blacklisted");
    assert!(
        bad["throttle_level"].as_u64().unwrap() <= 600,
        "clamped: {bad}"
    );
    assert!(bad["attempt"].as_u64().unwrap() >= 3);
    assert!(
        bl.iter().all(|b| b["id"] != "good.ini"),
        "loyal vassals are never blacklisted: {st}"
    );
    e.wait_log("unloyal bad behaving vassal found: bad.ini throttling it...");
    // Never faster than the cap once it is reached: the log says so every time.
    let log = e.stderr();
    assert!(
        !log.contains("next spawn in 800 ms"),
        "the backoff is clamped"
    );
    e.signal(23); // SIGURG
    e.wait_log("cleaning up blacklist");
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn bad_names_a_flooding_vassal_and_the_others_unaffected() {
    let s = Scratch::new("bad");
    let long = format!("{}.ini", "x".repeat(251));
    fs::write(
        s.vassals().join(&long),
        vassal_text(&s.probe_log(), "send:1"),
    )
    .unwrap();
    fs::write(
        s.vassals().join(".hidden.ini"),
        vassal_text(&s.probe_log(), "send:1"),
    )
    .unwrap();
    fs::create_dir(s.vassals().join("dir.ini")).unwrap();
    fs::write(
        s.vassals().join("garbage.ini"),
        b"\x00\xff[[[ not a config \n=== \n",
    )
    .unwrap();
    s.vassal("flood.ini", "send:1,flood:3000000,send:17");
    let good = s.vassal("good.ini", "send:1");
    let stats = s.path("stats.sock");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-stats", &stats.to_string_lossy()]),
    );
    e.wait_log("invalid vassal name (longer than 254 bytes)");
    e.wait_log("vassal flood.ini floods the Emperor protocol with garbage");
    wait_until("good.ini spawned", || {
        starts(&s)
            .iter()
            .any(|st| st.get("argv").contains("good.ini"))
    });
    // The others keep working while the flood goes on.
    let good_pid = starts(&s)
        .iter()
        .find(|st| st.get("argv").contains("good.ini"))
        .unwrap()
        .pid;
    fs::write(
        &good,
        format!("{}#changed\n", vassal_text(&s.probe_log(), "send:1")),
    )
    .unwrap();
    wait_until("good.ini reloaded", || {
        bytes_received(&s, good_pid, "1") >= 1
    });
    let st = stats_unix(&stats);
    let ids: Vec<&str> = st["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    let mut ids = ids.clone();
    ids.sort();
    assert_eq!(
        ids,
        ["flood.ini", "garbage.ini", "good.ini"],
        "only valid names become vassals"
    );
    assert_eq!(
        e.count_log("invalid vassal name"),
        1,
        "logged once, not at every rescan"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn missing_binary_is_logged_and_exiled() {
    let s = Scratch::new("nobin");
    s.vassal("a.ini", "send:1");
    let stats = s.path("stats.sock");
    let mut e = Emperor::start(
        &s,
        &[
            "--emperor".into(),
            s.vassals().to_string_lossy().into_owned(),
            "--binary-path".into(),
            "/nonexistent/uwsgi".into(),
            "--emperor-freq".into(),
            "1".into(),
            "--emperor-stats".into(),
            stats.to_string_lossy().into_owned(),
        ],
    );
    e.wait_log("is the uwsgi binary in your system PATH ?");
    wait_until("exiled in stats", || {
        vassal_stats(&stats, "a.ini")["state"] == "exiled"
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        e.count_log("is the uwsgi binary in your system PATH ?"),
        1,
        "no retry until the config changes"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn glob_monitor_names_vassals_by_path() {
    let s = Scratch::new("glob");
    for d in ["one", "two"] {
        fs::create_dir_all(s.vassals().join(d).join("conf")).unwrap();
        write_atomic(
            &s.vassals().join(d).join("conf/uwsgi.ini"),
            &vassal_text(&s.probe_log(), "send:1"),
        );
    }
    let pattern = format!("{}/*/conf/uwsgi.ini", s.vassals().display());
    let mut e = Emperor::start(
        &s,
        &[
            "--emperor".into(),
            pattern.clone(),
            "--binary-path".into(),
            PROBE.into(),
            "--emperor-freq".into(),
            "1".into(),
        ],
    );
    wait_until("two glob vassals", || starts(&s).len() == 2);
    let mut names: Vec<String> = starts(&s)
        .iter()
        .map(|st| st.get("argv").split('|').nth(2).unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            s.vassals().join("one/conf/uwsgi.ini").to_string_lossy(),
            s.vassals().join("two/conf/uwsgi.ini").to_string_lossy()
        ]
    );
    // A new matching directory appears: inotify on the intermediate levels sees it.
    fs::create_dir_all(s.vassals().join("three/conf")).unwrap();
    write_atomic(
        &s.vassals().join("three/conf/uwsgi.ini"),
        &vassal_text(&s.probe_log(), "send:1"),
    );
    wait_until("third glob vassal", || starts(&s).len() == 3);
    fs::remove_dir_all(s.vassals().join("one")).unwrap();
    e.wait_log(&format!(
        "removed uwsgi instance {}",
        s.vassals().join("one/conf/uwsgi.ini").display()
    ));
    e.signal(15);
    assert!(e.wait_exit().success());
}
