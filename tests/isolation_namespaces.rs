//! `emperor-use-clone` through the real binary: vassals cloned into new pid, uts, ipc,
//! net and mount namespaces (inodes differ from the Emperor's, the vassal is pid 1 of
//! its pid namespace and takes every process it forked down with it), an unknown
//! namespace name refuses the start, user namespaces with maps written by the Emperor
//! (root inside is an unprivileged uid outside; the tyrant owner in tyrant mode), and
//! the seed's example: a vassal with its own hostname and its own /proc, set up by
//! `exec-as-vassal` inside the new namespaces, the host's unchanged.

#[path = "support/harness.rs"]
mod harness;
mod isolation_support;

use harness::*;
use isolation_support::*;
use std::fs;
use std::process::Command;

fn host_pid(e: &Emperor, name: &str) -> i32 {
    let mut pid = None;
    wait_until(&format!("{name} spawned"), || {
        pid = spawned_pid(&e.stderr(), name);
        pid.is_some()
    });
    pid.unwrap()
}

/// Host pids of every process in the pid namespace of `pid`.
fn pid_ns_members(pid: i32) -> Vec<i32> {
    let target = ns(&pid.to_string(), "pid");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns(&p.to_string(), "pid") == target && alive(*p))
        .collect()
}

#[test]
fn vassals_get_their_own_namespaces_and_are_pid_one() {
    let s = Scratch::new("ns-clone");
    s.vassal("a.ini", "send:1,orphan");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-use-clone", "pid,uts,ipc,net,fs"]),
    );
    let pid = host_pid(&e, "a.ini");
    wait_until("the probe forked", || {
        s.events().iter().any(|ev| ev.event == "orphans")
    });
    let me = e.pid().to_string();
    for kind in ["pid", "uts", "ipc", "net", "mnt"] {
        assert_ne!(ns(&pid.to_string(), kind), ns(&me, kind), "{kind}");
    }
    assert_eq!(
        ns(&pid.to_string(), "user"),
        ns(&me, "user"),
        "user was not asked for"
    );
    // NSpid: host pid, then 1 inside.
    assert_eq!(status(pid, "NSpid").split_whitespace().last(), Some("1"));
    assert_eq!(starts(&s)[0].pid, 1, "the probe sees itself as pid 1");
    let members = pid_ns_members(pid);
    assert!(
        members.len() >= 3,
        "probe + its child + its daemon: {members:?}"
    );
    signal(pid, 9);
    wait_until("every process of the pid namespace gone", || {
        members.iter().all(|p| !alive(*p))
    });
}

#[test]
fn an_unknown_namespace_refuses_the_start() {
    let s = Scratch::new("ns-bogus");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-use-clone", "pid,bogus"]),
    );
    assert!(!e.wait_exit().success());
    assert!(
        e.stderr().contains("unknown namespace subsystem: bogus"),
        "{}",
        e.stderr()
    );
}

#[test]
fn user_namespaces_map_root_inside_to_an_unprivileged_uid() {
    let s = Scratch::new("ns-user");
    open_probe_log(&s.probe_log());
    chmod(&s.vassals(), 0o755);
    s.vassal("a.ini", "");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-use-clone", "user,uts"]),
    );
    let pid = host_pid(&e, "a.ini");
    wait_until("the probe started", || !starts(&s).is_empty());
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/uid_map"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
    assert_eq!(
        ids(pid, "Uid"),
        vec![65534; 4],
        "root inside is nobody outside"
    );
    assert_eq!(status(pid, "NoNewPrivs"), "1");
    drop(e);

    // Tyrant + user: root inside is the config's owner outside.
    let t1 = tenant("imp-tenant1");
    let s = Scratch::new("ns-user-tyrant");
    open_probe_log(&s.probe_log());
    chmod(&s.vassals(), 0o755);
    chmod(&s.dir, 0o755);
    let cfg = s.vassal("a.ini", "");
    chown(&cfg, t1);
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-use-clone", "user", "--emperor-tyrant"]),
    );
    let pid = host_pid(&e, "a.ini");
    wait_until("the probe started", || !starts(&s).is_empty());
    assert_eq!(ids(pid, "Uid"), vec![t1.uid; 4]);
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", &t1.uid.to_string(), "1"]
    );
}

#[test]
fn own_hostname_and_own_proc_as_in_the_seed() {
    let s = Scratch::new("ns-seed");
    s.vassal("a.ini", "");
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-use-clone",
                "fs,pid,uts,ipc",
                "--exec-as-vassal",
                "hostname vassal-a && mount -t proc proc /proc",
            ],
        ),
    );
    let pid = host_pid(&e, "a.ini");
    wait_until("the probe started", || !starts(&s).is_empty());
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-u", "hostname"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "vassal-a");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_before,
        "the host's hostname is unchanged"
    );
    // Inside its mount namespace, /proc shows only the vassal's pid namespace.
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "ls", "/proc"])
        .output()
        .unwrap();
    let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(pids.contains(&1), "{pids:?}");
    assert!(pids.len() < 5, "only the vassal's processes: {pids:?}");
    // The host's /proc is untouched.
    assert!(fs::read_dir("/proc").unwrap().count() > 20);
    assert!(fs::metadata(format!("/proc/{}", e.pid())).is_ok());
}

#[test]
fn emperor_cap_limits_the_bounding_set_of_root_vassals() {
    let s = Scratch::new("ns-cap");
    s.vassal("a.ini", "");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-cap", "setuid,net_bind_service"]),
    );
    let pid = host_pid(&e, "a.ini");
    let want = (1u64 << 7) | (1 << 10) | (1 << 8);
    assert_eq!(cap(pid, "CapBnd"), want);
    assert_eq!(
        cap(pid, "CapEff"),
        want,
        "a root vassal holds only what the bounding set allows"
    );
    drop(e);
    // exec-as-vassal runs with the same limits: a root vassal cannot mount (no sys_admin).
    let s = Scratch::new("ns-cap-mount");
    s.vassal("a.ini", "");
    let dir = s.path("m");
    fs::create_dir_all(&dir).unwrap();
    let cmd = format!(
        "mount -t tmpfs none {} || touch {}",
        dir.display(),
        s.path("mount-refused").display()
    );
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-cap",
                "setuid",
                "--emperor-use-clone",
                "fs",
                "--exec-as-vassal",
                &cmd,
            ],
        ),
    );
    wait_until("the mount refused", || s.path("mount-refused").exists());
    drop(e);
    let s = Scratch::new("ns-cap-bad");
    let mut e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-cap", "setuid,frobnicate"]),
    );
    assert!(!e.wait_exit().success());
    assert!(
        e.stderr().contains("unknown capability \"frobnicate\""),
        "{}",
        e.stderr()
    );
}
