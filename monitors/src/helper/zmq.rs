//! `zmq://ENDPOINT`: the ZeroMQ monitor (helper side). A PULL socket is bound to the
//! endpoint (`tcp://*:5250`, `tcp://127.0.0.1:5250`, `ipc:///run/emperor.sock`) and every
//! multipart message is `touch|destroy, name [, config [, uid [, gid [, socket]]]]`, as
//! uWSGI's emperor_zeromq plugin reads them (uid and gid as decimal text). All six forms
//! work (uWSGI fails on the 5- and 6-part ones). A `touch` is an add or a reload (every
//! touch reloads, even two in the same second); without a config part (or with an empty
//! one) the name is a config file in the Emperor's directory. A malformed message is
//! logged and dropped.

use super::{Sink, log, now_secs};
use crate::feed::{Entry, Frame};
use zeromq::{PullSocket, Socket, SocketRecv};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZmqSpec {
    /// The endpoint as the zeromq crate takes it (`*` becomes `0.0.0.0`).
    pub endpoint: String,
}

impl ZmqSpec {
    pub fn parse(arg: &str) -> Result<ZmqSpec, String> {
        let ep = arg.strip_prefix("zmq://").ok_or("expected zmq://")?;
        let ep = match ep.strip_prefix("tcp://*:") {
            Some(port) => format!("tcp://0.0.0.0:{port}"),
            None => ep.to_owned(),
        };
        ep.parse::<zeromq::Endpoint>()
            .map_err(|e| format!("endpoint {ep:?}: {e}"))?;
        Ok(ZmqSpec { endpoint: ep })
    }
}

fn number(part: &[u8], what: &str) -> Result<Option<u32>, String> {
    if part.is_empty() {
        return Ok(None);
    }
    std::str::from_utf8(part)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map(Some)
        .ok_or_else(|| format!("{what} is not a number"))
}

/// One multipart message as a frame.
pub fn message_frame(parts: &[&[u8]]) -> Result<Frame, String> {
    if parts.len() < 2 || parts.len() > 6 {
        return Err(format!(
            "a message has 2 to 6 parts, this one has {}",
            parts.len()
        ));
    }
    let name = parts[1].to_vec();
    match parts[0] {
        b"destroy" => Ok(Frame::Destroy(name)),
        b"touch" => {
            let config = parts.get(2).filter(|c| !c.is_empty()).map(|c| c.to_vec());
            let uid = match parts.get(3) {
                Some(p) => number(p, "uid")?,
                None => None,
            };
            let gid = match parts.get(4) {
                Some(p) => number(p, "gid")?,
                None => None,
            };
            let socket = parts.get(5).filter(|s| !s.is_empty()).map(|s| s.to_vec());
            Ok(Frame::Touch(Entry {
                name,
                config,
                ts: now_secs(),
                uid,
                gid,
                socket,
            }))
        }
        other => Err(format!(
            "unknown command {:?}",
            String::from_utf8_lossy(other)
        )),
    }
}

pub async fn run(spec: ZmqSpec, mut sink: Sink) -> Result<(), String> {
    let mut sock = PullSocket::new();
    sock.bind(&spec.endpoint)
        .await
        .map_err(|e| format!("cannot bind {}: {e}", spec.endpoint))?;
    log("zmq", &format!("PULL socket bound to {}", spec.endpoint));
    loop {
        match sock.recv().await {
            Ok(msg) => {
                let parts: Vec<&[u8]> = msg.iter().map(|b| b.as_ref()).collect();
                match message_frame(&parts) {
                    Ok(f) => sink.send(&f),
                    Err(e) => log("zmq", &format!("invalid message: {e}: dropped")),
                }
            }
            Err(e) => log("zmq", &format!("recv(): {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec() {
        assert_eq!(
            ZmqSpec::parse("zmq://tcp://*:5250").unwrap().endpoint,
            "tcp://0.0.0.0:5250"
        );
        assert!(ZmqSpec::parse("zmq://ipc:///tmp/x.sock").is_ok());
        assert!(ZmqSpec::parse("zmq://nonsense").is_err());
    }

    #[test]
    fn messages() {
        assert_eq!(
            message_frame(&[b"destroy", b"a.ini"]).unwrap(),
            Frame::Destroy(b"a.ini".to_vec())
        );
        let Frame::Touch(e) =
            message_frame(&[b"touch", b"a.ini", b"cfg", b"1000", b"1001", b"/s.sock"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (e.uid, e.gid, e.socket.as_deref()),
            (Some(1000), Some(1001), Some(&b"/s.sock"[..]))
        );
        let Frame::Touch(e) =
            message_frame(&[b"touch", b"a.ini", b"cfg", b"1000", b"1001"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((e.uid, e.gid), (Some(1000), Some(1001)));
        let Frame::Touch(e) = message_frame(&[b"touch", b"a.ini"]).unwrap() else {
            panic!()
        };
        assert_eq!(e.config, None);
        assert!(message_frame(&[b"touch"]).is_err());
        assert!(message_frame(&[b"explode", b"a.ini"]).is_err());
        assert!(message_frame(&[b"touch", b"a.ini", b"c", b"x"]).is_err());
    }
}
