//! Hooks through the real binary: every phase runs in uWSGI's order, fatal phases stop the
//! instance, private hooks hide their arguments, `as-user-atexit` runs at shutdown; and
//! binary patching turns the instance into another program.

mod vassal_support;

use vassal_support::*;

#[test]
fn phases_run_in_uwsgis_order() {
    let s = Scratch::new("hooks-order");
    let out = s.s("order.txt");
    let mut ini =
        String::from("[uwsgi]\nhttp-socket = 127.0.0.1:0\nmaster = true\nprocesses = 2\n");
    for phase in [
        "asap",
        "pre-jail",
        "in-jail",
        "as-root",
        "as-user",
        "pre-app",
        "post-app",
        "master-start",
        "post-fork",
        "accepting",
        "accepting1",
        "accepting-once",
        "accepting1-once",
        "as-user-atexit",
    ] {
        ini.push_str(&format!("hook-{phase} = appendn:{out} hook-{phase}\n"));
    }
    for phase in [
        "asap",
        "as-root",
        "as-user",
        "pre-app",
        "post-app",
        "as-user-atexit",
    ] {
        ini.push_str(&format!("exec-{phase} = echo exec-{phase} >> {out}\n"));
    }
    std::fs::write(s.path("h.ini"), ini).unwrap();
    let mut i = Instance::start(&s, &["--ini", &s.s("h.ini")]);
    i.wait_ready(2);
    wait_until("accepting hooks of both workers", || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .matches("hook-accepting\n")
            .count()
            == 2
    });
    i.signal("INT");
    assert!(i.wait_exit().success());
    let got = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    let pos = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("{l} missing in {got}"))
    };
    let startup = [
        "hook-asap",
        "exec-asap",
        "hook-pre-jail",
        "hook-in-jail",
        "hook-as-root",
        "exec-as-root",
        "hook-as-user",
        "exec-as-user",
        "hook-pre-app",
        "exec-pre-app",
        "hook-post-app",
        "exec-post-app",
    ];
    for w in startup.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} before {}: {got}", w[0], w[1]);
    }
    // Advanced hooks before the hardcoded ones of the same phase; atexit last.
    assert!(pos("hook-post-app") < pos("hook-post-fork"));
    assert_eq!(
        lines.iter().filter(|l| **l == "hook-accepting1").count(),
        1,
        "{got}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == "hook-accepting-once")
            .count(),
        2,
        "{got}"
    );
    assert_eq!(
        lines[lines.len() - 2..],
        ["hook-as-user-atexit", "exec-as-user-atexit"],
        "{got}"
    );
    let log = i.stderr();
    assert!(
        log.contains(&format!(
            "running \"appendn:{out} hook-as-root\" (as root)..."
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "running \"echo exec-as-user-atexit >> {out}\" (atexit)..."
        )),
        "{log}"
    );
}

#[test]
fn fatal_phases_stop_the_instance() {
    let s = Scratch::new("hooks-fatal");
    for (args, needle) in [
        (
            vec!["--exec-as-root", "exit 3"],
            "command \"exit 3\" exited with non-zero code: 3",
        ),
        (
            vec!["--hook-as-root", "nosuchaction:x"],
            "hook action not found: nosuchaction",
        ),
        (
            vec!["--hook-asap", "noseparator"],
            "invalid hook syntax, must be hook:args",
        ),
        (
            vec!["--hook-pre-app", "unlink:/surely/not/here"],
            "FATAL hook failed",
        ),
    ] {
        let mut all = vec!["--http-socket", "127.0.0.1:0", "--master"];
        all.extend(args);
        let mut i = Instance::start(&s, &all);
        let st = i.wait_exit();
        assert_eq!(st.code(), Some(1), "{all:?}: {}", i.stderr());
        assert!(i.stderr().contains(needle), "{needle}: {}", i.stderr());
    }
    // A failing atexit command is only logged.
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--exec-as-user-atexit",
            "false",
        ],
    );
    i.wait_ready(1);
    i.signal("INT");
    assert_eq!(i.wait_exit().code(), Some(0), "{}", i.stderr());
    assert!(
        i.stderr()
            .contains("command \"false\" exited with non-zero code: 1")
    );
}

#[test]
fn private_hooks_and_file_actions() {
    let s = Scratch::new("hooks-private");
    let f = s.s("h");
    let marker = s.s("app-was-loaded-with-h");
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--hook-as-root",
            "!print:secret-words",
            "--hook-pre-app",
            &format!("write:{f} hello"),
            "--hook-pre-app",
            &format!("exec:cp {f} {marker}"),
            "--hook-post-app",
            &format!("unlink:{f}"),
            "--hook-as-user",
            "putenv:HOOKED=yes",
            "--exec-as-user",
            &format!("echo $HOOKED > {}", s.s("env")),
        ],
    );
    i.wait_ready(1);
    let log = i.stderr();
    assert!(
        log.contains("running --- PRIVATE HOOK --- (as root)..."),
        "{log}"
    );
    assert!(!log.contains("print:secret-words"), "{log}");
    assert!(log.contains("secret-words"), "{log}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "hello");
    assert!(!std::path::Path::new(&f).exists());
    assert_eq!(
        std::fs::read_to_string(s.path("env")).unwrap().trim(),
        "yes"
    );
    i.signal("INT");
    i.wait_exit();
}

#[test]
fn touch_hook_runs_in_the_master() {
    let s = Scratch::new("hooks-touch");
    let trigger = s.s("trigger");
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--hook-touch",
            &format!("{trigger} print:touched-it"),
        ],
    );
    i.wait_ready(1);
    std::fs::write(&trigger, "x").unwrap();
    i.wait_log("touched-it");
    i.signal("INT");
    i.wait_exit();
}

