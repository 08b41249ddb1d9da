//! One vassal's record: its lifecycle ([`Life`]) plus the operating-system resources the
//! Emperor holds for it (pid, protocol pipes, pushed config, on-demand socket) and its
//! flood accounting.

use crate::state::Life;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Unknown bytes tolerated per second before the pipe is muted for a second.
pub const FLOOD_LIMIT: u64 = 4096;
pub const FLOOD_MUTE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Flood {
    pub window_start: Option<Instant>,
    pub garbage: u64,
    pub muted_until: Option<Instant>,
    pub warned_flood: bool,
    pub warned_unknown: bool,
}

impl Flood {
    /// Counts unknown bytes; true when the vassal must be muted.
    pub fn count(&mut self, n: u64, now: Instant) -> bool {
        match self.window_start {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => self.garbage += n,
            _ => {
                self.window_start = Some(now);
                self.garbage = n;
            }
        }
        self.garbage > FLOOD_LIMIT
    }
}

pub struct Vassal {
    pub id: u64,
    /// Index of the monitor that owns it.
    pub monitor: usize,
    pub name: String,
    pub life: Life,
    pub pid: Option<i32>,
    /// The Emperor's end of the protocol socketpair.
    pub pipe: Option<OwnedFd>,
    /// The Emperor's end of the config socketpair (pushed configs only).
    pub config_pipe: Option<OwnedFd>,
    /// A pushed config (non-file monitors).
    pub config: Option<Vec<u8>>,
    /// Tyrant credentials (the config's owner).
    pub uid: u32,
    pub gid: u32,
    /// On-demand socket name and the bound socket.
    pub socket_name: Option<String>,
    pub on_demand: Option<OwnedFd>,
    pub flood: Flood,
    /// Tyrant mode read this file-based config itself and pushes it (emperor://name).
    pub tyrant_file: bool,
}

impl Vassal {
    pub fn new(id: u64, monitor: usize, name: &str, mtime: i64) -> Vassal {
        Vassal {
            id,
            monitor,
            name: name.to_owned(),
            life: Life::new(name, mtime),
            pid: None,
            pipe: None,
            config_pipe: None,
            config: None,
            uid: 0,
            gid: 0,
            socket_name: None,
            on_demand: None,
            flood: Flood::default(),
            tyrant_file: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_window() {
        let t0 = Instant::now();
        let mut f = Flood::default();
        assert!(!f.count(4000, t0));
        assert!(f.count(200, t0 + Duration::from_millis(500)));
        assert!(!f.count(10, t0 + Duration::from_millis(1500)));
    }
}
