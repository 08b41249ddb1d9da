//! The vassal's side of the Emperor protocol: one byte at a time on the
//! `UWSGI_EMPEROR_FD` socketpair. The instance tells the Emperor it is ready (1), that a
//! worker accepts (5), that it served its first request (17, loyalty), that it is alive
//! (26, every `heartbeat` seconds), and asks for its pushed config again before a reload
//! (2). It obeys 0 (stop now), 1 (graceful reload) and 2 (graceful stop); an end of file
//! means the Emperor is gone, and the instance goes with it.

use crate::vlog;
use std::os::fd::RawFd;

use imperium_config::wire::byte;
pub use imperium_config::wire::byte::{
    ACCEPTING, BROODLORD, CONFIG_AGAIN, HEARTBEAT, LOYAL, READY, VOLUNTARY_SHUTDOWN,
};

/// What the Emperor asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// 0: shut down now.
    Stop,
    /// 1: graceful reload.
    Reload,
    /// 2: graceful shutdown.
    GracefulStop,
    /// Any other byte (ignored).
    Unknown(u8),
    /// End of file or error: the Emperor is gone.
    Lost,
}

/// The descriptors an Emperor gave this instance.
#[derive(Debug, Clone, Copy)]
pub struct Emperor {
    pub fd: RawFd,
    pub config_fd: Option<RawFd>,
}

impl Emperor {
    /// Reads `UWSGI_EMPEROR_FD` (and `UWSGI_EMPEROR_FD_CONFIG`) from the environment.
    pub fn from_env() -> Option<Emperor> {
        let fd: RawFd = std::env::var("UWSGI_EMPEROR_FD")
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let config_fd = std::env::var("UWSGI_EMPEROR_FD_CONFIG")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        Some(Emperor { fd, config_fd })
    }

    /// Sends one byte.
    pub fn send(&self, byte: u8) -> nix::Result<()> {
        match nix::unistd::write(crate::sys::fd::borrow(self.fd), &[byte]) {
            Ok(1) => Ok(()),
            Ok(_) => Err(nix::Error::EIO),
            Err(e) => Err(e),
        }
    }

    /// Sends one byte, logging a failure.
    pub fn notify(&self, byte: u8, what: &str) -> bool {
        match self.send(byte) {
            Ok(()) => true,
            Err(e) => {
                vlog!("{what}: write() to the Emperor: {e}");
                false
            }
        }
    }

    /// Reads the Emperor's next command (the descriptor was reported readable).
    pub fn read_command(&self) -> Command {
        let mut b = [0u8; 1];
        loop {
            return match nix::unistd::read(crate::sys::fd::borrow(self.fd), &mut b) {
                Ok(1) => match b[0] {
                    byte::STOP => Command::Stop,
                    byte::RELOAD => Command::Reload,
                    byte::GRACEFUL_STOP => Command::GracefulStop,
                    x => Command::Unknown(x),
                },
                Err(nix::Error::EINTR) => continue,
                _ => Command::Lost,
            };
        }
    }

    /// Closes the control descriptor (after a stop command).
    pub fn close(&self) {
        let _ = nix::unistd::close(self.fd);
    }
}
