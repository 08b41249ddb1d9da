//! Operator controls of the master, through the real binary: `touch-reload`,
//! `touch-workers-reload`, `touch-chain-reload`, the master FIFO commands and slots, and
//! `idle` + `die-on-idle`.

mod vassal_support;

use std::io::Write;
use vassal_support::*;

fn fifo_write(path: &std::path::Path, cmds: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(cmds.as_bytes()).unwrap();
}

fn touch(path: &std::path::Path) {
    std::fs::write(path, format!("{:?}", std::time::SystemTime::now())).unwrap();
}

#[test]
fn touch_reload_and_touch_workers_reload() {
    let s = Scratch::new("touch");
    let (t1, t2) = (s.path("reload.trigger"), s.path("workers.trigger"));
    touch(&t1);
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--touch-reload",
            &t1.to_string_lossy(),
            "--touch-workers-reload",
            &t2.to_string_lossy(),
        ],
    );
    i.wait_ready(2);
    assert!(i.stderr().contains(&format!(
        "unable to stat() {}, events will be triggered as soon as the file is created",
        t2.display()
    )));
    // Workers only: new workers, no re-exec.
    let before: Vec<i32> = (1..=2).map(|w| i.worker_pids(w)[0]).collect();
    touch(&t2);
    i.wait_log(&format!(
        "*** {} has been touched... workers reload !!! ***",
        t2.display()
    ));
    i.wait_count("Respawned uWSGI worker", 2);
    assert!(!i.stderr().contains("binary reloading uWSGI..."));
    for (n, old) in before.iter().enumerate() {
        assert_ne!(*i.worker_pids(n + 1).last().unwrap(), *old);
    }
    // The whole instance.
    touch(&t1);
    i.wait_log(&format!(
        "*** {} has been touched... grace them all !!! ***",
        t1.display()
    ));
    i.wait_log(&format!(
        "gracefully (RE)spawned uWSGI master process (pid: {})",
        i.pid()
    ));
}

#[test]
fn chain_reload_replaces_workers_one_at_a_time() {
    let s = Scratch::new("chain");
    let trigger = s.path("chain.trigger");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "3",
            "--touch-chain-reload",
            &trigger.to_string_lossy(),
        ],
    );
    i.wait_ready(3);
    touch(&trigger);
    i.wait_log("has been touched... chain reload !!! ***");
    i.wait_log("chain reloading complete");
    let log = i.stderr();
    let order: Vec<usize> = (1..=3)
        .map(|w| {
            log.find(&format!("chain next victim is worker {w}"))
                .unwrap()
        })
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{log}");
    // Each victim is replaced before the next one is asked to go.
    let respawn1 = log.find("Respawned uWSGI worker 1").unwrap();
    assert!(respawn1 < order[1], "{log}");
    for w in 1..=3 {
        assert_eq!(i.worker_pids(w).len(), 2, "worker {w} replaced once");
    }
}

#[test]
fn master_fifo_commands_and_slots() {
    let s = Scratch::new("fifo");
    let (f0, f1) = (s.path("fifo0"), s.path("fifo1"));
    let pid = s.path("m.pid");
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--master-fifo",
            &f0.to_string_lossy(),
            "--master-fifo",
            &f1.to_string_lossy(),
            "--pidfile",
            &pid.to_string_lossy(),
        ],
    );
    i.wait_ready(2);
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&f0).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    fifo_write(&f0, "s\n");
    i.wait_log("\tworkers total requests: 0");
    fifo_write(&f0, "W");
    i.wait_log("killing worker 1 (pid: ");
    i.wait_count("Respawned uWSGI worker", 2);
    fifo_write(&f0, "w");
    i.wait_count("Respawned uWSGI worker", 4);
    std::fs::remove_file(&pid).unwrap();
    fifo_write(&f0, "P");
    wait_until("pidfile rewritten", || {
        std::fs::read_to_string(&pid).is_ok_and(|p| p.trim() == i.pid().to_string())
    });
    fifo_write(&f0, "r");
    i.wait_log(&format!(
        "gracefully (RE)spawned uWSGI master process (pid: {})",
        i.pid()
    ));
    i.wait_count("spawned uWSGI worker 2 ", 2);
    // After the reload the FIFO is there again; switch to slot 1 and stop through it.
    wait_until("fifo0 re-created", || {
        std::fs::metadata(&f0).is_ok_and(|m| m.file_type().is_fifo())
    });
    fifo_write(&f0, "1");
    i.wait_log(&format!("[master-fifo] enabled slot 1 ({})", f1.display()));
    fifo_write(&f1, "Q");
    assert!(i.wait_exit().success());
    assert!(i.stderr().contains("goodbye to uWSGI."));
}

#[test]
fn die_on_idle_without_an_emperor_exits() {
    let s = Scratch::new("idle");
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--idle",
            "1",
            "--die-on-idle",
        ],
    );
    i.wait_ready(1);
    assert!(i.wait_exit().success());
    assert!(
        i.stderr()
            .contains("workers have been inactive for more than 1 seconds")
    );
}

#[test]
fn sigtstp_pauses_and_resumes() {
    let s = Scratch::new("pause");
    let st = s.s("stats.sock");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--stats",
            &st,
        ],
    );
    i.wait_ready(2);
    let t = Target::Tcp(format!("127.0.0.1:{}", i.port(0)));
    let stats_t = Target::Unix(st.into());
    i.signal("TSTP");
    i.wait_log("*** PAUSE (press start to resume, if you do not have a joypad send SIGTSTP) ***");
    wait_until("both workers paused in the stats", || {
        stats(&stats_t)["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "pause")
    });
    // A request sent while paused waits in the backlog...
    let mut c = connect(&t);
    c.write_all(b"GET /paused HTTP/1.0\r\n\r\n").unwrap();
    i.signal("TSTP");
    i.wait_log("*** (SIGTSTP received) resuming workers ***");
    // ...and is served after the resume.
    assert!(read_to_close(&mut c).starts_with(b"HTTP/1.0 500 "));
    let line = i.wait_log("GET /paused =>");
    let resumed = i.stderr().find("resuming workers").unwrap();
    assert!(
        i.stderr().find(&line).unwrap() > resumed,
        "served before the resume"
    );
}
