//! The `mongodb://` and `mongodb2://` imperial monitors through the real binary against
//! MockupDB (a MongoDB wire-protocol server scripted by the test): add, reload, stop, a
//! crash and respawn, the server going away and coming back, malformed documents, tyrant
//! uid/gid.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/peers.rs"]
mod peers;

use harness::*;
use peers::*;

fn started_with(s: &Scratch, tag: &str) -> Vec<Event> {
    starts(s)
        .into_iter()
        .filter(|e| e.get("tag") == tag)
        .collect()
}

fn doc(name: &str, config: &str, ts: i64, extra: &str) -> String {
    format!(
        "{{\"name\": {}, \"config\": {}, \"ts\": {}{extra}}}",
        json_str(name),
        json_str(config),
        json_date(ts)
    )
}

fn args(arg: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--emperor",
        arg,
        "--binary-path",
        PROBE,
        "--emperor-freq",
        "1",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

#[test]
fn mongodb_add_reload_stop_and_server_away() {
    let s = Scratch::new("mongo-basic");
    let mut db = MongoFixture::new(&s.dir);
    let cfg = |tag: &str| probe_cfg(&s.probe_log(), tag, "send:1,send:5,send:17");
    db.set_docs(&format!(
        "[{}]",
        doc("m.ini", &cfg("v1"), 1_700_000_000, "")
    ));
    let mut e = Emperor::start(
        &s,
        &args(
            &format!("mongodb://127.0.0.1:{},uwsgi.vassals,{{}}", db.port),
            &[],
        ),
    );
    wait_until("m.ini started", || !started_with(&s, "v1").is_empty());
    let first = started_with(&s, "v1")[0].clone();
    assert!(first.get("argv").ends_with("--ini|emperor://m.ini"));
    // A later ts: reload with the new config.
    db.set_docs(&format!(
        "[{}]",
        doc("m.ini", &cfg("v2"), 1_700_000_100, "")
    ));
    wait_until("m.ini reloaded", || {
        s.events()
            .iter()
            .any(|ev| ev.event == "reconfig" && ev.get("tag") == "v2")
    });
    // Crash: respawned with v2.
    wait_until("loyal", || e.stderr().contains("vassal m.ini is now loyal"));
    signal(first.pid, 9);
    wait_until("respawned", || !started_with(&s, "v2").is_empty());
    let second = started_with(&s, "v2")[0].pid;

    // The server goes away: nothing stops; it comes back with one more document.
    db.stop();
    e.wait_log("query failed");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(alive(second));
    db.set_docs(&format!(
        "[{}, {}]",
        doc("m.ini", &cfg("v2"), 1_700_000_100, ""),
        doc("n.ini", &cfg("n"), 1_700_000_000, "")
    ));
    db.start();
    wait_until("n.ini started after the server came back", || {
        !started_with(&s, "n").is_empty()
    });
    e.wait_log("queries work again");
    assert!(alive(second));

    // The document goes: stopped.
    db.set_docs(&format!("[{}]", doc("n.ini", &cfg("n"), 1_700_000_000, "")));
    wait_until("m.ini stopped", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == second && ev.event == "exit")
    });
    e.wait_log("removed uwsgi instance m.ini");
    e.signal(2);
    e.wait_exit();
}

#[test]
fn mongodb2_keyval_form_and_bad_documents() {
    let s = Scratch::new("mongo-bad");
    let db = MongoFixture::new(&s.dir);
    let good = probe_cfg(&s.probe_log(), "good", "send:1");
    let docs = [
        "{\"name\": 5, \"config\": \"x\"}".to_owned(),
        "{\"name\": \"cfgint.ini\", \"config\": 7}".to_owned(),
        "{\"name\": \"uidstr.ini\", \"config\": \"x\", \"uid\": \"root\"}".to_owned(),
        doc("../evil.ini", &good, 1, ""),
        "{\"name\": \"sub/evil.ini\", \"config\": \"\"}".to_owned(),
        doc("big.ini", &"x".repeat(1 << 20), 1, ""),
        doc("nots.ini", &good, 1, "").replace(&json_date(1), "\"yesterday\""),
        doc("ok.ini", &good, 1, ""),
    ];
    db.set_docs(&format!("[{}]", docs.join(", ")));
    let arg = format!(
        "mongodb2://addr=127.0.0.1:{},collection=vassals,database=uwsgi,json={{}}",
        db.port
    );
    let mut e = Emperor::start(&s, &args(&arg, &[]));
    wait_until("ok.ini and nots.ini started", || {
        started_with(&s, "good").len() == 2
    });
    for needle in [
        "name that is not a string",
        "cfgint.ini: config is not a string",
        "uidstr.ini: uid/gid are not numbers",
        "\"../evil.ini\" (path traversal)",
        "\"sub/evil.ini\" (contains '/')",
        "big.ini: config larger than",
    ] {
        e.wait_log(needle);
    }
    // A failing find: logged, nothing stops.
    let pids: Vec<i32> = started_with(&s, "good").iter().map(|e| e.pid).collect();
    db.set_docs("error");
    e.wait_log("scripted failure");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(pids.iter().all(|p| alive(*p)));
    assert_eq!(starts(&s).len(), 2);
    e.signal(2);
    e.wait_exit();
}

#[test]
fn mongodb_tyrant_uid_gid_from_documents() {
    let s = Scratch::new("mongo-tyrant");
    std::fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(s.probe_log(), "").unwrap();
    std::fs::set_permissions(
        s.probe_log(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let db = MongoFixture::new(&s.dir);
    let cfg = |tag: &str| probe_cfg(&s.probe_log(), tag, "send:1");
    db.set_docs(&format!(
        "[{}, {}]",
        doc("u.ini", &cfg("u"), 1, ", \"uid\": 1000, \"gid\": 1000"),
        doc("root.ini", &cfg("root"), 1, ", \"uid\": 0, \"gid\": 0")
    ));
    let mut e = Emperor::start(
        &s,
        &args(
            &format!("mongodb://127.0.0.1:{},uwsgi.vassals,", db.port),
            &["--emperor-tyrant"],
        ),
    );
    wait_until("u.ini started", || !started_with(&s, "u").is_empty());
    let ev = started_with(&s, "u")[0].clone();
    assert_eq!((ev.get("uid"), ev.get("gid")), ("1000", "1000"));
    e.wait_log("invalid permissions for vassal root.ini");
    assert!(started_with(&s, "root").is_empty());
    e.signal(2);
    e.wait_exit();
}

#[test]
fn mongodb_real_vassal_serving() {
    let s = Scratch::new("mongo-real");
    let db = MongoFixture::new(&s.dir);
    let port = free_port();
    db.set_docs(&format!(
        "[{}]",
        doc(
            "web.ini",
            &format!("[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nmaster = true\n"),
            1,
            ""
        )
    ));
    let arg = format!("mongodb://127.0.0.1:{},uwsgi.vassals,", db.port);
    let mut e = Emperor::start(
        &s,
        &["--emperor".into(), arg, "--emperor-freq".into(), "1".into()],
    );
    wait_until("the vassal answers HTTP", || http_status(port).is_some());
    db.set_docs("[]");
    e.wait_log("removed uwsgi instance web.ini");
    wait_until("the port is closed", || http_status(port).is_none());
    e.signal(2);
    e.wait_exit();
}
