//! `amqp://[user:pass@]host:port[/vhost]` and `amqps://...` (TLS): the AMQP monitor (helper
//! side), with real credentials and vhosts (uWSGI hard-codes guest/guest and `/`).
//!
//! It declares the fanout exchange `uwsgi.emperor` (not durable, as uWSGI and the usual
//! publishers declare it), binds an exclusive server-named queue and consumes:
//! - a message whose routing key is a vassal name carries its config (pushed); an empty
//!   body stops it;
//! - a message without routing key carries a config file path (touch if it is a regular
//!   file, stop if it is missing) or an `http://` URL (touch when it answers 2xx, and the
//!   vassal fetches it; stop when it answers anything else or nothing, as uWSGI's exile).
//!
//! Every message is a touch with ts = now, so re-publishing reloads. The headers `uid` and
//! `gid` give the owner (tyrant mode) and `socket` an on-demand socket. The connection is
//! re-established with backoff; while it is down nothing changes.

use super::{Backoff, Once, Sink, log, now_secs};
use crate::feed::{Entry, Frame};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

pub const EXCHANGE: &str = "uwsgi.emperor";

#[derive(Debug, Clone)]
pub struct AmqpSpec {
    pub uri: String,
    /// The URI without its password, for the log.
    pub shown: String,
}

impl AmqpSpec {
    pub fn parse(arg: &str) -> Result<AmqpSpec, String> {
        if !(arg.starts_with("amqp://") || arg.starts_with("amqps://")) {
            return Err("expected amqp:// or amqps://".into());
        }
        let parsed: lapin::uri::AMQPUri = arg.parse().map_err(|e: String| e)?;
        let shown = format!(
            "{}://{}@{}:{}/{}",
            if arg.starts_with("amqps") {
                "amqps"
            } else {
                "amqp"
            },
            parsed.authority.userinfo.username,
            parsed.authority.host,
            parsed.authority.port,
            parsed.vhost
        );
        Ok(AmqpSpec {
            uri: arg.to_owned(),
            shown,
        })
    }
}

/// Whether an `http://` config URL answers 2xx (a 10 s limit; anything else is "no").
async fn url_alive(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are checked")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: imperium-emperor\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 1024];
        let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        match line.split_whitespace().nth(1) {
            Some(code) if code.starts_with('2') => Ok(()),
            _ => Err(format!("answered {line:?}")),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), fetch)
        .await
        .map_err(|_| "no answer in 10 s".to_owned())?
}

/// Owner and on-demand socket from the message headers `uid`, `gid` (integers or decimal
/// strings) and `socket` (a string), for tyrant mode and on-demand vassals.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extras {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub socket: Option<Vec<u8>>,
}

