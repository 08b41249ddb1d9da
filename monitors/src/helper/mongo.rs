//! `mongodb://ADDR,NS,FILTER` and `mongodb2://addr=..,collection=..,database=..,json=..,
//! username=..,password=..,replica=..`: the MongoDB monitor (helper side).
//!
//! Every `emperor-freq` seconds it runs `find(FILTER)` on the collection, projecting
//! `name, config, ts, uid, gid, socket`, and sends the result as one snapshot. As in uWSGI:
//! defaults `127.0.0.1:27017`, `uwsgi.emperor.vassals`, `{}`; `ts` counts only when it is
//! a BSON date (milliseconds, divided by 1000; anything else is 0, so it never reloads);
//! an empty or missing `config` means the name is a config file. One client is kept for
//! the life of the helper (the driver reconnects by itself); a failed query sends nothing.

use super::{Once, Sink, log};
use crate::feed::{Entry, Frame};
use crate::remote::MAX_CONFIG;
use mongodb::bson::{Bson, Document, RawBsonRef, doc};
use mongodb::options::{ClientOptions, Credential};
use std::collections::HashSet;
use std::time::Duration;

/// How long one poll may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct MongoSpec {
    pub addr: String,
    pub database: String,
    pub collection: String,
    pub filter: Document,
    pub username: Option<String>,
    pub password: Option<String>,
    pub replica: Option<String>,
}

/// Splits `k=v,k=v` with `\,` as an escaped comma.
fn kvlist(s: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    items.push(cur);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.to_owned()),
            None => (i.trim().to_owned(), String::new()),
        })
        .collect()
}

fn filter_of(json: &str) -> Result<Document, String> {
    if json.trim().is_empty() {
        return Ok(Document::new());
    }
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("filter {json:?} is not JSON: {e}"))?;
    match Bson::try_from(v).map_err(|e| format!("filter {json:?}: {e}"))? {
        Bson::Document(d) => Ok(d),
        _ => Err(format!("filter {json:?} is not a JSON object")),
    }
}

fn split_ns(ns: &str) -> Result<(String, String), String> {
    match ns.split_once('.') {
        Some((db, coll)) if !db.is_empty() && !coll.is_empty() => {
            Ok((db.to_owned(), coll.to_owned()))
        }
        _ => Err(format!("namespace {ns:?} is not DATABASE.COLLECTION")),
    }
}

impl MongoSpec {
    pub fn parse(arg: &str) -> Result<MongoSpec, String> {
        if let Some(rest) = arg.strip_prefix("mongodb2://") {
            let mut s = MongoSpec {
                addr: "127.0.0.1:27017".into(),
                database: String::new(),
                collection: "uwsgi.emperor.vassals".into(),
                filter: Document::new(),
                username: None,
                password: None,
                replica: None,
            };
            for (k, v) in kvlist(rest) {
                match k.as_str() {
                    "addr" | "address" | "server" => s.addr = v,
                    "collection" => s.collection = v,
                    "database" => s.database = v,
                    "json" => s.filter = filter_of(&v)?,
                    "username" => s.username = Some(v),
                    "password" => s.password = Some(v),
                    "replica" => s.replica = Some(v),
                    "defaults" | "predigest" => {
                        log("mongodb", &format!("mongodb2:// key '{k}' is ignored"))
                    }
                    other => return Err(format!("unknown key '{other}'")),
                }
            }
            if s.database.is_empty() {
                let (db, coll) = split_ns(&s.collection)?;
                s.database = db;
                s.collection = coll;
            }
            return Ok(s);
        }
        let rest = arg
            .strip_prefix("mongodb://")
            .ok_or("expected mongodb:// or mongodb2://")?;
        let mut parts = rest.splitn(3, ',');
        let addr = parts
            .next()
            .filter(|a| !a.is_empty())
            .unwrap_or("127.0.0.1:27017")
            .to_owned();
        let ns = parts
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("uwsgi.emperor.vassals");
        let (database, collection) = split_ns(ns)?;
        let filter = filter_of(parts.next().unwrap_or(""))?;
        Ok(MongoSpec {
            addr,
            database,
            collection,
            filter,
            username: None,
            password: None,
            replica: None,
        })
    }

