//! The Emperor: the vassal registry and its state machine, spawning, throttling and
//! backoff, heartbeats and curses, the stats and command sockets, broodlord and Ragnarok.
//!
//! Not built yet: the Emperor is the subject of its own issue. The binary reports
//! `--emperor` as recognised-but-unimplemented until this crate lands.

/// Runs the Emperor with its resolved configuration; returns the process exit code.
pub fn run(_config: &imperium_config::Config) -> i32 {
    eprintln!("imperium: the Emperor is not implemented yet");
    1
}
