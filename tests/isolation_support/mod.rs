//! Helpers for the isolation tests: unprivileged test users (created idempotently with
//! useradd), reading the truth from the kernel (/proc/<pid>/status, ns links, cgroup
//! files), running a command as a tenant, and chown helpers.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A test tenant: an unprivileged system user created on first use.
#[derive(Debug, Clone, Copy)]
pub struct Tenant {
    pub uid: u32,
    pub gid: u32,
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The user `name` (created with its own group when missing).
pub fn tenant(name: &str) -> Tenant {
    if id_of(name, "-u").is_none() {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .expect("useradd");
        // Another test may have created it at the same moment.
        assert!(
            st.success() || id_of(name, "-u").is_some(),
            "useradd {name} failed"
        );
    }
    Tenant {
        uid: id_of(name, "-u").expect("uid"),
        gid: id_of(name, "-g").expect("gid"),
    }
}

/// A group `name` with `member` in it (idempotent).
pub fn group_with(name: &str, member: &str) -> u32 {
    let gid = || {
        Command::new("getent")
            .args(["group", name])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split(':')
                    .nth(2)
                    .and_then(|g| g.trim().parse().ok())
            })
    };
    if gid().is_none() {
        let _ = Command::new("groupadd").args(["--system", name]).status();
    }
    let _ = Command::new("usermod")
        .args(["-a", "-G", name, member])
        .status();
    gid().expect("group created")
}

pub fn chown(p: &Path, t: Tenant) {
    std::os::unix::fs::chown(p, Some(t.uid), Some(t.gid)).unwrap();
}

pub fn lchown(p: &Path, t: Tenant) {
    std::os::unix::fs::lchown(p, Some(t.uid), Some(t.gid)).unwrap();
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// One field of /proc/<pid>/status ("Uid", "CapEff", "NoNewPrivs"...).
pub fn status(pid: i32, field: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// The four uids (or gids) of a process.
pub fn ids(pid: i32, field: &str) -> Vec<u32> {
    status(pid, field)
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

pub fn cap(pid: i32, field: &str) -> u64 {
    u64::from_str_radix(&status(pid, field), 16).unwrap_or(u64::MAX)
}

/// The namespace link of a process (`net:[4026531840]`).
pub fn ns(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs a command as a tenant (setpriv); returns (success, stdout+stderr).
pub fn as_tenant(t: Tenant, argv: &[&str]) -> (bool, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            &t.uid.to_string(),
            "--regid",
            &t.gid.to_string(),
            "--clear-groups",
            "--",
        ])
        .args(argv)
        .output()
        .expect("setpriv");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The pid the Emperor logged for a vassal's latest spawn.
pub fn spawned_pid(log: &str, name: &str) -> Option<i32> {
    let needle = format!("vassal {name} spawned (pid: ");
    log.rmatch_indices(&needle)
        .next()
        .and_then(|(i, _)| log[i + needle.len()..].split(')').next()?.parse().ok())
}

/// Makes the probe log writable for tenants (the probe appends to it as its owner).
pub fn open_probe_log(p: &Path) {
    if !p.exists() {
        fs::write(p, "").unwrap();
    }
    chmod(p, 0o666);
    if let Some(d) = p.parent() {
        chmod(d, 0o755);
    }
}
