//! systemd integration without libsystemd: the `sd_notify` datagram protocol
//! ([`notify::Notifier`]: READY, STATUS, RELOADING with MONOTONIC_USEC, STOPPING,
//! WATCHDOG) and socket activation ([`activation::listen_fds`]: LISTEN_PID, LISTEN_FDS,
//! LISTEN_FDNAMES).

pub mod activation;
pub mod notify;

pub use activation::{ListenFd, listen_fds};
pub use notify::{Notifier, watchdog_interval};
