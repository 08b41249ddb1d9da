//! systemd integration without libsystemd: the `sd_notify` datagram protocol
//! ([`notify::Notifier`]: READY, STATUS, RELOADING with MONOTONIC_USEC, STOPPING,
//! WATCHDOG) and socket activation ([`activation::listen_fds`]: LISTEN_PID, LISTEN_FDS,
//! LISTEN_FDNAMES).

pub mod activation;
pub mod notify;

pub use activation::{listen_fds, ListenFd};
pub use notify::{watchdog_interval, Notifier};
