//! `pg://<libpq conninfo>[;<SQL>]`: the PostgreSQL monitor (helper side).
//!
//! uWSGI's semantics: the query (default `SELECT name,config,EXTRACT(epoch FROM ts) FROM
//! vassals`) returns name, config, ts (epoch seconds, fraction dropped), then optionally
//! uid, gid and an on-demand socket; the whole result is one snapshot. Better than uWSGI:
//! one persistent connection (uWSGI connects for every scan), reconnection with backoff,
//! and `listen=CHANNEL` in the conninfo, which runs `LISTEN "CHANNEL"` so a
//! `NOTIFY CHANNEL` makes the query run at once (the periodic query stays as safety net).
//! Values are read through the simple-query protocol, as text, so any column type works.
//! A failed query or a lost connection sends nothing: the Emperor keeps what runs.

use super::{Backoff, Once, Sink, log};
use crate::feed::{Entry, Frame};
use crate::remote::MAX_CONFIG;
use std::collections::HashSet;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

pub const DEFAULT_QUERY: &str = "SELECT name,config,EXTRACT(epoch FROM ts) FROM vassals";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSpec {
    /// The conninfo handed to the driver (without `listen=`).
    pub conninfo: String,
    pub query: String,
    pub listen: Option<String>,
}

impl PgSpec {
    pub fn parse(arg: &str) -> Result<PgSpec, String> {
        let rest = arg.strip_prefix("pg://").ok_or("expected pg://")?;
        let (conn, query) = match rest.split_once(';') {
            Some((c, q)) if !q.trim().is_empty() => (c, q.trim().to_owned()),
            Some((c, _)) => (c, DEFAULT_QUERY.to_owned()),
            None => (rest, DEFAULT_QUERY.to_owned()),
        };
        let (conninfo, listen) = take_listen(conn.trim())?;
        let spec = PgSpec {
            conninfo,
            query,
            listen,
        };
        spec.config()?;
        Ok(spec)
    }

    /// The driver configuration, with libpq's defaults for a missing host and user.
    pub fn config(&self) -> Result<tokio_postgres::Config, String> {
        let mut c: tokio_postgres::Config = self
            .conninfo
            .parse()
            .map_err(|e| format!("conninfo: {e}"))?;
        if c.get_hosts().is_empty() {
            if std::path::Path::new("/var/run/postgresql").is_dir() {
                c.host_path("/var/run/postgresql");
            } else {
                c.host("localhost");
            }
        }
        if c.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "root".into());
            c.user(&user);
        }
        Ok(c)
    }
}

/// Removes `listen=CHANNEL` from a keyword/value conninfo (or the `listen` parameter of a
/// `postgresql://` URI).
fn take_listen(conn: &str) -> Result<(String, Option<String>), String> {
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let Some((base, query)) = conn.split_once('?') else {
            return Ok((conn.to_owned(), None));
        };
        let mut listen = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| match kv.strip_prefix("listen=") {
                Some(ch) => {
                    listen = Some(ch.to_owned());
                    false
                }
                None => true,
            })
            .collect();
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((url, check_channel(listen)?));
    }
    let mut listen = None;
    let mut kept = Vec::new();
    for tok in tokens(conn)? {
        match tok
            .strip_prefix("listen=")
            .or_else(|| tok.strip_prefix("listen ="))
        {
            Some(ch) => listen = Some(ch.trim_matches('\'').to_owned()),
            None => kept.push(tok),
        }
    }
    Ok((kept.join(" "), check_channel(listen)?))
}

fn check_channel(ch: Option<String>) -> Result<Option<String>, String> {
    match ch {
        Some(c) if c.is_empty() || c.len() > 63 || c.contains('\0') => {
            Err(format!("invalid listen channel {c:?}"))
        }
        other => Ok(other),
    }
}

