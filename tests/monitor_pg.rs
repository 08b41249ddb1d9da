//! The `pg://` imperial monitor through the real binary against the real PostgreSQL
//! (127.0.0.1:5432, one throwaway database per test): add, reload, stop, NOTIFY, a crash
//! and respawn, the database going away and coming back, the helper killed, bad rows,
//! tyrant uid/gid, and a real imperium vassal serving a request with a 100 KiB config.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/peers.rs"]
mod peers;

use harness::*;
use peers::*;

/// A pushed probe config.
fn probe_cfg(s: &Scratch, tag: &str, script: &str) -> String {
    peers::probe_cfg(&s.probe_log(), tag, script)
}

fn pg_args(
    s: &Scratch,
    db: &PgDb,
    port: u16,
    extra_conn: &str,
    query: &str,
    freq: &str,
) -> Vec<String> {
    let _ = s;
    let mut arg = format!("pg://{} {extra_conn}", db.conninfo(port));
    if !query.is_empty() {
        arg.push(';');
        arg.push_str(query);
    }
    [
        "--emperor",
        &arg,
        "--binary-path",
        PROBE,
        "--emperor-freq",
        freq,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}

fn started_with(s: &Scratch, tag: &str) -> Vec<Event> {
    starts(s)
        .into_iter()
        .filter(|e| e.get("tag") == tag)
        .collect()
}

const QUERY: &str = "SELECT name,config,EXTRACT(epoch FROM ts),uid,gid FROM vassals";

#[test]
fn pg_add_reload_stop_with_notify() {
    let s = Scratch::new("pg-notify");
    let db = PgDb::new("notify");
    // A very long poll period: every change below must come through NOTIFY.
    let mut e = Emperor::start(
        &s,
        &pg_args(&s, &db, 5432, "listen=vassals_changed", QUERY, "600"),
    );
    e.wait_log("pg monitor helper started");
    let cfg = probe_cfg(&s, "v1", "send:1,send:5,send:17");
    db.sql(&format!(
        "INSERT INTO vassals (name, config) VALUES ('a.ini', {}); NOTIFY vassals_changed",
        lit(&cfg)
    ));
    wait_until("a.ini started with the v1 config", || {
        !started_with(&s, "v1").is_empty()
    });
    let first = started_with(&s, "v1")[0].clone();
    assert!(
        first.get("argv").ends_with("--ini|emperor://a.ini"),
        "argv: {}",
        first.get("argv")
    );
    assert_eq!(first.get("cfglen"), cfg.len().to_string());
    assert!(first.get("env").contains("UWSGI_EMPEROR_FD_CONFIG="));

    // A newer ts and a new text: reload, and the vassal reads the new config.
    let cfg2 = probe_cfg(&s, "v2", "send:1,send:5,send:17");
    db.sql(&format!(
        "UPDATE vassals SET config = {}, ts = ts + interval '10 seconds'; NOTIFY vassals_changed",
        lit(&cfg2)
    ));
    wait_until("a.ini reloaded with v2", || {
        s.events()
            .iter()
            .any(|ev| ev.event == "reconfig" && ev.get("tag") == "v2")
    });
    assert!(
        s.events()
            .iter()
            .any(|ev| ev.pid == first.pid && ev.event == "byte" && ev.get("value") == "1")
    );

    // A crash: the vassal comes back (uWSGI forgets push/db vassals), with the v2 config.
    wait_until("a.ini loyal", || {
        e.stderr().contains("vassal a.ini is now loyal")
    });
    signal(first.pid, 9);
    wait_until("a.ini respawned with v2", || {
        !started_with(&s, "v2").is_empty()
    });
    let second = started_with(&s, "v2")[0].clone();
    assert_ne!(second.pid, first.pid);

    // The row goes: the vassal is stopped (byte 0) and not respawned.
    db.sql("DELETE FROM vassals; NOTIFY vassals_changed");
    wait_until("a.ini stopped", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == second.pid && ev.event == "exit")
    });
    e.wait_log("removed uwsgi instance a.ini");
    assert!(
        s.events()
            .iter()
            .any(|ev| ev.pid == second.pid && ev.event == "byte" && ev.get("value") == "0")
    );
    e.signal(2);
    e.wait_exit();
}

