//! The systemd protocol: sd_notify (READY, STATUS, RELOADING, STOPPING, WATCHDOG) and
//! socket activation (LISTEN_FDS).
//!
//! Not built yet: arrives with the Emperor issue.
