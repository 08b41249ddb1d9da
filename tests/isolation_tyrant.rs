//! Tyrant mode through the real binary, as root, with hostile tenants: every vassal runs
//! as the owner of its config (read by the Emperor itself), never as root, with no
//! capabilities and NO_NEW_PRIVS; root-owned files, symlinks and hard links to root
//! files are refused with a log line; an owner change stops the vassal; the Emperor
//! refuses tyrant mode without CAP_SETUID/CAP_SETGID; an unprivileged Emperor with
//! `cap = setgid,setuid` works. The truth is read from /proc/<pid>/status.

#[path = "support/harness.rs"]
mod harness;
mod isolation_support;

use harness::*;
use isolation_support::*;
use std::fs;

fn tyrant_scratch(tag: &str) -> Scratch {
    let s = Scratch::new(tag);
    chmod(&s.dir, 0o755);
    chmod(&s.vassals(), 0o755);
    open_probe_log(&s.probe_log());
    s
}

fn probe_start(s: &Scratch, n: usize) -> Event {
    wait_until("a probe start", || starts(s).len() >= n);
    starts(s)[n - 1].clone()
}

#[test]
fn vassal_runs_as_the_owner_with_nothing_more() {
    let t1 = tenant("imp-tenant1");
    let shared = group_with("imp-shared", "imp-tenant1");
    let s = tyrant_scratch("tyr-owner");
    let cfg = s.vassal("a.ini", "");
    chown(&cfg, t1);
    let e = Emperor::start(&s, &Emperor::probe_args(&s, &["--emperor-tyrant"]));
    let st = probe_start(&s, 1);
    let pid = st.pid;
    assert_eq!(ids(pid, "Uid"), vec![t1.uid; 4], "{}", e.stderr());
    assert_eq!(ids(pid, "Gid"), vec![t1.gid; 4]);
    assert_eq!(
        status(pid, "Groups"),
        "",
        "no supplementary groups without initgroups"
    );
    assert_eq!(cap(pid, "CapEff"), 0);
    assert_eq!(cap(pid, "CapPrm"), 0);
    assert_eq!(cap(pid, "CapAmb"), 0);
    assert_eq!(status(pid, "NoNewPrivs"), "1");
    // The config came through the Emperor's descriptor, not a path the vassal reopens.
    assert!(
        st.get("argv").contains("emperor://a.ini"),
        "{:?}",
        st.get("argv")
    );
    e.wait_log("dropping privileges to");
    drop(e);

    // emperor-tyrant-initgroups: the owner's supplementary groups.
    let s = tyrant_scratch("tyr-initgroups");
    let cfg = s.vassal("a.ini", "");
    chown(&cfg, t1);
    let _e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-tyrant", "--emperor-tyrant-initgroups"]),
    );
    let pid = probe_start(&s, 1).pid;
    let groups: Vec<u32> = status(pid, "Groups")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    assert!(groups.contains(&shared), "groups {groups:?} lack {shared}");
    assert!(!groups.contains(&0));
}

#[test]
fn root_owned_symlinked_and_hard_linked_root_files_are_refused() {
    let t1 = tenant("imp-tenant1");
    let s = tyrant_scratch("tyr-refuse");
    // A root-owned config.
    s.vassal("root.ini", "");
    // A tenant's symlink to a root-only file outside the vassals dir.
    let secret = s.path("secret.ini");
    fs::write(&secret, vassal_text(&s.probe_log(), "")).unwrap();
    chmod(&secret, 0o600);
    let link = s.vassals().join("link.ini");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    lchown(&link, t1);
    // A hard link to a root-owned file (what fs.protected_hardlinks=0 would allow).
    let hard = s.vassals().join("hard.ini");
    fs::hard_link(&secret, &hard).unwrap();
    // And a legitimate tenant config beside them, which must keep working.
    let good = s.vassal("good.ini", "");
    chown(&good, t1);
    let e = Emperor::start(&s, &Emperor::probe_args(&s, &["--emperor-tyrant"]));
    let st = probe_start(&s, 1);
    assert!(st.get("argv").contains("good.ini"));
    for name in ["root.ini", "link.ini", "hard.ini"] {
        e.wait_log(&format!(
            "refusing to spawn {}",
            s.vassals().join(name).display()
        ));
    }
    assert!(e.stderr().contains("invalid permissions"), "{}", e.stderr());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        starts(&s).len(),
        1,
        "only the tenant's own config runs: {}",
        e.stderr()
    );
    for ev in starts(&s) {
        assert_ne!(ids(ev.pid, "Uid").first().copied(), Some(0));
    }
    drop(e);

    // tyrant-nofollow: the link's owner would be used, but it cannot read the target.
    let s2 = tyrant_scratch("tyr-nofollow");
    let secret = s2.path("secret.ini");
    fs::write(&secret, vassal_text(&s2.probe_log(), "")).unwrap();
    chmod(&secret, 0o600);
    let link = s2.vassals().join("link.ini");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    lchown(&link, t1);
    let e = Emperor::start(
        &s2,
        &Emperor::probe_args(
            &s2,
            &[
                "--emperor-tyrant",
                "--emperor-tyrant-nofollow",
                "--emperor-nofollow",
            ],
        ),
    );
    e.wait_log("cannot read");
    // A world-readable shared template is fine: it runs as the link owner.
    chmod(&secret, 0o644);
    let t2 = tenant("imp-tenant2");
    chown(&secret, t2);
    lchown(&link, t1);
    fs::write(s2.vassals().join("touch.ini"), "").ok();
    let _ = fs::remove_file(s2.vassals().join("touch.ini"));
    // Re-create the link so the monitor sees a change.
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    lchown(&link, t1);
    let pid = probe_start(&s2, 1).pid;
    assert_eq!(ids(pid, "Uid")[0], t1.uid, "nofollow: the link owner");
}