#[test]
fn pg_database_away_and_helper_killed_change_nothing() {
    let s = Scratch::new("pg-away");
    let db = PgDb::new("away");
    let proxy = Proxy::new("127.0.0.1:5432");
    let mut e = Emperor::start(
        &s,
        &pg_args(&s, &db, proxy.port, "connect_timeout=2", "", "1"),
    );
    let cfg = probe_cfg(&s, "p1", "send:1,send:5,send:17");
    db.sql(&format!(
        "INSERT INTO vassals (name, config) VALUES ('p.ini', {})",
        lit(&cfg)
    ));
    wait_until("p.ini started (polling)", || {
        !started_with(&s, "p1").is_empty()
    });
    let pid = started_with(&s, "p1")[0].pid;

    // The server goes away: the helper logs, reconnects, and nothing is stopped.
    proxy.down();
    e.wait_log("lost the PostgreSQL connection");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        alive(pid),
        "the vassal must survive the database going away"
    );
    // A row added meanwhile is seen once the server is back.
    db.sql(&format!(
        "INSERT INTO vassals (name, config) VALUES ('q.ini', {})",
        lit(&probe_cfg(&s, "q1", "send:1"))
    ));
    proxy.up();
    wait_until("q.ini started after the server came back", || {
        !started_with(&s, "q1").is_empty()
    });
    assert!(alive(pid));

    // A query that fails (table renamed) changes nothing either.
    db.sql("ALTER TABLE vassals RENAME TO gone");
    e.wait_log("query failed");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(alive(pid));
    db.sql("ALTER TABLE gone RENAME TO vassals");

    // The helper is killed: it is restarted, vassals stay, changes still apply.
    let helpers = peers::monitor_helpers(e.pid());
    assert_eq!(helpers.len(), 1, "one pg helper: {helpers:?}");
    signal(helpers[0], 9);
    e.wait_log("restarting it in");
    wait_until("a new helper", || {
        peers::monitor_helpers(e.pid())
            .iter()
            .any(|h| *h != helpers[0])
    });
    db.sql("DELETE FROM vassals WHERE name = 'q.ini'");
    e.wait_log("removed uwsgi instance q.ini");
    assert!(alive(pid), "p.ini must not be touched by a helper restart");
    assert_eq!(
        starts(&s).iter().filter(|ev| ev.get("tag") == "p1").count(),
        1,
        "p.ini was never restarted"
    );
    e.signal(2);
    e.wait_exit();
}

#[test]
fn pg_bad_rows_are_logged_and_skipped() {
    let s = Scratch::new("pg-bad");
    let db = PgDb::new("bad");
    let good = probe_cfg(&s, "good", "send:1");
    db.sql("ALTER TABLE vassals ALTER COLUMN ts DROP DEFAULT");
    db.sql(&format!(
        "INSERT INTO vassals (name, config, ts) VALUES \
         (NULL, 'x', now()), ('nullcfg.ini', NULL, now()), ('nots.ini', {c}, NULL), \
         ('../evil.ini', {c}, now()), ('sub/evil.ini', {c}, now()), ('noext.txt', {c}, now()), \
         ({long}, {c}, now()), ('big.ini', repeat('x', 1048576), now()), ('ok.ini', {g}, now())",
        c = lit(&good),
        g = lit(&good),
        long = lit(&format!("{}.ini", "n".repeat(300)))
    ));
    let mut e = Emperor::start(&s, &pg_args(&s, &db, 5432, "", "", "1"));
    wait_until("ok.ini started", || !started_with(&s, "good").is_empty());
    for needle in [
        "NULL name",
        "nullcfg.ini: NULL config",
        "nots.ini: NULL ts",
        "\"../evil.ini\" (path traversal)",
        "\"sub/evil.ini\"",
        "noext.txt",
        "longer than 254",
        "big.ini: config larger than",
    ] {
        e.wait_log(needle);
    }
    assert_eq!(starts(&s).len(), 1, "only ok.ini runs");
    // Each problem is logged once, not at every poll.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(e.count_log("nullcfg.ini: NULL config"), 1);

    // A query with the wrong shape and a broken one: logged, nothing stops.
    let pid = starts(&s)[0].pid;
    e.signal(2);
    e.wait_exit();
    assert!(!alive(pid));
    let s2 = Scratch::new("pg-bad2");
    let db2 = PgDb::new("bad2");
    db2.sql(&format!(
        "INSERT INTO vassals (name, config) VALUES ('w.ini', {})",
        lit(&probe_cfg(&s2, "w", "send:1"))
    ));
    let mut e2 = Emperor::start(
        &s2,
        &pg_args(&s2, &db2, 5432, "", "SELECT name FROM vassals", "1"),
    );
    e2.wait_log("at least 3 columns");
    e2.signal(2);
    e2.wait_exit();
    let mut e3 = Emperor::start(&s2, &pg_args(&s2, &db2, 5432, "", "SELEKT nonsense", "1"));
    e3.wait_log("query failed");
    e3.signal(2);
    e3.wait_exit();
    // A ts column of the wrong type.
    let mut e2 = Emperor::start(
        &s2,
        &pg_args(
            &s2,
            &db2,
            5432,
            "",
            "SELECT name, config, 'soon'::text FROM vassals",
            "1",
        ),
    );
    e2.wait_log("w.ini: ts is not a number of seconds");
    assert!(starts(&s2).is_empty());
    e2.signal(2);
    e2.wait_exit();
}

