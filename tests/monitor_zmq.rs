//! The `zmq://` imperial monitor through the real binary with pyzmq (libzmq) as the PUSH
//! peer: the 2- to 6-part message forms, reloads in the same second, tyrant uid/gid from
//! the message, an on-demand socket from part 6, bad frames, and several `--emperor`
//! sources at once with a name claimed twice.

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

fn zmq_emperor(s: &Scratch, extra: &[&str]) -> (Emperor, String) {
    let port = free_port();
    let ep = format!("tcp://127.0.0.1:{port}");
    let mut args: Vec<String> = [
        "--emperor",
        &format!("zmq://{ep}"),
        "--binary-path",
        PROBE,
        "--emperor-freq",
        "1",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    args.extend(extra.iter().map(|x| x.to_string()));
    let e = Emperor::start(s, &args);
    e.wait_log("PULL socket bound");
    (e, ep)
}

#[test]
fn zmq_touch_reload_destroy() {
    let s = Scratch::new("zmq-basic");
    let (mut e, ep) = zmq_emperor(&s, &[]);
    let cfg = |tag: &str| probe_cfg(&s.probe_log(), tag, "send:1,send:5,send:17");
    zmq_push(&ep, &[b"touch", b"foo.ini", cfg("v1").as_bytes()]);
    wait_until("foo.ini started", || !started_with(&s, "v1").is_empty());
    let first = started_with(&s, "v1")[0].clone();
    assert!(first.get("argv").ends_with("--ini|emperor://foo.ini"));
    // Two touches in the same second both apply (uWSGI collapses them).
    zmq_push(&ep, &[b"touch", b"foo.ini", cfg("v2").as_bytes()]);
    wait_until("reloaded with v2", || {
        s.events()
            .iter()
            .any(|ev| ev.event == "reconfig" && ev.get("tag") == "v2")
    });
    zmq_push(&ep, &[b"touch", b"foo.ini", cfg("v3").as_bytes()]);
    wait_until("reloaded with v3", || {
        s.events()
            .iter()
            .any(|ev| ev.event == "reconfig" && ev.get("tag") == "v3")
    });
    // Crash and respawn with the last config.
    wait_until("loyal", || {
        e.stderr().contains("vassal foo.ini is now loyal")
    });
    signal(first.pid, 9);
    wait_until("respawned with v3", || !started_with(&s, "v3").is_empty());
    let second = started_with(&s, "v3")[0].pid;
    // The helper is killed: it comes back on the same endpoint, the vassal stays.
    let helpers = peers::monitor_helpers(e.pid());
    assert_eq!(helpers.len(), 1, "one zmq helper: {helpers:?}");
    signal(helpers[0], 9);
    e.wait_log("restarting it in");
    wait_until("a new helper bound", || {
        e.count_log("PULL socket bound") >= 2
    });
    assert!(alive(second), "the vassal survives its monitor's helper");
    zmq_push(&ep, &[b"destroy", b"foo.ini"]);
    wait_until("foo.ini stopped", || {
        s.events()
            .iter()
            .any(|ev| ev.pid == second && ev.event == "exit")
    });
    e.wait_log("removed uwsgi instance foo.ini");

    // Two parts: the name is a config file in the Emperor's directory.
    write_atomic(
        &s.path("static.ini"),
        &probe_cfg(&s.probe_log(), "static", "send:1"),
    );
    zmq_push(&ep, &[b"touch", b"static.ini"]);
    wait_until("static.ini started", || {
        !started_with(&s, "static").is_empty()
    });
    assert!(
        started_with(&s, "static")[0]
            .get("argv")
            .ends_with("--ini|static.ini")
    );
    e.signal(2);
    e.wait_exit();
}

#[test]
fn zmq_five_and_six_parts_tyrant_and_on_demand() {
    let s = Scratch::new("zmq-parts");
    std::fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(s.probe_log(), "").unwrap();
    std::fs::set_permissions(
        s.probe_log(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let (mut e, ep) = zmq_emperor(&s, &["--emperor-tyrant"]);
    // 5 parts: uid and gid.
    zmq_push(
        &ep,
        &[
            b"touch",
            b"five.ini",
            probe_cfg(&s.probe_log(), "five", "send:1").as_bytes(),
            b"1000",
            b"1000",
        ],
    );
    wait_until("five.ini started", || !started_with(&s, "five").is_empty());
    let ev = started_with(&s, "five")[0].clone();
    assert_eq!((ev.get("uid"), ev.get("gid")), ("1000", "1000"));
    // 6 parts: an on-demand socket; the vassal starts at the first connection.
    let sock = s.path("six.sock");
    zmq_push(
        &ep,
        &[
            b"touch",
            b"six.ini",
            probe_cfg(&s.probe_log(), "six", "send:1,accept").as_bytes(),
            b"1000",
            b"1000",
            sock.to_string_lossy().as_bytes(),
        ],
    );
    e.wait_log("six.ini -> \"on demand\" instance detected");
    assert!(started_with(&s, "six").is_empty());
    let mut c = None;
    wait_until("on-demand socket connectable", || {
        c = std::os::unix::net::UnixStream::connect(&sock).ok();
        c.is_some()
    });
    let answer = read_all(c.unwrap());
    assert_eq!(answer, "hello\n");
    assert_eq!(started_with(&s, "six").len(), 1);
    // Tyrant refusals: uid 0, and no uid at all.
    zmq_push(
        &ep,
        &[
            b"touch",
            b"root.ini",
            probe_cfg(&s.probe_log(), "root", "send:1").as_bytes(),
            b"0",
            b"0",
        ],
    );
    zmq_push(
        &ep,
        &[
            b"touch",
            b"anon.ini",
            probe_cfg(&s.probe_log(), "anon", "send:1").as_bytes(),
        ],
    );
    e.wait_log("invalid permissions for vassal root.ini");
    e.wait_log("vassal anon.ini has no uid/gid");
    assert!(started_with(&s, "root").is_empty() && started_with(&s, "anon").is_empty());
    e.signal(2);
    e.wait_exit();
}

#[test]
fn zmq_bad_frames_are_logged_and_skipped() {
    let s = Scratch::new("zmq-bad");
    let (mut e, ep) = zmq_emperor(&s, &[]);
    let cfg = probe_cfg(&s.probe_log(), "bad", "send:1");
    zmq_push(&ep, &[b"touch"]);
    zmq_push(&ep, &[b"touch", b"a.ini", b"c", b"1", b"1", b"s", b"extra"]);
    zmq_push(&ep, &[b"explode", b"a.ini"]);
    zmq_push(&ep, &[b"touch", b"a.ini", cfg.as_bytes(), b"abc"]);
    zmq_push(&ep, &[b"touch", b"../evil.ini", cfg.as_bytes()]);
    zmq_push(&ep, &[b"touch", b"\xff\xfe.ini", cfg.as_bytes()]);
    zmq_push(&ep, &[b"touch", b"../../etc/passwd.ini"]);
    zmq_push(&ep, &[b"touch", b"big.ini", &vec![b'x'; 1 << 20]]);
    zmq_push(
        &ep,
        &[
            b"touch",
            b"good.ini",
            probe_cfg(&s.probe_log(), "good", "send:1").as_bytes(),
        ],
    );
    wait_until("good.ini started", || !started_with(&s, "good").is_empty());
    for needle in [
        "2 to 6 parts, this one has 1",
        "this one has 7",
        "unknown command \"explode\"",
        "uid is not a number",
        "\"../evil.ini\"",
        "(not UTF-8)",
        "\"../../etc/passwd.ini\" (path traversal)",
        "big.ini is larger than",
    ] {
        e.wait_log(needle);
    }
    assert_eq!(starts(&s).len(), 1);
    e.signal(2);
    e.wait_exit();
}

#[test]
fn several_sources_and_a_name_claimed_twice() {
    let s = Scratch::new("zmq-multi");
    s.vassal("c.ini", "send:1");
    let port = free_port();
    let ep = format!("tcp://127.0.0.1:{port}");
    let args: Vec<String> = [
        "--emperor",
        &s.vassals().to_string_lossy(),
        "--emperor",
        &format!("zmq://{ep}"),
        "--binary-path",
        PROBE,
        "--emperor-freq",
        "1",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let mut e = Emperor::start(&s, &args);
    e.wait_log("PULL socket bound");
    wait_until("c.ini from the directory", || starts(&s).len() == 1);
    zmq_push(
        &ep,
        &[
            b"touch",
            b"d.ini",
            probe_cfg(&s.probe_log(), "d", "send:1").as_bytes(),
        ],
    );
    wait_until("d.ini from zmq", || !started_with(&s, "d").is_empty());
    // The zmq source claims c.ini too: refused, the directory's vassal is untouched.
    zmq_push(
        &ep,
        &[
            b"touch",
            b"c.ini",
            probe_cfg(&s.probe_log(), "takeover", "send:1").as_bytes(),
        ],
    );
    e.wait_log("vassal name c.ini is claimed by");
    assert!(started_with(&s, "takeover").is_empty());
    let c_pid = starts(&s)[0].pid;
    assert!(alive(c_pid));
    assert!(
        !s.events()
            .iter()
            .any(|ev| ev.pid == c_pid && ev.event == "byte")
    );
    e.signal(2);
    e.wait_exit();
}

#[test]
fn zmq_real_vassal_serving() {
    let s = Scratch::new("zmq-real");
    let zport = free_port();
    let ep = format!("tcp://127.0.0.1:{zport}");
    let mut e = Emperor::start(
        &s,
        &[
            "--emperor".into(),
            format!("zmq://{ep}"),
            "--emperor-freq".into(),
            "1".into(),
        ],
    );
    e.wait_log("PULL socket bound");
    let port = free_port();
    zmq_push(
        &ep,
        &[
            b"touch",
            b"web.ini",
            format!("[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nmaster = true\n").as_bytes(),
        ],
    );
    wait_until("the vassal answers HTTP", || http_status(port).is_some());
    zmq_push(&ep, &[b"destroy", b"web.ini"]);
    e.wait_log("removed uwsgi instance web.ini");
    wait_until("the port is closed", || http_status(port).is_none());
    e.signal(2);
    e.wait_exit();
}