#[test]
fn binary_patches_replace_the_instance() {
    let s = Scratch::new("patch");
    let script = s.path("patched.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$0 $@\" > {}\n", s.s("argv")),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let script_s = script.to_string_lossy().into_owned();
    for opt in ["--privileged-binary-patch", "--unprivileged-binary-patch"] {
        let _ = std::fs::remove_file(s.path("argv"));
        let mut i = Instance::start(&s, &["--http-socket", "127.0.0.1:0", opt, &script_s]);
        assert_eq!(i.wait_exit().code(), Some(0), "{}", i.stderr());
        let argv = std::fs::read_to_string(s.path("argv")).unwrap();
        assert_eq!(
            argv.trim(),
            format!("{script_s} --http-socket 127.0.0.1:0 {opt} {script_s}")
        );
    }
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--unprivileged-binary-patch-arg",
            &format!("echo $$ > {}", s.s("pid")),
        ],
    );
    let pid = i.pid();
    assert_eq!(i.wait_exit().code(), Some(0));
    // Same process: the pid is the instance's.
    assert_eq!(
        std::fs::read_to_string(s.path("pid")).unwrap().trim(),
        pid.to_string()
    );
}

#[test]
fn mount_and_call_hooks() {
    let s = Scratch::new("hooks-mount");
    let mnt = s.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_string_lossy().into_owned();
    // In a private mount namespace, so nothing leaks to the machine.
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", BIN])
        .args(["--http-socket", "127.0.0.1:0", "--master"])
        .args([
            "--mount-as-root",
            &format!("tmpfs none {m} nosuid,nodev size=1m"),
        ])
        .args(["--hook-as-user", &format!("write:{m}/inside hello")])
        .args(["--hook-as-user", "callret:putenv CALLED_BY_HOOK=yes"])
        .args([
            "--exec-as-user",
            &format!(
                "echo $CALLED_BY_HOOK > {}; grep -c ' {m} tmpfs' /proc/self/mounts > {}",
                s.s("env"),
                s.s("mounts")
            ),
        ])
        .args(["--hook-as-user-atexit", &format!("umount:{m}")]);
    let mut i = Instance::spawn(&s, &mut cmd, "instance.log");
    i.wait_ready(1);
    assert_eq!(
        std::fs::read_to_string(s.path("env")).unwrap().trim(),
        "yes"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("mounts")).unwrap().trim(),
        "1"
    );
    // The file went into the tmpfs, not into the directory below it.
    assert!(!mnt.join("inside").exists());
    assert!(i.stderr().contains(&format!(
        "mounting \"tmpfs none {m} nosuid,nodev size=1m\" (as root)..."
    )));
    i.signal("INT");
    assert!(i.wait_exit().success(), "{}", i.stderr());
    assert!(
        i.stderr()
            .contains(&format!("running \"umount:{m}\" (atexit)..."))
    );
    assert!(!i.stderr().contains("uwsgi_umount()"), "{}", i.stderr());
}

#[test]
fn startup_waits() {
    let s = Scratch::new("waits");
    let f = s.path("appears-later");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--wait-for-file",
            &f.to_string_lossy(),
            "--wait-for-interface",
            "lo",
        ],
    );
    i.wait_log(&format!("waiting for {} (max 60 seconds) ...", f.display()));
    i.wait_log("interface lo found with index");
    assert!(!i.stderr().contains("spawned uWSGI master"));
    std::fs::write(&f, "x").unwrap();
    i.wait_log(&format!("{} found", f.display()));
    i.wait_ready(1);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wait-for-socket",
            &closed,
            "--wait-for-socket-timeout",
            "1",
        ],
    );
    assert_eq!(i.wait_exit().code(), Some(1));
    assert!(
        i.stderr()
            .contains(&format!("{closed} unavailable after 1 seconds")),
        "{}",
        i.stderr()
    );
}

#[test]
fn touch_exec_runs_a_command() {
    let s = Scratch::new("touch-exec");
    let trigger = s.s("t");
    let out = s.path("ran");
    let mut i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--touch-exec",
            &format!("{trigger} echo ran > {}", out.display()),
        ],
    );
    i.wait_ready(1);
    std::fs::write(&trigger, "x").unwrap();
    wait_until("the touch-exec command ran", || {
        std::fs::read_to_string(&out).unwrap_or_default().trim() == "ran"
    });
    i.signal("INT");
    i.wait_exit();
}

/// Starts the instance as an Emperor would (vassal end of a socketpair on fd 3).
fn governed(s: &Scratch, args: &[&str]) -> (Instance, std::os::unix::net::UnixStream) {
    let (emperor, vassal) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" 3<&0 0</dev/null")
        .arg(BIN)
        .args(args);
    cmd.env("UWSGI_EMPEROR_FD", "3")
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            vassal,
        )));
    (Instance::spawn(s, &mut cmd, "vassal.log"), emperor)
}

#[test]
fn emperor_phases() {
    use std::io::Write;
    let s = Scratch::new("hooks-emperor");
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--hook-emperor-reload",
        "print:emperor-asked-reload",
        "--hook-emperor-stop",
        "print:emperor-asked-stop",
        "--hook-emperor-lost",
        "print:emperor-is-gone",
    ];
    let (mut i, mut e) = governed(&s, &args);
    i.wait_ready(1);
    e.write_all(&[1]).unwrap();
    i.wait_log("emperor-asked-reload");
    i.wait_log("gracefully (RE)spawned uWSGI master process");
    e.write_all(&[0]).unwrap();
    i.wait_log("emperor-asked-stop");
    i.wait_exit();
    let (mut i, e) = governed(&s, &args);
    i.wait_ready(1);
    drop(e);
    i.wait_log("emperor-is-gone");
    assert_eq!(i.wait_exit().code(), Some(1));
}
