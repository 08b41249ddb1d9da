//! Killing what must die: a vassal and its process group, and at the end of Ragnarok every
//! remaining descendant (orphans are reparented to the Emperor, a child subreaper, so
//! they are all direct children by then).

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::time::Duration;

/// SIGKILL a vassal's process group (its workers and their children).
pub fn kill_group(pgid: i32) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// SIGKILL a vassal and its process group.
pub fn kill_tree(pid: i32) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        kill_group(pid);
    }
}

/// Direct children of this process, from /proc.
pub fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut it = after.split_whitespace();
        let _state = it.next();
        if it.next().and_then(|p| p.parse::<i32>().ok()) == Some(me) {
            out.push(pid);
        }
    }
    out
}

fn reap_all() {
    while let Ok(ws) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if ws == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Kills and reaps every remaining child except `spare`, until none is left (bounded).
pub fn exterminate(spare: &[i32]) {
    for _ in 0..200 {
        reap_all();
        let kids: Vec<i32> = children()
            .into_iter()
            .filter(|p| !spare.contains(p))
            .collect();
        if kids.is_empty() {
            return;
        }
        for k in kids {
            kill_tree(k);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
