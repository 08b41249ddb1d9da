//! The vassal's own isolation options through the real binary, as root: `uid`/`gid`/
//! `cap` (capabilities kept, ambient, NO_NEW_PRIVS), unknown capability names, `unshare`
//! (namespace inodes differ from the host's), `cgroup`/`cgroup-opt` on the v1
//! hierarchies and the v2 tree of this host, and a non-root instance that cannot gain
//! anything back. The truth is read from /proc and the cgroup files.

mod isolation_support;
#[path = "vassal_support/mod.rs"]
mod vs;

use isolation_support::*;
use std::fs;
use vs::{Instance, Scratch, children};

fn base_args(sock: &str) -> Vec<String> {
    ["--socket", sock, "--master", "--processes", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn uid_gid_and_cap_are_kept_as_ambient_with_no_new_privs() {
    let t1 = tenant("imp-tenant1");
    let s = Scratch::new("iso-cap");
    let port = free_port();
    let mut args = base_args(&format!("127.0.0.1:{port}"));
    args.extend(
        [
            "--uid",
            &t1.uid.to_string(),
            "--gid",
            &t1.gid.to_string(),
            "--cap",
            "net_bind_service,25",
        ]
        .map(String::from),
    );
    let inst = Instance::start(&s, &args.iter().map(String::as_str).collect::<Vec<_>>());
    inst.wait_ready(1);
    let worker = inst.worker_pids(1)[0];
    for pid in [inst.pid(), worker] {
        assert_eq!(ids(pid, "Uid"), vec![t1.uid; 4], "{}", inst.stderr());
        assert_eq!(ids(pid, "Gid"), vec![t1.gid; 4]);
        let want = (1u64 << 10) | (1 << 25);
        assert_eq!(cap(pid, "CapEff"), want, "pid {pid}");
        assert_eq!(cap(pid, "CapPrm"), want);
        assert_eq!(
            cap(pid, "CapAmb"),
            want,
            "ambient: survives exec of ordinary binaries"
        );
        assert_eq!(status(pid, "NoNewPrivs"), "1");
    }
    assert!(
        inst.stderr()
            .contains("kept capabilities: net_bind_service,sys_time")
    );
}

#[test]
fn unknown_capability_names_are_fatal() {
    let s = Scratch::new("iso-cap-bad");
    let port = free_port();
    let mut args = base_args(&format!("127.0.0.1:{port}"));
    args.extend(["--cap", "net_bind_service,frobnicate"].map(String::from));
    let mut inst = Instance::start(&s, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!inst.wait_exit().success());
    assert!(
        inst.stderr().contains("unknown capability \"frobnicate\""),
        "{}",
        inst.stderr()
    );
}

#[test]
fn unshare_gives_the_master_its_own_namespaces() {
    let s = Scratch::new("iso-unshare");
    let port = free_port();
    let mut args = base_args(&format!("127.0.0.1:{port}"));
    args.extend(["--unshare", "ipc,uts"].map(String::from));
    let inst = Instance::start(&s, &args.iter().map(String::as_str).collect::<Vec<_>>());
    inst.wait_ready(1);
    for kind in ["ipc", "uts"] {
        assert_ne!(
            ns(&inst.pid().to_string(), kind),
            ns("self", kind),
            "{kind}"
        );
    }
    assert_eq!(
        ns(&inst.pid().to_string(), "net"),
        ns("self", "net"),
        "net was not asked for"
    );
    let s2 = Scratch::new("iso-unshare-bad");
    let mut bad = Instance::start(&s2, &["--socket", "127.0.0.1:1", "--unshare", "ipc,bogus"]);
    assert!(!bad.wait_exit().success());
    assert!(
        bad.stderr().contains("unknown namespace subsystem: bogus"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn cgroup_options_on_v1_and_v2() {
    let layout = imperium_namespaces::cgroup::Layout::detect();
    let s = Scratch::new("iso-cgroup");
    let tag = format!("imperium-test-{}", std::process::id());
    let mut dirs = Vec::new();
    // v1 memory hierarchy (below our own cgroup there), if mounted.
    if let Some(h) = layout.v1_for("memory") {
        let own = imperium_namespaces::cgroup::layout::own_path(Some("memory"))
            .unwrap_or_else(|| "/".into());
        dirs.push(imperium_namespaces::cgroup::layout::join(&h.mount, &own).join(&tag));
    }
    if let Some(u) = &layout.unified {
        let own = imperium_namespaces::cgroup::layout::own_path(None).unwrap_or_else(|| "/".into());
        dirs.push(imperium_namespaces::cgroup::layout::join(u, &own).join(&tag));
    }
    assert!(
        !dirs.is_empty(),
        "no cgroup hierarchy mounted: {}",
        layout.describe()
    );
    let port = free_port();
    let mut args = base_args(&format!("127.0.0.1:{port}"));
    for d in &dirs {
        args.extend(["--cgroup".to_owned(), d.to_string_lossy().into_owned()]);
    }
    let memory_on_v2 = layout.v2_controllers().iter().any(|c| c == "memory");
    // A v1 key: written as is on v1, translated to memory.max on v2.
    args.extend([
        "--cgroup-opt".to_owned(),
        "memory.limit_in_bytes=67108864".to_owned(),
    ]);
    let mut inst = Instance::start(&s, &args.iter().map(String::as_str).collect::<Vec<_>>());
    inst.wait_ready(1);
    let worker = inst.worker_pids(1)[0];
    for d in &dirs {
        let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap();
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
        assert!(
            pids.contains(&inst.pid()) && pids.contains(&worker),
            "{} has {pids:?}",
            d.display()
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(d).unwrap().permissions())
            & 0o777;
        assert_eq!(mode, 0o700, "cgroup-dir-mode default");
    }
    if layout.v1_for("memory").is_some() {
        assert_eq!(
            fs::read_to_string(dirs[0].join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "67108864"
        );
    }
    if memory_on_v2 {
        assert_eq!(
            fs::read_to_string(dirs.last().unwrap().join("memory.max"))
                .unwrap()
                .trim(),
            "67108864"
        );
    }
    inst.signal("INT");
    inst.wait_exit();
    for d in &dirs {
        let _ = fs::remove_dir(d);
    }

    // An unknown key is an error, not silently skipped.
    let s2 = Scratch::new("iso-cgroup-bad");
    let mut args = base_args(&format!("127.0.0.1:{}", free_port()));
    let d = dirs[0].with_file_name(format!("{tag}-bad"));
    args.extend([
        "--cgroup".to_owned(),
        d.to_string_lossy().into_owned(),
        "--cgroup-opt".to_owned(),
        "bogus.knob=1".to_owned(),
    ]);
    let mut bad = Instance::start(&s2, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!bad.wait_exit().success());
    assert!(bad.stderr().contains("bogus.knob"), "{}", bad.stderr());
    let _ = fs::remove_dir(&d);
}

#[test]
fn a_non_root_instance_cannot_gain_privileges() {
    let t1 = tenant("imp-tenant1");
    let s = Scratch::new("iso-nonroot");
    chmod(&s.dir, 0o777);
    let port = free_port();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid",
        &t1.uid.to_string(),
        "--regid",
        &t1.gid.to_string(),
        "--clear-groups",
        "--",
        vs::BIN,
        "--socket",
        &format!("127.0.0.1:{port}"),
        "--master",
        "--uid",
        "0",
        "--gid",
        "0",
        "--unshare",
        "net",
    ]);
    let inst = Instance::spawn(&s, &mut cmd, "instance.log");
    inst.wait_ready(1);
    // setpriv execs the instance: same pid.
    assert_eq!(ids(inst.pid(), "Uid"), vec![t1.uid; 4]);
    assert_eq!(status(inst.pid(), "NoNewPrivs"), "1");
    assert_eq!(
        ns(&inst.pid().to_string(), "net"),
        ns("self", "net"),
        "unshare needs root"
    );
    let log = inst.stderr();
    assert!(
        log.contains("uid ignored: this instance is not root"),
        "{log}"
    );
    assert!(log.contains("unshare ignored"), "{log}");
}

#[test]
fn chroot_and_pivot_root() {
    let s = Scratch::new("iso-chroot");
    let root = s.path("root");
    fs::create_dir_all(&root).unwrap();
    let port = free_port();
    let mut args = base_args(&format!("127.0.0.1:{port}"));
    args.extend(["--chroot".to_owned(), root.to_string_lossy().into_owned()]);
    let mut inst = Instance::start(&s, &args.iter().map(String::as_str).collect::<Vec<_>>());
    inst.wait_ready(1);
    assert_eq!(
        fs::read_link(format!("/proc/{}/root", inst.pid())).unwrap(),
        root
    );
    inst.signal("INT");
    inst.wait_exit();

    // pivot_root in a private mount namespace: the new root must be a mount point (a bind
    // mount of itself, made here on the host and undone at the end).
    let new = s.path("newroot");
    let old = new.join(".old_root");
    fs::create_dir_all(&old).unwrap();
    let n = new.to_string_lossy().into_owned();
    assert!(
        std::process::Command::new("mount")
            .args(["--bind", &n, &n])
            .status()
            .unwrap()
            .success()
    );
    let port = free_port();
    let mut args = base_args(&format!("127.0.0.1:{port}"));
    args.extend([
        "--unshare".to_owned(),
        "fs".to_owned(),
        "--pivot-root".to_owned(),
        format!("{} {}", n, old.display()),
    ]);
    let mut inst = Instance::start(&s, &args.iter().map(String::as_str).collect::<Vec<_>>());
    inst.wait_ready(1);
    let mounts = fs::read_to_string(format!("/proc/{}/mountinfo", inst.pid())).unwrap();
    inst.signal("INT");
    inst.wait_exit();
    let _ = std::process::Command::new("umount").arg(&n).status();
    // Its "/" is the bind mount of the new root (mountinfo: root-in-fs, mount point).
    let root_line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("a / mount");
    assert_eq!(root_line.split(' ').nth(3), Some(n.as_str()), "{root_line}");
    assert!(
        mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/.old_root")),
        "the old root is under /.old_root inside:\n{mounts}"
    );
    assert!(
        !fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(".old_root"),
        "nothing leaked into the host's mount table"
    );
}

/// The last field of /proc/<pid>/status `NSpid`: the pid as seen in its own namespace.
fn inner_pid(pid: i32) -> i32 {
    status(pid, "NSpid")
        .split_whitespace()
        .last()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The numeric entries of a /proc directory: the pids it shows.
fn proc_pids(dir: &str) -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort();
    v
}

#[test]
fn unshare_pid_reforks_a_master_that_is_pid_1_with_its_own_proc() {
    let s = Scratch::new("iso-pidns");
    let port = free_port();
    let inst = Instance::start(
        &s,
        &[
            "--socket",
            &format!("127.0.0.1:{port}"),
            "--master",
            "--processes",
            "2",
            "--unshare",
            "fs,pid",
            "--refork-post-jail",
            "--mount-as-root",
            "proc proc /proc",
        ],
    );
    inst.wait_ready(2);
    let keeper = inst.pid();
    // The process the test started stays behind; its only child is the master.
    let kids = children(keeper);
    assert_eq!(kids.len(), 1, "{kids:?}\n{}", inst.stderr());
    let master = kids[0];
    let host_ns = ns("self", "pid");
    assert_eq!(
        ns(&keeper.to_string(), "pid"),
        host_ns,
        "the keeper stays outside"
    );
    let inner_ns = ns(&master.to_string(), "pid");
    assert_ne!(inner_ns, host_ns, "{}", inst.stderr());
    assert_eq!(
        status(master, "NSpid"),
        format!("{master}\t1"),
        "the master is pid 1 of the new namespace"
    );
    assert!(
        inst.stderr().contains(&format!(
            "re-forked: the instance goes on in pid {master} (pid 1 in its own pid namespace)"
        )),
        "{}",
        inst.stderr()
    );
    let mut workers = children(master);
    workers.sort();
    assert_eq!(workers.len(), 2, "{workers:?}");
    let mut inside: Vec<i32> = workers.iter().map(|&w| inner_pid(w)).collect();
    inside.sort();
    for &w in &workers {
        assert_eq!(ns(&w.to_string(), "pid"), inner_ns, "worker {w}");
    }
    // The pids the instance logs are the ones it sees inside.
    let mut logged = [inst.worker_pids(1)[0], inst.worker_pids(2)[0]];
    logged.sort();
    assert_eq!(inside, logged);
    // Its own /proc (mounted by the master, inside): only the namespace's processes.
    let own_proc = format!("/proc/{master}/root/proc");
    let mut want = vec![1];
    want.extend(&inside);
    want.sort();
    assert_eq!(proc_pids(&own_proc), want);
    // Nothing leaked to the host: its /proc still shows the keeper.
    assert!(fs::metadata(format!("/proc/{keeper}")).is_ok());

    // Signals to the keeper reach the master: SIGHUP reloads it in place (same process,
    // still pid 1, the namespace not unshared again), and the workers come back inside.
    inst.signal("HUP");
    inst.wait_log("gracefully (RE)spawned uWSGI master process");
    inst.wait_count("spawned uWSGI worker 2 ", 2);
    assert_eq!(children(keeper), vec![master]);
    assert_eq!(status(master, "NSpid"), format!("{master}\t1"));
    assert_eq!(ns(&master.to_string(), "pid"), inner_ns);
    let workers = children(master);
    assert_eq!(workers.len(), 2, "{workers:?}");
    for &w in &workers {
        assert_eq!(ns(&w.to_string(), "pid"), inner_ns, "respawned worker {w}");
    }
    assert_eq!(
        inst.count("re-fork()ing..."),
        1,
        "no second re-fork on reload"
    );

    // SIGINT to the keeper stops the instance; nothing of it is left.
    let mut inst = inst;
    inst.signal("INT");
    inst.wait_exit();
    for p in std::iter::once(master).chain(workers) {
        vs::wait_until(&format!("pid {p} gone"), || !vs::alive(p));
    }
}

#[test]
fn an_emperor_governs_a_vassal_in_its_own_pid_namespace() {
    let s = Scratch::new("iso-pidns-emperor");
    let vassals = s.path("vassals");
    fs::create_dir_all(&vassals).unwrap();
    let sock = s.s("b.sock");
    let ini = vassals.join("b.ini");
    fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = {sock}\nprocesses = 2\nunshare = fs,pid\nmount-as-root = proc proc /proc\n"
        ),
    )
    .unwrap();
    let mut emp = Instance::start(&s, &["--emperor", &vassals.to_string_lossy()]);
    emp.wait_log("[emperor] vassal b.ini is ready to accept requests");
    let resp = vs::roundtrip(
        &vs::Target::Unix(sock.clone().into()),
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert!(resp.starts_with(b"HTTP/1.0 500"), "served from inside");
    emp.wait_log("[emperor] vassal b.ini is now loyal");
    let keeper = spawned_pid(&emp.stderr(), "b.ini").expect("spawned pid");
    let master = children(keeper);
    assert_eq!(master.len(), 1, "{}", emp.stderr());
    let master = master[0];
    let inner_ns = ns(&master.to_string(), "pid");
    assert_ne!(inner_ns, ns("self", "pid"));
    assert_eq!(status(master, "NSpid"), format!("{master}\t1"));
    assert!(
        emp.stderr().contains("refork-post-jail"),
        "unshare = pid alone implies the re-fork: {}",
        emp.stderr()
    );
    // A touch reloads it in place (the Emperor's byte 1 reaches the master).
    fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = {sock}\nprocesses = 2\nunshare = fs,pid\nmount-as-root = proc proc /proc\n#\n"
        ),
    )
    .unwrap();
    emp.wait_log("gracefully (RE)spawned uWSGI master process");
    assert_eq!(status(master, "NSpid"), format!("{master}\t1"));
    // Removing the config stops it: keeper, master and workers are gone.
    let members: Vec<i32> = std::iter::once(keeper)
        .chain(std::iter::once(master))
        .chain(children(master))
        .collect();
    fs::remove_file(&ini).unwrap();
    for p in members {
        vs::wait_until(&format!("pid {p} gone"), || !vs::alive(p));
    }
    emp.signal("INT");
    assert!(emp.wait_exit().success());
}

#[test]
fn the_reforked_instance_dies_with_its_keeper() {
    for flag in ["--refork-as-root", "--refork"] {
        reforked_instance_dies_with_its_keeper(flag);
    }
}

fn reforked_instance_dies_with_its_keeper(flag: &str) {
    let s = Scratch::new(&format!("iso{flag}"));
    let port = free_port();
    let mut inst = Instance::start(
        &s,
        &[
            "--socket",
            &format!("127.0.0.1:{port}"),
            "--master",
            "--processes",
            "2",
            flag,
        ],
    );
    inst.wait_ready(2);
    let keeper = inst.pid();
    let master = children(keeper);
    assert_eq!(master.len(), 1, "{}", inst.stderr());
    let master = master[0];
    assert_eq!(
        ns(&master.to_string(), "pid"),
        ns("self", "pid"),
        "no pid namespace was asked for"
    );
    assert!(
        inst.stderr().contains(&format!(
            "re-forked: the instance goes on in pid {master}\n"
        )),
        "{}",
        inst.stderr()
    );
    assert!(
        inst.stderr()
            .contains(&format!("spawned uWSGI master process (pid: {master})")),
        "{}",
        inst.stderr()
    );
    let members: Vec<i32> = std::iter::once(master).chain(children(master)).collect();
    assert_eq!(members.len(), 3, "{members:?}");
    // What the Emperor's curse does: SIGKILL to the pid it spawned.
    vs::signal(keeper, "KILL");
    inst.wait_exit();
    for p in members {
        vs::wait_until(&format!("pid {p} gone"), || !vs::alive(p));
    }
}