    async fn client(&self) -> Result<mongodb::Client, String> {
        let uri = match &self.replica {
            Some(r) => format!(
                "mongodb://{}/?replicaSet={r}&serverSelectionTimeoutMS=5000",
                self.addr
            ),
            None => format!(
                "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=5000",
                self.addr
            ),
        };
        let mut opts = ClientOptions::parse(&uri)
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        if let Some(u) = &self.username {
            opts.credential = Some(
                Credential::builder()
                    .username(u.clone())
                    .password(self.password.clone())
                    .source(self.database.clone())
                    .build(),
            );
        }
        opts.app_name = Some("imperium-emperor".into());
        mongodb::Client::with_options(opts).map_err(|e| e.to_string())
    }
}

/// One document as a snapshot frame.
pub fn doc_frame(
    d: &Document,
    warned: &mut HashSet<String>,
    now: &mut HashSet<String>,
) -> Option<Frame> {
    let mut warn = |key: String, msg: String| {
        if !warned.contains(&key) {
            log("mongodb", &msg);
        }
        now.insert(key);
    };
    let name = match d.get("name") {
        Some(Bson::String(s)) if !s.is_empty() => s.clone(),
        Some(Bson::String(_)) | None => return None,
        Some(_) => {
            warn(
                "name-type".into(),
                "a document has a name that is not a string: skipped".into(),
            );
            return None;
        }
    };
    let config = match d.get("config") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) if s.is_empty() => None,
        Some(Bson::String(s)) if s.len() > MAX_CONFIG => {
            warn(
                format!("{name}:big"),
                format!(
                    "vassal {name}: config larger than {MAX_CONFIG} bytes: document skipped (a running vassal keeps its config)"
                ),
            );
            return Some(Frame::Keep(name.into_bytes()));
        }
        Some(Bson::String(s)) => Some(s.clone().into_bytes()),
        Some(_) => {
            warn(
                format!("{name}:config"),
                format!(
                    "vassal {name}: config is not a string: document skipped (a running vassal keeps its config)"
                ),
            );
            return Some(Frame::Keep(name.into_bytes()));
        }
    };
    let ts = match d.get("ts") {
        Some(Bson::DateTime(t)) => t.timestamp_millis().div_euclid(1000),
        _ => 0,
    };
    let id = |k: &str| -> Result<Option<u32>, ()> {
        match d.get(k) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Int32(v)) => u32::try_from(*v).map(Some).map_err(|_| ()),
            Some(Bson::Int64(v)) => u32::try_from(*v).map(Some).map_err(|_| ()),
            Some(Bson::Double(v)) if v.fract() == 0.0 && *v >= 0.0 && *v <= u32::MAX as f64 => {
                Ok(Some(*v as u32))
            }
            Some(_) => Err(()),
        }
    };
    let (uid, gid) = match (id("uid"), id("gid")) {
        (Ok(u), Ok(g)) => (u, g),
        _ => {
            warn(
                format!("{name}:owner"),
                format!("vassal {name}: uid/gid are not numbers: document skipped"),
            );
            return Some(Frame::Keep(name.into_bytes()));
        }
    };
    let socket = match d.get("socket") {
        Some(Bson::String(s)) if !s.is_empty() => Some(s.clone().into_bytes()),
        _ => None,
    };
    Some(Frame::Row(Entry {
        name: name.into_bytes(),
        config,
        ts,
        uid,
        gid,
        socket,
    }))
}

