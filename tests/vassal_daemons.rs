//! Attached daemons through the real binary: a dumb daemon is respawned when it dies and
//! stopped with the instance (and on reload), a control daemon's death stops the
//! instance, the stop signal goes to the daemon, smart daemons are governed through their
//! pidfile and survive the instance, and a daemon dying in a loop is throttled.

mod vassal_support;

use vassal_support::*;

fn pids_in(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn kill(pid: i32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[test]
fn dumb_daemon_respawns_and_dies_with_the_instance() {
    let s = Scratch::new("daemon-dumb");
    let pids = s.path("pids");
    let cmd = format!("echo $$ >> {}; exec sleep 1000", pids.display());
    let mut i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--attach-daemon", &cmd],
    );
    i.wait_ready(1);
    wait_until("the daemon started", || pids_in(&pids).len() == 1);
    let first = pids_in(&pids)[0];
    assert!(
        children(i.pid()).contains(&first),
        "the daemon is the master's child"
    );
    kill(first, "KILL");
    wait_until("the daemon respawned", || pids_in(&pids).len() == 2);
    i.wait_log(&format!("daemon \"{cmd}\" (pid: {first}) annihilated"));
    let second = pids_in(&pids)[1];
    assert!(alive(second));
    // A graceful reload stops it and the new generation starts it again.
    i.signal("HUP");
    i.wait_log(&format!(
        "[uwsgi-daemons] stopping daemon (pid: {second}): {cmd}"
    ));
    wait_until("the daemon restarted after the reload", || {
        pids_in(&pids).len() == 3
    });
    assert!(!alive(second));
    let third = pids_in(&pids)[2];
    i.signal("INT");
    i.wait_exit();
    assert!(!alive(third), "the daemon is stopped with the instance");
}

#[test]
fn control_daemon_death_stops_the_instance_and_stop_signal_is_used() {
    let s = Scratch::new("daemon-control");
    let pids = s.path("pids");
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--attach-daemon2",
            &format!(
                "cmd=echo $$ >> {}; exec sleep 1000,control=1",
                pids.display()
            ),
        ],
    );
    i.wait_ready(1);
    wait_until("the control daemon started", || pids_in(&pids).len() == 1);
    kill(pids_in(&pids)[0], "KILL");
    i.wait_log("control daemon");
    assert_eq!(i.wait_exit().code(), Some(0), "{}", i.stderr());

    let got = s.path("got");
    let cmd = format!(
        "trap 'echo quit > {}; exit 0' QUIT; echo $$ >> {}; while true; do sleep 0.1; done",
        got.display(),
        s.path("p2").display()
    );
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--attach-daemon2",
            &format!("cmd={cmd},stopsignal=3"),
        ],
    );
    i.wait_ready(1);
    wait_until("the daemon started", || pids_in(&s.path("p2")).len() == 1);
    i.signal("INT");
    i.wait_exit();
    assert_eq!(
        std::fs::read_to_string(&got).unwrap_or_default().trim(),
        "quit",
        "{}",
        i.stderr()
    );
}

#[test]
fn smart_daemons_are_governed_by_their_pidfile() {
    let s = Scratch::new("daemon-smart");
    let pf = s.path("d.pid");
    let pf2 = s.path("d2.pid");
    let smart = format!(
        "{} sleep 1000 > /dev/null 2>&1 & echo $! > {}",
        pf.display(),
        pf.display()
    );
    let smart2 = format!("{} exec sleep 1001", pf2.display());
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--smart-attach-daemon",
        smart.as_str(),
        "--smart-attach-daemon2",
        smart2.as_str(),
    ];
    let mut i = Instance::start(&s, &args);
    i.wait_ready(1);
    wait_until("both pidfiles written", || {
        pids_in(&pf).len() == 1 && pids_in(&pf2).len() == 1
    });
    let (d1, d2) = (pids_in(&pf)[0], pids_in(&pf2)[0]);
    assert!(alive(d1) && alive(d2));
    // The master notices a dead smart daemon and runs its command again.
    kill(d1, "KILL");
    wait_until("a new smart daemon", || {
        pids_in(&pf).first().is_some_and(|p| *p != d1 && alive(*p))
    });
    let d1 = pids_in(&pf)[0];
    i.signal("INT");
    i.wait_exit();
    assert!(alive(d1) && alive(d2), "smart daemons survive the instance");
    // The next instance adopts them instead of starting duplicates.
    let mut i = Instance::start(&s, &args);
    i.wait_ready(1);
    i.wait_log(&format!(
        "found valid/active pidfile for \"sleep 1000 > /dev/null 2>&1 & echo $! > {}\" (pid: {d1})",
        pf.display()
    ));
    i.wait_log(&format!(
        "found valid/active pidfile for \"exec sleep 1001\" (pid: {d2})"
    ));
    assert_eq!(pids_in(&pf), vec![d1]);
    i.signal("INT");
    i.wait_exit();
    kill(d1, "KILL");
    kill(d2, "KILL");
}

#[test]
fn a_daemon_dying_in_a_loop_is_throttled() {
    let s = Scratch::new("daemon-throttle");
    let i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--attach-daemon", "exit 1"],
    );
    i.wait_ready(1);
    i.wait_log("[uwsgi-daemons] throttling \"exit 1\" for");
    i.wait_log("[uwsgi-daemons] respawning \"exit 1\"");
}

#[test]
fn keyval_touch_uid_and_gid() {
    let s = Scratch::new("daemon-keyval");
    let pids = s.path("pids");
    let ids = s.path("ids");
    std::fs::write(&ids, "").unwrap();
    std::fs::write(&pids, "").unwrap();
    for f in [&ids, &pids] {
        std::process::Command::new("chmod")
            .arg("666")
            .arg(f)
            .status()
            .unwrap();
    }
    let trigger = s.path("restart");
    let cmd = format!(
        "cmd=echo $(id -u):$(id -g) > {}; echo $$ >> {}; exec sleep 1000,uid=65534,gid=65534,touch={}",
        ids.display(),
        pids.display(),
        trigger.display()
    );
    let i = Instance::start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--attach-daemon2", &cmd],
    );
    i.wait_ready(1);
    wait_until("the daemon started", || pids_in(&pids).len() == 1);
    assert_eq!(std::fs::read_to_string(&ids).unwrap().trim(), "65534:65534");
    // Touching its file restarts it.
    std::fs::write(&trigger, "x").unwrap();
    i.wait_log("has been touched... reloading daemon");
    wait_until("the daemon restarted", || pids_in(&pids).len() == 2);
    assert!(!alive(pids_in(&pids)[0]));
}
