//! The Emperor's `as-vassal` and `as-emperor` hook phases beyond `exec-as-*` through the
//! real binary: `hook-as-vassal` and `mount-as-vassal` run in the vassal's process before
//! the vassal binary (a failure keeps it from starting), `hook-as-emperor` runs in the
//! Emperor after the spawn, and the `call-as-*` functions are called with the vassal's
//! name (libc's `perror` prints it).

#[path = "support/harness.rs"]
mod harness;

use harness::*;
use std::fs;

fn read(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn as_vassal_and_as_emperor_hooks_run() {
    let s = Scratch::new("emperor-hooks");
    s.vassal("a.ini", "send:1,send:17");
    let mnt = s.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let log = s.path("hooks.log");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--hook-as-vassal",
                &format!("appendn:{} as-vassal hook", log.display()),
                "--mount-as-vassal",
                &format!("tmpfs none {}", mnt.display()),
                // After the mount: the vassal's process sees the tmpfs.
                "--exec-as-vassal",
                &format!(
                    "grep -q ' {} ' /proc/self/mountinfo && echo mounted >> {}",
                    mnt.display(),
                    log.display()
                ),
                "--hook-as-emperor",
                &format!("appendn:{} as-emperor hook", log.display()),
            ],
        ),
    );
    wait_until("the vassal's start", || !starts(&s).is_empty());
    wait_until("the as-emperor hook", || {
        read(&log).contains("as-emperor hook")
    });
    let text = read(&log);
    let at = |p: &str| {
        text.lines()
            .position(|l| l == p)
            .unwrap_or_else(|| panic!("{p:?} missing: {text}"))
    };
    assert!(at("as-vassal hook") < at("mounted"), "{text}");
    e.wait_log(&format!(
        "running \"appendn:{} as-vassal hook\" (as-vassal)...",
        log.display()
    ));
    e.wait_log(&format!(
        "mounting \"tmpfs none {}\" (as-vassal)...",
        mnt.display()
    ));
    e.wait_log("(as-emperor)...");
    e.signal(15);
    assert!(e.wait_exit().success());
    let _ = std::process::Command::new("umount").arg(&mnt).status();
}

#[test]
fn a_failing_hook_as_vassal_keeps_the_vassal_from_starting() {
    let s = Scratch::new("hook-asvassal-fail");
    s.vassal("a.ini", "send:1,send:17");
    let missing = s.path("missing");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--hook-as-vassal",
                &format!("unlink:{}", missing.display()),
                "--exec-as-vassal",
                &format!("touch {}", s.s("after-hook")),
                "--emperor-throttle",
                "100",
            ],
        ),
    );
    let failed = format!("uwsgi_hook_unlink()/unlink(\"{}\")", missing.display());
    // The Emperor retries: a second failure means the first attempt is over.
    wait_until("two failed attempts", || e.count_log(&failed) >= 2);
    assert!(starts(&s).is_empty(), "the vassal binary never ran");
    assert!(
        !s.path("after-hook").exists(),
        "nothing after the failed hook ran"
    );
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn call_as_vassal_and_as_emperor_call_functions_with_the_name() {
    let s = Scratch::new("emperor-calls");
    s.vassal("a.ini", "send:1,send:17");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--call-as-vassal1",
                "perror",
                "--call-as-emperor1",
                "perror",
                "--call-as-emperor",
                "no_such_function_in_imperium",
            ],
        ),
    );
    wait_until("the vassal's start", || !starts(&s).is_empty());
    // One line from the helper in the vassal's process, one from the Emperor.
    wait_until("two perror lines", || {
        e.stderr()
            .lines()
            .filter(|l| l.starts_with("a.ini: "))
            .count()
            >= 2
    });
    e.wait_log("unable to call function \"no_such_function_in_imperium\"");
    e.signal(15);
    assert!(e.wait_exit().success());
}

#[test]
fn a_missing_call_as_vassal_function_keeps_the_vassal_from_starting() {
    let s = Scratch::new("call-asvassal-fail");
    s.vassal("a.ini", "send:1,send:17");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--call-as-vassal",
                "no_such_function_in_imperium",
                "--emperor-throttle",
                "100",
            ],
        ),
    );
    let failed = "unable to call function \"no_such_function_in_imperium\"";
    wait_until("two failed attempts", || e.count_log(failed) >= 2);
    assert!(starts(&s).is_empty(), "the vassal binary never ran");
    e.signal(15);
    assert!(e.wait_exit().success());
}