/// Splits a keyword/value conninfo into `key=value` words, keeping quoted values whole.
fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                // `key = value` is allowed by libpq: glue the pieces.
                if cur.ends_with('=') || chars.peek() == Some(&'=') {
                    continue;
                }
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => {
                if c == '=' && cur.ends_with(' ') {
                    cur.pop();
                }
                cur.push(c)
            }
        }
    }
    if quoted {
        return Err("unterminated quote in conninfo".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Bad rows are logged once per name and reason, again if they come back after a fix.
#[derive(Default)]
pub struct RowWarnings {
    seen: HashSet<String>,
    now: HashSet<String>,
}

impl RowWarnings {
    fn warn(&mut self, scheme: &str, key: String, msg: &str) {
        if !self.seen.contains(&key) {
            log(scheme, msg);
        }
        self.now.insert(key);
    }

    fn end(&mut self) {
        self.seen = std::mem::take(&mut self.now);
    }
}

/// One result row as a snapshot frame: `Row`, `Keep` (present but unusable) or nothing
/// (not even a name).
pub fn row_frame(cols: &[Option<&str>], w: &mut RowWarnings) -> Option<Frame> {
    let scheme = "pg";
    if cols.len() < 3 {
        w.warn(
            scheme,
            "columns".into(),
            "the query must return at least 3 columns (name, config, ts): rows skipped",
        );
        return None;
    }
    let Some(name) = cols[0] else {
        w.warn(scheme, "null-name".into(), "a row has a NULL name: skipped");
        return None;
    };
    let mut bad = |why: &str| {
        w.warn(
            scheme,
            format!("{name}:{why}"),
            &format!("vassal {name}: {why}: row skipped (a running vassal keeps its config)"),
        );
        Some(Frame::Keep(name.as_bytes().to_vec()))
    };
    let Some(config) = cols[1] else {
        return bad("NULL config");
    };
    if config.len() > MAX_CONFIG {
        return bad(&format!("config larger than {MAX_CONFIG} bytes"));
    }
    let ts = match cols[2].map(|t| t.trim().parse::<f64>()) {
        None => return bad("NULL ts"),
        Some(Ok(t)) if t.is_finite() => t.trunc() as i64,
        Some(_) => return bad("ts is not a number of seconds"),
    };
    let id = |i: usize, what: &str| -> Result<Option<u32>, String> {
        match cols.get(i).copied().flatten() {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("{what} is not a number")),
        }
    };
    let uid = match id(3, "uid") {
        Ok(v) => v,
        Err(e) => return bad(&e),
    };
    let gid = match id(4, "gid") {
        Ok(v) => v,
        Err(e) => return bad(&e),
    };
    let socket = cols
        .get(5)
        .copied()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec());
    Some(Frame::Row(Entry {
        name: name.as_bytes().to_vec(),
        config: Some(config.as_bytes().to_vec()),
        ts,
        uid,
        gid,
        socket,
    }))
}

enum Wake {
    Notified,
    Lost(String),
}

