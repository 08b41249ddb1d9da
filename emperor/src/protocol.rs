//! The Emperor protocol: single bytes on the `UWSGI_EMPEROR_FD` socketpair, both ways.
//! The byte values and the pushed-config framing live in `imperium_config::wire`, shared
//! with the vassal; this module decodes what a vassal sends.

pub use imperium_config::wire::byte::*;

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
