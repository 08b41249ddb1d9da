//! The `amqp://` imperial monitor through the real binary against the real RabbitMQ
//! (127.0.0.1:5672), with a throwaway vhost and user per test and pika as the publisher:
//! pushed configs (add, reload, stop, crash and respawn), config-path and URL messages, the broker
//! going away and coming back, and bad messages.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/peers.rs"]
mod peers;

use harness::*;
use peers::*;

fn amqp_args(uri: &str) -> Vec<String> {
    [
        "--emperor",
        uri,
        "--binary-path",
        PROBE,
        "--emperor-freq",
        "1",
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

#[test]
fn amqp_pushed_configs_and_paths() {
    let s = Scratch::new("amqp-push");
    let mq = RabbitVhost::new("push");
    let mut e = Emperor::start(&s, &amqp_args(&mq.uri(5672)));
    e.wait_log("consuming from the uwsgi.emperor exchange");
    assert!(
        !e.stderr().contains(&mq.password),
        "the password must not be logged"
    );

    // A routing key = a vassal name, the body = its config.
    mq.publish(
        "a.ini",
        probe_cfg(&s.probe_log(), "v1", "send:1,send:5,send:17").as_bytes(),
    );
    wait_until("a.ini started", || !started_with(&s, "v1").is_empty());
    let first = started_with(&s, "v1")[0].clone();
    assert!(
        first.get("argv").ends_with("--ini|emperor://a.ini"),
        "{}",
        first.get("argv")
    );
    mq.publish(
        "a.ini",
        probe_cfg(&s.probe_log(), "v2", "send:1,send:5,send:17").as_bytes(),
    );
    wait_until("a.ini reloaded with v2", || {
        s.events()
            .iter()
            .any(|ev| ev.event == "reconfig" && ev.get("tag") == "v2")
    });

    // A crash: respawned with the last config.
    wait_until("a.ini loyal", || {
        e.stderr().contains("vassal a.ini is now loyal")
    });
    signal(first.pid, 9);
    wait_until("a.ini respawned", || !started_with(&s, "v2").is_empty());
    let second = started_with(&s, "v2")[0].pid;

    // An empty body stops it.
    mq.publish("a.ini", b"");
    wait_until("a.ini stopped", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == second && ev.event == "exit")
    });
    e.wait_log("removed uwsgi instance a.ini");

    // No routing key: the body is a config file path.
    let f = s.path("f.ini");
    write_atomic(&f, &probe_cfg(&s.probe_log(), "file", "send:1"));
    mq.publish("", f.to_string_lossy().as_bytes());
    wait_until("f.ini started", || !started_with(&s, "file").is_empty());
    let fpid = started_with(&s, "file")[0].clone();
    assert!(
        fpid.get("argv")
            .ends_with(&format!("--ini|{}", f.display())),
        "{}",
        fpid.get("argv")
    );
    mq.publish("", f.to_string_lossy().as_bytes());
    wait_until("f.ini reloaded", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == fpid.pid && ev.event == "byte" && ev.get("value") == "1")
    });
    std::fs::remove_file(&f).unwrap();
    mq.publish("", f.to_string_lossy().as_bytes());
    wait_until("f.ini stopped", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == fpid.pid && ev.event == "exit")
    });

    // No routing key, an http:// URL: the vassal fetches it; a non-2xx answer removes it.
    let web = HttpFiles::new();
    web.set("/u.ini", Some(&probe_cfg(&s.probe_log(), "url", "send:1")));
    let url = web.url("/u.ini");
    mq.publish("", url.as_bytes());
    wait_until("u.ini started", || !started_with(&s, "url").is_empty());
    let upid = started_with(&s, "url")[0].clone();
    assert!(
        upid.get("argv").ends_with(&format!("--ini|{url}")),
        "{}",
        upid.get("argv")
    );
    web.set("/u.ini", None);
    mq.publish("", url.as_bytes());
    e.wait_log("its vassal is removed");
    wait_until("u.ini stopped", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == upid.pid && ev.event == "exit")
    });
    e.signal(2);
    e.wait_exit();
}