#[test]
fn owner_change_stops_the_vassal_and_restarts_it_as_the_new_owner() {
    let t1 = tenant("imp-tenant1");
    let t2 = tenant("imp-tenant2");
    let s = tyrant_scratch("tyr-chown");
    let cfg = s.vassal("a.ini", "");
    chown(&cfg, t1);
    let e = Emperor::start(&s, &Emperor::probe_args(&s, &["--emperor-tyrant"]));
    let first = probe_start(&s, 1);
    assert_eq!(ids(first.pid, "Uid")[0], t1.uid);
    chown(&cfg, t2);
    e.wait_log("permissions of file a.ini changed");
    let second = probe_start(&s, 2);
    assert_eq!(ids(second.pid, "Uid")[0], t2.uid);
    wait_until("the first vassal gone", || !alive(first.pid));
    // Changing it to root stops it and nothing replaces it.
    std::os::unix::fs::chown(&cfg, Some(0), Some(0)).unwrap();
    wait_until("the second vassal gone", || !alive(second.pid));
    e.wait_log("invalid permissions");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(starts(&s).len(), 2);
}

#[test]
fn tenants_cannot_signal_the_emperor_or_each_other() {
    let t1 = tenant("imp-tenant1");
    let t2 = tenant("imp-tenant2");
    let s = tyrant_scratch("tyr-signal");
    let a = s.vassal("a.ini", "");
    chown(&a, t1);
    let b = s.vassal("b.ini", "");
    chown(&b, t2);
    let e = Emperor::start(&s, &Emperor::probe_args(&s, &["--emperor-tyrant"]));
    wait_until("both probes", || starts(&s).len() >= 2);
    let other = starts(&s)
        .into_iter()
        .find(|ev| ids(ev.pid, "Uid")[0] == t2.uid)
        .expect("t2's vassal")
        .pid;
    let (ok, out) = as_tenant(t1, &["kill", "-TERM", &e.pid().to_string()]);
    assert!(!ok, "a tenant signalled the Emperor: {out}");
    let (ok, out) = as_tenant(t1, &["kill", "-KILL", &other.to_string()]);
    assert!(!ok, "a tenant signalled another tenant's vassal: {out}");
    assert!(alive(e.pid()) && alive(other));
}

#[test]
fn tyrant_mode_without_setuid_capabilities_refuses_to_start() {
    let s = tyrant_scratch("tyr-nocap");
    let t1 = tenant("imp-tenant1");
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            &t1.uid.to_string(),
            "--regid",
            &t1.gid.to_string(),
            "--clear-groups",
            "--",
            BIN,
            "--emperor",
            &s.vassals().to_string_lossy(),
            "--emperor-tyrant",
        ])
        .current_dir(&s.dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("emperor-tyrant needs CAP_SETUID and CAP_SETGID"),
        "{err}"
    );
}

#[test]
fn unprivileged_emperor_with_setuid_setgid_capabilities() {
    let boss = tenant("imp-emperor");
    let t1 = tenant("imp-tenant1");
    let s = tyrant_scratch("tyr-paranoid");
    let cfg = s.vassal("a.ini", "");
    chown(&cfg, t1);
    let args = Emperor::probe_args(
        &s,
        &[
            "--emperor-tyrant",
            "--uid",
            &boss.uid.to_string(),
            "--gid",
            &boss.gid.to_string(),
            "--cap",
            "setgid,setuid",
        ],
    );
    let e = Emperor::start(&s, &args);
    let pid = probe_start(&s, 1).pid;
    assert_eq!(ids(e.pid(), "Uid"), vec![boss.uid; 4], "{}", e.stderr());
    assert_eq!(
        cap(e.pid(), "CapEff"),
        (1 << 6) | (1 << 7),
        "the Emperor keeps only setgid,setuid"
    );
    assert_eq!(ids(pid, "Uid"), vec![t1.uid; 4]);
    assert_eq!(
        cap(pid, "CapPrm"),
        0,
        "nothing of the Emperor's capabilities reaches the vassal"
    );
    assert_eq!(cap(pid, "CapAmb"), 0);
}