pub async fn run(spec: MongoSpec, freq: Duration, mut sink: Sink) -> Result<(), String> {
    let client = spec.client().await?;
    let coll = client
        .database(&spec.database)
        .collection::<Document>(&spec.collection);
    let projection = doc! { "name": 1, "config": 1, "ts": 1, "uid": 1, "gid": 1, "socket": 1 };
    let mut errs = Once::default();
    let mut warned = HashSet::new();
    loop {
        // A server that accepts and never answers must not stall the monitor for good.
        let query = async {
            let mut cursor = coll
                .find(spec.filter.clone())
                .projection(projection.clone())
                .await
                .map_err(|e| e.to_string())?;
            let mut frames = vec![Frame::SnapshotBegin];
            let mut now = HashSet::new();
            while cursor.advance().await.map_err(|e| e.to_string())? {
                let raw = cursor.current();
                let d: Document = match raw.try_into() {
                    Ok(d) => d,
                    Err(e) => {
                        let name = raw.get("name").ok().flatten().and_then(|v| match v {
                            RawBsonRef::String(s) => Some(s.to_owned()),
                            _ => None,
                        });
                        log("mongodb", &format!("a malformed document ({e}): skipped"));
                        if let Some(n) = name {
                            frames.push(Frame::Keep(n.into_bytes()));
                        }
                        continue;
                    }
                };
                frames.extend(doc_frame(&d, &mut warned, &mut now));
            }
            warned = now;
            frames.push(Frame::SnapshotEnd);
            Ok::<Vec<Frame>, String>(frames)
        };
        let result = match tokio::time::timeout(QUERY_TIMEOUT, query).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer in {} s", QUERY_TIMEOUT.as_secs())),
        };
        match result {
            Ok(frames) => {
                if errs.clear() {
                    log("mongodb", &format!("{}: queries work again", spec.addr));
                }
                sink.send_all(&frames);
            }
            Err(e) => errs.log(
                "mongodb",
                format!(
                    "{}: query failed: {e}; nothing changes until it works",
                    spec.addr
                ),
            ),
        }
        tokio::time::sleep(freq).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::DateTime;

    #[test]
    fn specs() {
        let s = MongoSpec::parse("mongodb://").unwrap();
        assert_eq!(
            (s.addr.as_str(), s.database.as_str(), s.collection.as_str()),
            ("127.0.0.1:27017", "uwsgi", "emperor.vassals")
        );
        let s =
            MongoSpec::parse("mongodb://10.0.0.1:27017,db.vassals,{\"group\": \"a\", \"n\": 1}")
                .unwrap();
        assert_eq!(s.filter, doc! { "group": "a", "n": 1 });
        let s = MongoSpec::parse("mongodb2://addr=h:1,collection=vassals,database=d,json={\"a\": 1\\, \"b\": 2},username=u,password=p").unwrap();
        assert_eq!(
            (s.database.as_str(), s.collection.as_str()),
            ("d", "vassals")
        );
        assert_eq!(s.filter, doc! { "a": 1, "b": 2 });
        assert!(MongoSpec::parse("mongodb://h,nodot").is_err());
        assert!(MongoSpec::parse("mongodb://h,a.b,{bad").is_err());
        assert!(MongoSpec::parse("mongodb2://bogus=1").is_err());
    }

    #[test]
    fn documents() {
        let (mut w, mut n) = (HashSet::new(), HashSet::new());
        let d = doc! { "name": "a.ini", "config": "[uwsgi]", "ts": DateTime::from_millis(1_700_000_000_500), "uid": 1000, "gid": 1000_i64 };
        assert_eq!(
            doc_frame(&d, &mut w, &mut n),
            Some(Frame::Row(Entry {
                name: b"a.ini".to_vec(),
                config: Some(b"[uwsgi]".to_vec()),
                ts: 1_700_000_000,
                uid: Some(1000),
                gid: Some(1000),
                socket: None
            }))
        );
        // A string ts is 0 (uWSGI); an empty config means a config file.
        let d = doc! { "name": "b.ini", "config": "", "ts": "yesterday" };
        assert!(matches!(
            doc_frame(&d, &mut w, &mut n),
            Some(Frame::Row(Entry {
                ts: 0,
                config: None,
                ..
            }))
        ));
        assert_eq!(doc_frame(&doc! { "name": 5 }, &mut w, &mut n), None);
        assert_eq!(
            doc_frame(&doc! { "name": "c.ini", "config": 5 }, &mut w, &mut n),
            Some(Frame::Keep(b"c.ini".to_vec()))
        );
        assert_eq!(
            doc_frame(
                &doc! { "name": "c.ini", "config": "x", "uid": "root" },
                &mut w,
                &mut n
            ),
            Some(Frame::Keep(b"c.ini".to_vec()))
        );
    }
}
