//! Facts about the running process that fill the static magic variables.

use crate::magic::ProcessFacts;
use std::time::{SystemTime, UNIX_EPOCH};

/// Collects cwd, hostname, CPU count, user and group, and the start time.
pub fn process_facts(binary: &str) -> ProcessFacts {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    #[cfg(target_os = "linux")]
    let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .map(|n| n as usize)
        .unwrap_or(1);
    // nix names no online-CPU sysconf there (FreeBSD): std's count.
    #[cfg(not(target_os = "linux"))]
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    ProcessFacts {
        cwd: std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        version: crate::VERSION.to_string(),
        cpus,
        uid: uid.as_raw(),
        user: nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name),
        gid: gid.as_raw(),
        group: nix::unistd::Group::from_gid(gid)
            .ok()
            .flatten()
            .map(|g| g.name),
        binary: binary.to_string(),
        start_secs: now.as_secs(),
        start_micros: now.as_micros() as u64,
    }
}