/// The helper's loop: connect, (LISTEN), query every `freq` or on NOTIFY, reconnect.
pub async fn run(spec: PgSpec, freq: Duration, mut sink: Sink) -> Result<(), String> {
    let config = spec.config()?;
    let mut backoff = Backoff::default();
    let mut conn_err = Once::default();
    let mut query_err = Once::default();
    let mut warnings = RowWarnings::default();
    loop {
        let (client, mut connection) = match config.connect(NoTls).await {
            Ok(c) => c,
            Err(e) => {
                conn_err.log("pg", format!("cannot connect to PostgreSQL: {e}; retrying (running vassals are not touched)"));
                backoff.wait().await;
                continue;
            }
        };
        if conn_err.clear() {
            log("pg", "connected to PostgreSQL again");
        }
        backoff.reset();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        let _ = tx.send(Wake::Notified);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let _ = tx.send(Wake::Lost(e.to_string()));
                        return;
                    }
                    None => {
                        let _ = tx.send(Wake::Lost("connection closed".into()));
                        return;
                    }
                }
            }
        });
        if let Some(ch) = &spec.listen {
            let q = format!("LISTEN \"{}\"", ch.replace('"', "\"\""));
            if let Err(e) = client.batch_execute(&q).await {
                log(
                    "pg",
                    &format!("{q}: {e}; polling every {} ms only", freq.as_millis()),
                );
            }
        }
        let lost = 'session: loop {
            match client.simple_query(&spec.query).await {
                Ok(msgs) => {
                    query_err.clear();
                    let mut frames = vec![Frame::SnapshotBegin];
                    for m in &msgs {
                        if let SimpleQueryMessage::Row(r) = m {
                            let cols: Vec<Option<&str>> = (0..r.len()).map(|i| r.get(i)).collect();
                            frames.extend(row_frame(&cols, &mut warnings));
                        }
                    }
                    warnings.end();
                    frames.push(Frame::SnapshotEnd);
                    sink.send_all(&frames);
                }
                Err(e) if client.is_closed() => break 'session e.to_string(),
                Err(e) => {
                    let detail = e
                        .as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or_else(|| e.to_string());
                    query_err.log(
                        "pg",
                        format!("query failed: {detail}; nothing changes until it works"),
                    );
                }
            }
            let wake = tokio::select! {
                _ = tokio::time::sleep(freq) => None,
                w = rx.recv() => Some(w),
            };
            match wake {
                None => {}
                Some(Some(Wake::Notified)) => while let Ok(Wake::Notified) = rx.try_recv() {},
                Some(Some(Wake::Lost(e))) => break 'session e,
                Some(None) => break 'session "connection closed".into(),
            }
        };
        driver.abort();
        conn_err.log("pg", format!("lost the PostgreSQL connection ({lost}); reconnecting (running vassals are not touched)"));
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        let s = PgSpec::parse("pg://host=127.0.0.1 dbname=x").unwrap();
        assert_eq!(s.query, DEFAULT_QUERY);
        assert_eq!(s.listen, None);
        let s = PgSpec::parse(
            "pg://host=127.0.0.1 listen=vassals_changed dbname=x;SELECT a,b,c FROM t",
        )
        .unwrap();
        assert_eq!(s.conninfo, "host=127.0.0.1 dbname=x");
        assert_eq!(s.listen.as_deref(), Some("vassals_changed"));
        assert_eq!(s.query, "SELECT a,b,c FROM t");
        let s = PgSpec::parse("pg://postgresql://u@h/db?listen=ch&connect_timeout=3").unwrap();
        assert_eq!(s.conninfo, "postgresql://u@h/db?connect_timeout=3");
        assert_eq!(s.listen.as_deref(), Some("ch"));
        let s = PgSpec::parse("pg://host = h password='a b' listen = c").unwrap();
        assert_eq!(s.listen.as_deref(), Some("c"));
        assert!(PgSpec::parse("pg://host='x").is_err());
        assert!(PgSpec::parse("pg://bogus=1").is_err());
    }

    #[test]
    fn rows() {
        let mut w = RowWarnings::default();
        let f = row_frame(
            &[
                Some("a.ini"),
                Some("[uwsgi]"),
                Some("1700000000.75"),
                Some("1000"),
                Some("1000"),
                None,
            ],
            &mut w,
        );
        assert_eq!(
            f,
            Some(Frame::Row(Entry {
                name: b"a.ini".to_vec(),
                config: Some(b"[uwsgi]".to_vec()),
                ts: 1_700_000_000,
                uid: Some(1000),
                gid: Some(1000),
                socket: None
            }))
        );
        assert_eq!(row_frame(&[None, Some("x"), Some("1")], &mut w), None);
        assert_eq!(
            row_frame(&[Some("a.ini"), None, Some("1")], &mut w),
            Some(Frame::Keep(b"a.ini".to_vec()))
        );
        assert_eq!(
            row_frame(&[Some("a.ini"), Some("x"), Some("soon")], &mut w),
            Some(Frame::Keep(b"a.ini".to_vec()))
        );
        assert_eq!(
            row_frame(&[Some("a.ini"), Some("x"), Some("1"), Some("-1")], &mut w),
            Some(Frame::Keep(b"a.ini".to_vec()))
        );
        assert_eq!(row_frame(&[Some("a.ini"), Some("x")], &mut w), None);
    }
}