#[test]
fn amqp_broker_away_changes_nothing() {
    let s = Scratch::new("amqp-away");
    let mq = RabbitVhost::new("away");
    let proxy = Proxy::new("127.0.0.1:5672");
    let mut e = Emperor::start(&s, &amqp_args(&mq.uri(proxy.port)));
    e.wait_log("consuming from the uwsgi.emperor exchange");
    mq.publish(
        "k.ini",
        probe_cfg(&s.probe_log(), "k", "send:1,send:5,send:17").as_bytes(),
    );
    wait_until("k.ini started", || !started_with(&s, "k").is_empty());
    let pid = started_with(&s, "k")[0].pid;
    proxy.down();
    e.wait_log("reconnecting (running vassals are not touched)");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(alive(pid));
    proxy.up();
    e.wait_log("connected to");
    // Messages published while the monitor was away are not queued for it (its queue is
    // exclusive): the next one after the reconnection is seen.
    wait_until("a message after the reconnection is seen", || {
        mq.publish("l.ini", probe_cfg(&s.probe_log(), "l", "send:1").as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(500));
        !started_with(&s, "l").is_empty()
    });
    assert!(alive(pid), "k.ini survived the broker going away");
    assert_eq!(started_with(&s, "k").len(), 1);
    e.signal(2);
    e.wait_exit();
}

#[test]
fn amqp_bad_messages_are_logged_and_skipped() {
    let s = Scratch::new("amqp-bad");
    let mq = RabbitVhost::new("bad");
    let mut e = Emperor::start(&s, &amqp_args(&mq.uri(5672)));
    e.wait_log("consuming from the uwsgi.emperor exchange");
    let cfg = probe_cfg(&s.probe_log(), "bad", "send:1");
    mq.publish("../evil.ini", cfg.as_bytes());
    mq.publish("x/evil.ini", cfg.as_bytes());
    mq.publish("noext.txt", cfg.as_bytes());
    mq.publish("huge.ini", &vec![b'x'; 1 << 20]);
    mq.publish("", b"/etc/../etc/evil.ini");
    mq.publish("", b"relative/../x.ini");
    mq.publish(
        "ok.ini",
        probe_cfg(&s.probe_log(), "ok", "send:1").as_bytes(),
    );
    wait_until("ok.ini started", || !started_with(&s, "ok").is_empty());
    for needle in [
        "\"../evil.ini\" (path traversal)",
        "\"x/evil.ini\"",
        "noext.txt",
        "huge.ini is larger than",
    ] {
        e.wait_log(needle);
    }
    assert_eq!(starts(&s).len(), 1);
    e.signal(2);
    e.wait_exit();
}

#[test]
fn amqp_tyrant_headers_and_a_real_vassal_serving() {
    let s = Scratch::new("amqp-tyrant");
    std::fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(s.probe_log(), "").unwrap();
    std::fs::set_permissions(
        s.probe_log(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let mq = RabbitVhost::new("tyrant");
    let mut args = amqp_args(&mq.uri(5672));
    args.push("--emperor-tyrant".into());
    let mut e = Emperor::start(&s, &args);
    e.wait_log("consuming from the uwsgi.emperor exchange");
    mq.publish_with(
        "t.ini",
        probe_cfg(&s.probe_log(), "t", "send:1").as_bytes(),
        &["uid=1000", "gid=1000"],
    );
    wait_until("t.ini started", || !started_with(&s, "t").is_empty());
    let ev = started_with(&s, "t")[0].clone();
    assert_eq!((ev.get("uid"), ev.get("gid")), ("1000", "1000"));
    mq.publish_with(
        "root.ini",
        probe_cfg(&s.probe_log(), "root", "send:1").as_bytes(),
        &["uid=0", "gid=0"],
    );
    mq.publish(
        "anon.ini",
        probe_cfg(&s.probe_log(), "anon", "send:1").as_bytes(),
    );
    mq.publish_with(
        "badh.ini",
        probe_cfg(&s.probe_log(), "badh", "send:1").as_bytes(),
        &["uid=nobody"],
    );
    e.wait_log("invalid permissions for vassal root.ini");
    e.wait_log("vassal anon.ini has no uid/gid");
    e.wait_log("the uid header is not a number");
    assert!(
        started_with(&s, "root").is_empty()
            && started_with(&s, "anon").is_empty()
            && started_with(&s, "badh").is_empty()
    );
    e.signal(2);
    e.wait_exit();

    // A real imperium vassal (the Emperor's own binary) serving HTTP from a pushed config.
    let s2 = Scratch::new("amqp-real");
    let mut e2 = Emperor::start(
        &s2,
        &[
            "--emperor".into(),
            mq.uri(5672),
            "--emperor-freq".into(),
            "1".into(),
        ],
    );
    e2.wait_log("consuming from the uwsgi.emperor exchange");
    let port = free_port();
    mq.publish(
        "web.ini",
        format!("[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nmaster = true\n").as_bytes(),
    );
    wait_until("the vassal answers HTTP", || http_status(port).is_some());
    mq.publish("web.ini", b"");
    e2.wait_log("removed uwsgi instance web.ini");
    wait_until("the port is closed", || http_status(port).is_none());
    e2.signal(2);
    e2.wait_exit();
}
