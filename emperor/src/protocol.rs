//! The Emperor protocol: single bytes on the `UWSGI_EMPEROR_FD` socketpair, both ways.
//! (The pushed-config framing lives in `imperium_config::wire`, shared with the vassal.)

/// Emperor to vassal: stop now.
pub const STOP: u8 = 0;
/// Emperor to vassal: graceful reload. Vassal to Emperor: spawned / ready.
pub const RELOAD: u8 = 1;
/// Emperor to vassal: graceful stop (`emperor-graceful-shutdown`). Vassal to Emperor:
/// send my config again.
pub const GRACEFUL_STOP: u8 = 2;
/// Alias of [`RELOAD`] in the vassal-to-Emperor direction.
pub const READY: u8 = 1;
/// Alias of [`GRACEFUL_STOP`] in the vassal-to-Emperor direction.
pub const CONFIG_AGAIN: u8 = 2;
/// Vassal to Emperor: a worker accepts requests.
pub const ACCEPTING: u8 = 5;
/// Vassal to Emperor: a request was served (loyalty).
pub const LOYAL: u8 = 17;
/// Vassal to Emperor: voluntary shutdown (idle), or back to on-demand.
pub const VOLUNTARY_SHUTDOWN: u8 = 22;
/// Vassal to Emperor: heartbeat.
pub const HEARTBEAT: u8 = 26;
/// Vassal to Emperor: Broodlord asks for reinforcements.
pub const BROODLORD: u8 = 30;
/// Exit code that exiles a vassal: it is not respawned until its config changes.
pub const EXILE_CODE: i32 = 26;

/// A byte from a vassal, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromVassal {
    Ready,
    ConfigAgain,
    Accepting,
    Loyal,
    VoluntaryShutdown,
    Heartbeat,
    Broodlord,
    Unknown(u8),
}

impl FromVassal {
    pub fn decode(b: u8) -> FromVassal {
        match b {
            READY => FromVassal::Ready,
            CONFIG_AGAIN => FromVassal::ConfigAgain,
            ACCEPTING => FromVassal::Accepting,
            LOYAL => FromVassal::Loyal,
            VOLUNTARY_SHUTDOWN => FromVassal::VoluntaryShutdown,
            HEARTBEAT => FromVassal::Heartbeat,
            BROODLORD => FromVassal::Broodlord,
            other => FromVassal::Unknown(other),
        }
    }
}
