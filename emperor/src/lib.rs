//! The Emperor: governs vassal processes described by config files (or, later, database
//! rows and messages), compatible with uWSGI's Emperor both ways.
//!
//! Shape: one single-threaded event loop over epoll ([`reactor`]) waits on a signalfd
//! (SIGCHLD for deaths, the Emperor signals), the monitors' inotify descriptors, every
//! vassal's protocol pipe, on-demand sockets and the stats/command sockets, with a timer
//! heap ([`timers`]) for backoff, curses, heartbeats, rescans and the systemd watchdog.
//! Nothing in the loop blocks: a throttled vassal is a timer, not a sleep. Each vassal's
//! lifecycle is one pure state machine ([`state`]); all throttle arithmetic is in
//! [`throttle`], in milliseconds; all `unsafe` is in [`spawn`].
//!
//! Why no async runtime (tokio): the Emperor forks for every vassal, and a process that
//! forks must stay single-threaded; an epoll loop on `nix` is small, has no hidden
//! threads, and keeps the Emperor's memory and idle CPU near zero.

#[macro_use]
pub mod log;

pub mod command;
pub mod conn;
pub mod emperor;
pub mod error;
pub mod hooks;
pub mod isolation;
pub mod lifecycle;
pub mod net;
pub mod ondemand;
pub mod protocol;
pub mod reactor;
pub mod reaper;
pub mod settings;
pub mod spawn;
pub mod state;
pub mod stats;
pub mod throttle;
pub mod timers;
pub mod vassal;

pub use error::EmperorError;

/// For the integration tests, which can only use this crate's dependencies.
#[doc(hidden)]
pub use serde_json;

/// For the integration tests (signals).
#[doc(hidden)]
pub use nix;
pub use settings::Settings;

/// Runs the Emperor with its resolved configuration; returns the process exit code.
pub fn run(config: &imperium_config::Config) -> i32 {
    let settings = match Settings::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            log!("imperium: Emperor configuration error: {e}");
            return 1;
        }
    };
    match emperor::Emperor::boot(settings) {
        Ok(mut e) => e.run(),
        Err(e) => {
            log!("imperium: the Emperor cannot start: {e}");
            1
        }
    }
}