fn header_u32(v: &AMQPValue) -> Option<u32> {
    match v {
        AMQPValue::ShortShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

/// Reads the extras from the headers; Err names a header that is not usable.
pub fn extras(headers: Option<&FieldTable>) -> Result<Extras, String> {
    let mut x = Extras::default();
    let Some(h) = headers else { return Ok(x) };
    for (k, v) in h.inner() {
        match k.as_str() {
            "uid" => x.uid = Some(header_u32(v).ok_or("the uid header is not a number")?),
            "gid" => x.gid = Some(header_u32(v).ok_or("the gid header is not a number")?),
            "socket" => match v {
                AMQPValue::LongString(s) => x.socket = Some(s.as_bytes().to_vec()),
                AMQPValue::ShortString(s) => x.socket = Some(s.as_str().as_bytes().to_vec()),
                _ => return Err("the socket header is not a string".into()),
            },
            _ => {}
        }
    }
    Ok(x)
}

/// What one message means, once an `http://` URL has been checked.
async fn message(routing_key: &str, body: &[u8], x: Extras) -> Frame {
    let mut f = message_frame(routing_key, body);
    if let Frame::Touch(e) = &mut f {
        e.uid = x.uid;
        e.gid = x.gid;
        e.socket = x.socket;
    }
    if let Frame::Touch(Entry {
        name, config: None, ..
    }) = &f
        && name.starts_with(b"http://")
    {
        let url = String::from_utf8_lossy(name).into_owned();
        if let Err(e) = url_alive(&url).await {
            log("amqp", &format!("{url} {e}: its vassal is removed"));
            return Frame::Destroy(name.clone());
        }
    }
    f
}

/// What one message means (an `http://` URL is taken as alive here; see [`message`]).
pub fn message_frame(routing_key: &str, body: &[u8]) -> Frame {
    let now = now_secs();
    if !routing_key.is_empty() {
        if body.is_empty() {
            return Frame::Destroy(routing_key.as_bytes().to_vec());
        }
        return Frame::Touch(Entry {
            name: routing_key.as_bytes().to_vec(),
            config: Some(body.to_vec()),
            ts: now,
            ..Entry::default()
        });
    }
    let path = String::from_utf8_lossy(body).trim().to_owned();
    let name = path.as_bytes().to_vec();
    if path.starts_with("http://") || path.starts_with("https://") {
        return Frame::Touch(Entry {
            name,
            config: None,
            ts: now,
            ..Entry::default()
        });
    }
    match std::fs::metadata(&path) {
        Ok(md) if md.is_file() => Frame::Touch(Entry {
            name,
            config: None,
            ts: now,
            ..Entry::default()
        }),
        _ => Frame::Destroy(name),
    }
}

/// One session: connect, declare, bind, consume until the connection breaks.
async fn session(
    spec: &AmqpSpec,
    sink: &mut Sink,
    backoff: &mut Backoff,
    errs: &mut Once,
) -> Result<(), String> {
    let conn = Connection::connect(&spec.uri, ConnectionProperties::default())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| format!("exchange.declare {EXCHANGE}: {e}"))?;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("queue.declare: {e}"))?;
    let qname = q.name().clone();
    ch.queue_bind(
        qname.clone(),
        EXCHANGE.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| format!("queue.bind: {e}"))?;
    let mut consumer = ch
        .basic_consume(
            qname,
            "imperium-emperor".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("basic.consume: {e}"))?;
    if errs.clear() {
        log("amqp", &format!("connected to {} again", spec.shown));
    } else {
        log(
            "amqp",
            &format!("consuming from the {EXCHANGE} exchange on {}", spec.shown),
        );
    }
    backoff.reset();
    while let Some(d) = consumer.next().await {
        let d = d.map_err(|e| format!("consumer: {e}"))?;
        match extras(d.properties.headers().as_ref()) {
            Ok(x) => {
                let frame = message(d.routing_key.as_str(), &d.data, x).await;
                sink.send(&frame);
            }
            Err(e) => log(
                "amqp",
                &format!("message for {:?}: {e}: dropped", d.routing_key.as_str()),
            ),
        }
    }
    Err("the consumer was cancelled".into())
}

pub async fn run(spec: AmqpSpec, mut sink: Sink) -> Result<(), String> {
    let mut backoff = Backoff::default();
    let mut errs = Once::default();
    loop {
        if let Err(e) = session(&spec, &mut sink, &mut backoff, &mut errs).await {
            errs.log(
                "amqp",
                format!(
                    "{}: {e}; reconnecting (running vassals are not touched)",
                    spec.shown
                ),
            );
        }
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec() {
        let s = AmqpSpec::parse("amqp://u:secret@127.0.0.1:5672/%2f").unwrap();
        assert!(!s.shown.contains("secret"));
        assert!(AmqpSpec::parse("amqp://127.0.0.1:5672").is_ok());
        assert!(AmqpSpec::parse("amqps://h").is_ok());
        assert!(AmqpSpec::parse("amqp://h:notaport").is_err());
    }

    #[test]
    fn headers() {
        let mut t = FieldTable::default();
        t.insert("uid".into(), AMQPValue::LongInt(1000));
        t.insert("gid".into(), AMQPValue::LongString("1001".into()));
        let x = extras(Some(&t)).unwrap();
        assert_eq!((x.uid, x.gid), (Some(1000), Some(1001)));
        t.insert("uid".into(), AMQPValue::LongInt(-1));
        assert!(extras(Some(&t)).is_err());
        assert_eq!(extras(None).unwrap(), Extras::default());
    }

    #[test]
    fn messages() {
        assert_eq!(
            message_frame("a.ini", b""),
            Frame::Destroy(b"a.ini".to_vec())
        );
        assert!(matches!(
            message_frame("a.ini", b"[uwsgi]"),
            Frame::Touch(Entry {
                config: Some(_),
                ..
            })
        ));
        assert!(matches!(
            message_frame("", b"/nonexistent/x.ini"),
            Frame::Destroy(_)
        ));
        assert!(matches!(
            message_frame("", b"http://h/x.ini"),
            Frame::Touch(Entry { config: None, .. })
        ));
    }
}
