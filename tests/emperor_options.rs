//! The Emperor's remaining options through the real binary: start/stop hooks,
//! `exec-as-vassal`/`exec-as-emperor` with their `UWSGI_VASSAL_*` variables,
//! `emperor-pidfile`, `emperor-procname`, `emperor-wrapper`, `emperor-magic-exec`,
//! `emperor-graceful-shutdown`, `emperor-extra-extension`, `emperor-nofollow` and
//! `emperor-no-blacklist`.

#[path = "support/harness.rs"]
mod harness;

use harness::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn bytes_received(s: &Scratch, pid: i32, value: &str) -> usize {
    s.events()
        .iter()
        .filter(|e| e.pid == pid && e.event == "byte" && e.get("value") == value)
        .count()
}

fn script(path: &std::path::Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn read(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn start_and_stop_hooks_and_exec_commands() {
    let s = Scratch::new("hooks");
    let cfg = s.vassal("a.ini", "send:1,send:17");
    let start_hook = s.path("start-hook.sh");
    let stop_hook = s.path("stop-hook.sh");
    script(
        &start_hook,
        &format!(
            "echo \"start $1 $UWSGI_VASSALS_DIR\" >> {}",
            s.s("hooks.log")
        ),
    );
    script(
        &stop_hook,
        &format!(
            "echo \"stop $1 $UWSGI_VASSALS_DIR\" >> {}",
            s.s("hooks.log")
        ),
    );
    let as_vassal = format!("echo \"as-vassal $$\" >> {}", s.s("hooks.log"));
    let as_emperor = format!(
        "echo \"as-emperor $UWSGI_VASSAL_CONFIG $UWSGI_VASSAL_PID $UWSGI_VASSAL_UID $UWSGI_VASSAL_GID\" >> {}",
        s.s("hooks.log")
    );
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--vassals-start-hook",
                &start_hook.to_string_lossy(),
                "--vassals-stop-hook",
                &stop_hook.to_string_lossy(),
                "--exec-as-vassal",
                &as_vassal,
                "--exec-as-emperor",
                &as_emperor,
            ],
        ),
    );
    wait_until("the vassal's start", || !starts(&s).is_empty());
    let pid = starts(&s)[0].pid;
    wait_until("the as-emperor command", || {
        read(&s.path("hooks.log")).contains("as-emperor")
    });
    let vassals = fs::canonicalize(s.vassals()).unwrap();
    let log = read(&s.path("hooks.log"));
    assert!(
        log.contains(&format!("start a.ini {}", vassals.display())),
        "start hook with name and UWSGI_VASSALS_DIR: {log}"
    );
    assert!(log.contains("as-vassal "), "exec-as-vassal ran: {log}");
    assert!(
        log.contains(&format!("as-emperor a.ini {pid} ")),
        "exec-as-emperor sees the vassal's name and pid: {log}"
    );
    // The start hook, then exec-as-vassal, both before the vassal binary (exec-as-emperor
    // runs in the Emperor's own helper, concurrently).
    let at = |p: &str| log.lines().position(|l| l.starts_with(p)).unwrap();
    assert!(
        at("start ") < at("as-vassal"),
        "start hook, then exec-as-vassal: {log}"
    );
    fs::remove_file(&cfg).unwrap();
    wait_until("the stop hook", || {
        read(&s.path("hooks.log")).contains("stop a.ini")
    });
    e.wait_log("running vassal stop-hook");
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn a_failing_exec_as_vassal_keeps_the_vassal_from_starting() {
    let s = Scratch::new("asvassal-fail");
    s.vassal("a.ini", "send:1,send:17");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &["--exec-as-vassal", "exit 3", "--emperor-throttle", "100"],
        ),
    );
    e.wait_log("exited with non-zero code: 3");
    std::thread::sleep(Duration::from_millis(500));
    assert!(starts(&s).is_empty(), "the vassal binary never ran");
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn pidfile_procname_and_wrapper() {
    let s = Scratch::new("pidfile");
    s.vassal("a.ini", "send:1,send:17");
    let wrapper = s.path("wrapper.sh");
    script(
        &wrapper,
        &format!(
            "echo \"wrapped $0 $*\" >> {}\nexec {PROBE} \"$@\"",
            s.s("wrapper.log")
        ),
    );
    let pidfile = s.path("emperor.pid");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-pidfile",
                &pidfile.to_string_lossy(),
                "--emperor-procname",
                "imperial-test-emperor",
                "--emperor-wrapper",
                &wrapper.to_string_lossy(),
            ],
        ),
    );
    wait_until("the vassal's start", || !starts(&s).is_empty());
    assert_eq!(read(&pidfile).trim(), e.pid().to_string());
    let comm = read(std::path::Path::new(&format!("/proc/{}/comm", e.pid())));
    assert_eq!(
        comm.trim(),
        "imperial-test-e",
        "the kernel keeps 15 bytes of the name"
    );
    let wl = read(&s.path("wrapper.log"));
    assert!(
        wl.contains(&format!("wrapped {} --ini a.ini", wrapper.display())),
        "the wrapper is argv[0] and the program: {wl}"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn magic_exec_runs_an_executable_config() {
    let s = Scratch::new("magic");
    let argv_log = s.path("argv.log");
    let logger = s.path("logger.sh");
    script(
        &logger,
        &format!("echo \"$*\" >> {}\nexec {PROBE} \"$@\"", argv_log.display()),
    );
    let exe = s.vassals().join("gen.ini");
    script(&exe, "echo '[uwsgi]'");
    s.vassal("plain.ini", "send:1,send:17");
    let mut e = Emperor::start(
        &s,
        &[
            "--emperor",
            &s.s("vassals"),
            "--binary-path",
            &logger.to_string_lossy(),
            "--emperor-freq",
            "1",
            "--emperor-magic-exec",
        ]
        .map(String::from),
    );
    wait_until("both vassals spawned", || {
        read(&argv_log).lines().count() >= 2
    });
    let log = read(&argv_log);
    assert!(
        log.lines().any(|l| l == "--ini exec://gen.ini"),
        "an executable config goes through exec://: {log}"
    );
    assert!(
        log.lines().any(|l| l == "--ini plain.ini"),
        "a plain config is passed as is: {log}"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn graceful_shutdown_sends_2_on_removal() {
    let s = Scratch::new("graceful");
    let cfg = s.vassal("a.ini", "send:1,send:17");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-graceful-shutdown"]),
    );
    wait_until("the vassal's start", || !starts(&s).is_empty());
    let pid = starts(&s)[0].pid;
    fs::remove_file(&cfg).unwrap();
    wait_until("the graceful stop byte", || {
        bytes_received(&s, pid, "2") == 1
    });
    assert_eq!(bytes_received(&s, pid, "0"), 0, "byte 2, not 0");
    wait_until("the vassal's exit", || !alive(pid));
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn extra_extensions_and_nofollow() {
    let s = Scratch::new("extra");
    s.vassal("a.conf", "send:1,send:17");
    s.vassal("b.txt", "send:1,send:17");
    // A symlinked config: with emperor-nofollow the link itself is stamped, so editing the
    // target does not reload; replacing the link does.
    let target = s.path("target.ini");
    fs::write(&target, vassal_text(&s.probe_log(), "send:1,send:17")).unwrap();
    let link = s.vassals().join("l.ini");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &["--emperor-extra-extension", ".conf", "--emperor-nofollow"],
        ),
    );
    wait_until("two vassals", || starts(&s).len() >= 2);
    let argvs: Vec<String> = starts(&s)
        .iter()
        .map(|st| st.get("argv").to_owned())
        .collect();
    assert!(argvs.iter().any(|a| a.contains("a.conf")), "{argvs:?}");
    assert!(argvs.iter().any(|a| a.contains("l.ini")), "{argvs:?}");
    let lpid = starts(&s)
        .iter()
        .find(|st| st.get("argv").contains("l.ini"))
        .unwrap()
        .pid;
    fs::write(
        &target,
        format!("{}#edit\n", vassal_text(&s.probe_log(), "send:1,send:17")),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        bytes_received(&s, lpid, "1"),
        0,
        "nofollow: an edit of the target is not a change of the link"
    );
    // Replace the link atomically (a new link renamed over it).
    let tmp_link = s.vassals().join(".l.ini.new");
    std::os::unix::fs::symlink(&target, &tmp_link).unwrap();
    fs::rename(&tmp_link, &link).unwrap();
    wait_until("a reload after the link changed", || {
        bytes_received(&s, lpid, "1") >= 1
    });
    assert!(
        starts(&s)
            .iter()
            .all(|st| !st.get("argv").contains("b.txt")),
        "other extensions stay ignored"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn no_blacklist_keeps_respawning_at_the_base_throttle() {
    let s = Scratch::new("noblacklist");
    s.vassal("bad.ini", "exit:1");
    let stats = s.path("stats.sock");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-no-blacklist",
                "--emperor-throttle",
                "100",
                "--emperor-stats",
                &stats.to_string_lossy(),
            ],
        ),
    );
    wait_until("five spawns", || starts(&s).len() >= 5);
    let st = stats_unix(&stats);
    assert!(
        st["blacklist"].as_array().is_none_or(|b| b.is_empty()),
        "nothing is blacklisted: {st}"
    );
    assert!(
        !e.stderr().contains("unloyal bad behaving vassal"),
        "no throttling message"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}