#[test]
fn pg_tyrant_takes_uid_gid_from_the_row() {
    let s = Scratch::new("pg-tyrant");
    // The probe runs as uid 1000: it must be able to write its log.
    std::fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(s.probe_log(), "").unwrap();
    std::fs::set_permissions(
        s.probe_log(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let db = PgDb::new("tyrant");
    let cfg = |tag: &str| lit(&probe_cfg(&s, tag, "send:1"));
    db.sql(&format!(
        "INSERT INTO vassals (name, config, uid, gid) VALUES ('u.ini', {}, 1000, 1000), ('root.ini', {}, 0, 1000), ('none.ini', {}, NULL, NULL)",
        cfg("u"),
        cfg("root"),
        cfg("none")
    ));
    let mut args = pg_args(&s, &db, 5432, "", QUERY, "1");
    args.push("--emperor-tyrant".into());
    let mut e = Emperor::start(&s, &args);
    wait_until("u.ini started", || !started_with(&s, "u").is_empty());
    let ev = started_with(&s, "u")[0].clone();
    assert_eq!((ev.get("uid"), ev.get("gid")), ("1000", "1000"));
    e.wait_log("invalid permissions for vassal root.ini");
    e.wait_log("vassal none.ini has no uid/gid");
    assert!(started_with(&s, "root").is_empty() && started_with(&s, "none").is_empty());
    e.signal(2);
    e.wait_exit();
}

#[test]
fn pg_real_vassal_serves_with_a_large_pushed_config() {
    let s = Scratch::new("pg-real");
    let db = PgDb::new("real");
    let port = free_port();
    // 100 KiB: beyond uWSGI's 64 KiB pushed-config limit.
    let padding: String = (0..1600)
        .map(|i| format!("; padding line {i:05} ..........................................\n"))
        .collect();
    let cfg =
        format!("[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nmaster = true\nprocesses = 1\n{padding}");
    assert!(cfg.len() > 65_536);
    db.sql(&format!(
        "INSERT INTO vassals (name, config) VALUES ('web.ini', {})",
        lit(&cfg)
    ));
    let arg = format!("pg://{}", db.conninfo(5432));
    let mut e = Emperor::start(
        &s,
        &["--emperor".into(), arg, "--emperor-freq".into(), "1".into()],
    );
    wait_until("the vassal answers HTTP", || http_status(port).is_some());
    e.wait_log("vassal web.ini has been spawned");
    db.sql("DELETE FROM vassals");
    e.wait_log("removed uwsgi instance web.ini");
    wait_until("the port is closed", || http_status(port).is_none());
    e.signal(2);
    e.wait_exit();
}
