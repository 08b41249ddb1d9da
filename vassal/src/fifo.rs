//! The master FIFO (`master-fifo`): a named pipe whose bytes are commands to the master,
//! uWSGI's letters: `r` graceful reload, `R` brutal reload, `q` graceful shutdown,
//! `Q` shutdown, `w` graceful reload of the workers only, `W` brutal one, `c` chain
//! reload, `s` stats to the log, `p` pause/resume, `P` rewrite the pidfiles, `B` ask the Emperor for
//! reinforcements, `0`-`9` switch to another configured FIFO (slot), `l` reopen and `L`
//! rotate the log file, `f` fork a new master, `C` go cheap, `S` toggle subscriptions,
//! `E` ask the Emperor to rescan, `+`/`-` cheaper-mode deltas. Unknown bytes (the
//! newline of `echo`) are ignored. The FIFO is created mode 0600 and re-created each
//! time its writer goes away, as uWSGI does.

use crate::error::VassalError;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A command read from the FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoCommand {
    GracefulReload,
    BrutalReload,
    GracefulShutdown,
    Shutdown,
    ReloadWorkers,
    BrutalReloadWorkers,
    ChainReload,
    Stats,
    UpdatePidfiles,
    Sos,
    Pause,
    Slot(usize),
    ReopenLog,
    RotateLog,
    Refork,
    Cheap,
    Subscriptions,
    EmperorRescan,
    CheaperDelta(i8),
}

impl FifoCommand {
    /// The command of one byte (`None`: ignored).
    pub fn parse(b: u8) -> Option<FifoCommand> {
        use FifoCommand::*;
        Some(match b {
            b'r' => GracefulReload,
            b'R' => BrutalReload,
            b'q' => GracefulShutdown,
            b'Q' => Shutdown,
            b'w' => ReloadWorkers,
            b'W' => BrutalReloadWorkers,
            b'c' => ChainReload,
            b's' => Stats,
            b'P' => UpdatePidfiles,
            b'B' => Sos,
            b'p' => Pause,
            b'0'..=b'9' => Slot(usize::from(b - b'0')),
            b'l' => ReopenLog,
            b'L' => RotateLog,
            b'f' => Refork,
            b'C' => Cheap,
            b'S' => Subscriptions,
            b'E' => EmperorRescan,
            b'+' => CheaperDelta(1),
            b'-' => CheaperDelta(-1),
            _ => return None,
        })
    }
}

/// The open FIFO.
pub struct MasterFifo {
    pub slots: Vec<PathBuf>,
    pub slot: usize,
    pub fd: OwnedFd,
}

fn create(path: &Path) -> Result<OwnedFd, VassalError> {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(VassalError::option(
            "master-fifo",
            &path.to_string_lossy(),
            &format!("unlink(): {e}"),
        ));
    }
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| {
        VassalError::option(
            "master-fifo",
            &path.to_string_lossy(),
            &format!("mkfifo(): {e}"),
        )
    })?;
    open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        VassalError::option(
            "master-fifo",
            &path.to_string_lossy(),
            &format!("open(): {e}"),
        )
    })
}

impl MasterFifo {
    /// Creates slot 0.
    pub fn new(slots: Vec<PathBuf>) -> Result<MasterFifo, VassalError> {
        let fd = create(&slots[0])?;
        Ok(MasterFifo { slots, slot: 0, fd })
    }

    /// Reads what is there: the commands, in order. An end of file (the writer closed)
    /// re-creates the FIFO.
    pub fn read(&mut self) -> Vec<FifoCommand> {
        let mut buf = [0u8; 256];
        let mut out = Vec::new();
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(0) => {
                    if let Ok(fd) = create(&self.slots[self.slot]) {
                        self.fd = fd;
                    }
                    return out;
                }
                Ok(n) => out.extend(buf[..n].iter().filter_map(|&b| FifoCommand::parse(b))),
                Err(nix::Error::EINTR) => continue,
                Err(_) => return out,
            }
        }
    }

    /// Switches to slot `n` (ignored when there is no such slot).
    pub fn switch(&mut self, n: usize) -> Result<(), VassalError> {
        if n >= self.slots.len() || n == self.slot {
            return Ok(());
        }
        self.fd = create(&self.slots[n])?;
        self.slot = n;
        Ok(())
    }

    /// The path of the active slot.
    pub fn path(&self) -> &Path {
        &self.slots[self.slot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters() {
        assert_eq!(FifoCommand::parse(b'r'), Some(FifoCommand::GracefulReload));
        assert_eq!(FifoCommand::parse(b'3'), Some(FifoCommand::Slot(3)));
        assert_eq!(FifoCommand::parse(b'\n'), None);
        assert_eq!(FifoCommand::parse(b'p'), Some(FifoCommand::Pause));
        assert_eq!(FifoCommand::parse(b'L'), Some(FifoCommand::RotateLog));
        assert_eq!(
            FifoCommand::parse(b'-'),
            Some(FifoCommand::CheaperDelta(-1))
        );
    }
}