/// A tenant's config for the real imperium vassal.
fn real_vassal(s: &Scratch, name: &str, owner: Tenant, body: &str) -> std::path::PathBuf {
    let p = s.vassals().join(name);
    fs::write(&p, format!("[uwsgi]\nmaster = true\nprocesses = 1\n{body}")).unwrap();
    chown(&p, owner);
    p
}

fn real_args(s: &Scratch) -> Vec<String> {
    [
        "--emperor",
        &s.vassals().to_string_lossy(),
        "--binary-path",
        BIN,
        "--emperor-freq",
        "1",
        "--emperor-tyrant",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}

#[test]
fn a_tenant_config_asking_for_root_gets_nothing() {
    let t1 = tenant("imp-tenant1");
    let s = tyrant_scratch("tyr-hostile");
    let vault = s.path("root-only");
    fs::create_dir_all(&vault).unwrap();
    chmod(&vault, 0o700);
    let marker = vault.join("pwned");
    let port = free_port();
    real_vassal(
        &s,
        "evil.ini",
        t1,
        &format!(
            "socket = 127.0.0.1:{port}\nuid = 0\ngid = 0\ncap = sys_admin,setuid,dac_override\nunshare = net\nexec-as-root = touch {m}\nimmediate-uid = 0\n",
            m = marker.display()
        ),
    );
    let e = Emperor::start(&s, &real_args(&s));
    let pid = {
        let mut p = None;
        wait_until("the vassal spawned", || {
            p = spawned_pid(&e.stderr(), "evil.ini");
            p.is_some()
        });
        p.unwrap()
    };
    wait_until("the vassal serving", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert_eq!(ids(pid, "Uid"), vec![t1.uid; 4], "{}", e.stderr());
    assert_eq!(ids(pid, "Gid"), vec![t1.gid; 4]);
    assert_eq!(cap(pid, "CapEff"), 0);
    assert_eq!(cap(pid, "CapPrm"), 0);
    assert_eq!(cap(pid, "CapAmb"), 0);
    assert_eq!(status(pid, "NoNewPrivs"), "1");
    assert_eq!(
        ns(&pid.to_string(), "net"),
        ns("self", "net"),
        "unshare needs the Emperor (emperor-use-clone)"
    );
    assert!(
        !marker.exists(),
        "a tenant hook wrote into a root-only directory"
    );
    let log = e.stderr();
    assert!(
        log.contains("uid ignored: this instance is not root"),
        "{log}"
    );
    assert!(log.contains("unshare ignored"), "{log}");
    assert!(log.contains("cap ignored"), "{log}");
}

#[test]
fn a_tenant_cannot_write_into_another_tenants_directory() {
    let t1 = tenant("imp-tenant1");
    let t2 = tenant("imp-tenant2");
    let s = tyrant_scratch("tyr-pidfile");
    let home2 = s.path("home-t2");
    fs::create_dir_all(&home2).unwrap();
    chown(&home2, t2);
    chmod(&home2, 0o700);
    let port = free_port();
    real_vassal(
        &s,
        "pid.ini",
        t1,
        &format!(
            "socket = 127.0.0.1:{port}\npidfile = {}/stolen.pid\n",
            home2.display()
        ),
    );
    real_vassal(
        &s,
        "sock.ini",
        t1,
        &format!("socket = {}/stolen.sock\n", home2.display()),
    );
    let e = Emperor::start(&s, &real_args(&s));
    e.wait_log("stolen.pid");
    e.wait_log("stolen.sock");
    wait_until("both refused and respawned at least once", || {
        e.count_log("spawned (pid:") >= 3
    });
    assert!(!home2.join("stolen.pid").exists());
    assert!(!home2.join("stolen.sock").exists());
    assert!(
        fs::read_dir(&home2).unwrap().next().is_none(),
        "nothing was written into the other tenant's directory"
    );
    assert!(alive(e.pid()));
}

#[test]
fn the_death_signal_survives_the_uid_change() {
    let t1 = tenant("imp-tenant1");
    let s = tyrant_scratch("tyr-deathsig");
    let cfg = s.vassal("a.ini", "detach");
    chown(&cfg, t1);
    let mut e = Emperor::start(&s, &Emperor::probe_args(&s, &["--emperor-tyrant"]));
    let pid = probe_start(&s, 1).pid;
    assert_eq!(ids(pid, "Uid")[0], t1.uid);
    // The probe no longer watches its Emperor pipe: only PR_SET_PDEATHSIG, armed after
    // the setuid (which clears it), can take it down with the Emperor.
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(e.pid(), 9);
    e.wait_exit();
    wait_until("the tyrant vassal killed with its Emperor", || !alive(pid));
}
