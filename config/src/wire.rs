//! The wire formats the Emperor and its vassals share: the one-byte Emperor protocol
//! ([`byte`]) and the pushed-config framing.
//!
//! The pushed-config framing an Emperor uses to hand a vassal its configuration over the
//! `UWSGI_EMPEROR_FD_CONFIG` descriptor: a 4-byte uwsgi header (modifier1, little-endian
//! u16 size, modifier2) followed by the config text. Both sides use these functions.
//!
//! uWSGI limits a pushed config to 65535 bytes. imperium keeps that framing for uWSGI
//! vassals and extends it: a header with size 0 and modifier2 = 1 is followed by a
//! little-endian u32 size and then the text, so an imperium vassal takes configs of any size.

use std::io::{self, Read};

/// The Emperor protocol: single bytes on the `UWSGI_EMPEROR_FD` socketpair, both ways.
/// Several values mean one thing in one direction and another in the other.
pub mod byte {
    /// Emperor to vassal: stop now.
    pub const STOP: u8 = 0;
    /// Emperor to vassal: graceful reload.
    pub const RELOAD: u8 = 1;
    /// Emperor to vassal: graceful stop (`emperor-graceful-shutdown`).
    pub const GRACEFUL_STOP: u8 = 2;
    /// Vassal to Emperor: spawned / ready.
    pub const READY: u8 = 1;
    /// Vassal to Emperor: send my pushed config again (before a reload).
    pub const CONFIG_AGAIN: u8 = 2;
    /// Vassal to Emperor: a worker accepts requests.
    pub const ACCEPTING: u8 = 5;
    /// Vassal to Emperor: a request was served (loyalty).
    pub const LOYAL: u8 = 17;
    /// Vassal to Emperor: voluntary shutdown (idle), or back to on-demand waiting.
    pub const VOLUNTARY_SHUTDOWN: u8 = 22;
    /// Vassal to Emperor: heartbeat.
    pub const HEARTBEAT: u8 = 26;
    /// Vassal to Emperor: Broodlord asks for reinforcements.
    pub const BROODLORD: u8 = 30;
    /// Exit code that exiles a vassal: it is not respawned until its config changes.
    pub const EXILE_CODE: i32 = 26;
}

/// modifier2 of the extended (32-bit size) framing.
pub const EXTENDED_MODIFIER2: u8 = 1;

/// Frames a config for a vassal. Configs up to 65535 bytes use uWSGI's framing exactly.
pub fn encode_pushed_config(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    match u16::try_from(body.len()) {
        Ok(n) if n > 0 => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
            out.push(0);
        }
        _ => {
            out.extend_from_slice(&[0, 0, 0, EXTENDED_MODIFIER2]);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(body);
    out
}

/// Reads one framed config (either framing).
pub fn read_pushed_config(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut h = [0u8; 4];
    r.read_exact(&mut h)
        .map_err(|e| io::Error::new(e.kind(), format!("error reading the config header: {e}")))?;
    let size = u16::from_le_bytes([h[1], h[2]]) as usize;
    let size = if size == 0 && h[3] == EXTENDED_MODIFIER2 {
        let mut s = [0u8; 4];
        r.read_exact(&mut s)?;
        u32::from_le_bytes(s) as usize
    } else {
        size
    };
    if size == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid (empty) config",
        ));
    }
    let mut body = vec![0u8; size];
    r.read_exact(&mut body)
        .map_err(|e| io::Error::new(e.kind(), format!("error reading the config: {e}")))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_configs_use_uwsgi_framing() {
        let f = encode_pushed_config(b"[uwsgi]\n");
        assert_eq!(&f[..4], &[0, 8, 0, 0]);
        assert_eq!(read_pushed_config(&mut &f[..]).unwrap(), b"[uwsgi]\n");
    }

    #[test]
    fn large_configs_round_trip() {
        let body = vec![b'x'; 100_000];
        let f = encode_pushed_config(&body);
        assert_eq!(read_pushed_config(&mut &f[..]).unwrap(), body);
    }

    #[test]
    fn empty_config_is_an_error() {
        assert!(read_pushed_config(&mut &[0u8, 0, 0, 0][..]).is_err());
    }
}
