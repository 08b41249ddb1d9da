//! The stats server through the real binary: the JSON has the same keys as the real
//! uWSGI 2.0.31's for the same configuration (so uwsgitop reads it), counters move with
//! requests, and the UNIX, `stats-http` and `stats-minified` variants.

mod vassal_support;

use vassal_support::*;

fn stats_port(i: &Instance) -> u16 {
    let line = i.wait_log("*** Stats server enabled on 127.0.0.1:");
    line.split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn keys_match_the_real_uwsgi() {
    let s = Scratch::new("stats-diff");
    let args = [
        "--socket",
        "127.0.0.1:0",
        "--master",
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
    ];
    let ours = Instance::start(&s, &args);
    ours.wait_ready(2);
    let sp = stats_port(&ours);
    // uWSGI does not report an auto-assigned stats port: give it a free one.
    let tsp = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = std::process::Command::new(uwsgi_bin());
    cmd.args(&args[..5])
        .args(["--stats", &format!("127.0.0.1:{tsp}")])
        .stdin(std::process::Stdio::null());
    let theirs = Instance::spawn(&s, &mut cmd, "uwsgi.log");
    theirs.wait_log("*** Stats server enabled on");
    theirs.wait_log("spawned uWSGI worker 2");

    let a = stats(&Target::Tcp(format!("127.0.0.1:{sp}")));
    let b = stats(&Target::Tcp(format!("127.0.0.1:{tsp}")));
    // uWSGI lists its internal locks by name; imperium has none of those locks.
    let keep = |p: &String| !p.starts_with("locks[]");
    let ka: Vec<String> = key_paths(&a).into_iter().filter(keep).collect();
    let kb: Vec<String> = key_paths(&b).into_iter().filter(keep).collect();
    assert_eq!(
        ka, kb,
        "stats keys differ from uWSGI's\nours: {a:#}\nuWSGI: {b:#}"
    );
    // Top-level key order too.
    let order = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(order(&a), order(&b));

    assert_eq!(a["pid"], ours.pid());
    let ws = a["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 2);
    for (n, w) in ws.iter().enumerate() {
        assert_eq!(w["id"], n + 1);
        assert_eq!(w["status"], "idle");
        assert_eq!(w["requests"], 0);
        assert_eq!(w["accepting"], 1);
    }
    assert_eq!(a["sockets"][0]["proto"], "uwsgi");
    assert_eq!(a["sockets"][0]["max_queue"], 100);

    // Three requests show up in the counters.
    let port = ours.port(0);
    for _ in 0..3 {
        roundtrip(&Target::Tcp(format!("127.0.0.1:{port}")), &uwsgi_get("/"));
    }
    ours.wait_log("|req: -1/3]");
    let a = stats(&Target::Tcp(format!("127.0.0.1:{sp}")));
    let total: u64 = a["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3);
    let tx: u64 = a["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["tx"].as_u64().unwrap())
        .sum();
    assert_eq!(tx, 3 * 104);
}

#[test]
fn unix_http_and_minified_variants() {
    let s = Scratch::new("stats-unix");
    let st = s.s("stats.sock");
    let i = Instance::start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--stats",
            &st,
            "--stats-http",
            "--vacuum",
        ],
    );
    i.wait_ready(1);
    i.wait_log(&format!("*** Stats server enabled on {st} fd: "));
    let raw = roundtrip(&Target::Unix(st.clone().into()), b"GET / HTTP/1.0\r\n\r\n");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200 OK\r\n") && head.contains("Content-Type: application/json"),
        "{head}"
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["sockets"][0]["proto"], "http");

    let s2 = Scratch::new("stats-min");
    let j = Instance::start(
        &s2,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--stats",
            "127.0.0.1:0",
            "--stats-minified",
        ],
    );
    j.wait_ready(1);
    let raw = roundtrip(&Target::Tcp(format!("127.0.0.1:{}", stats_port(&j))), b"");
    assert!(!raw.contains(&b'\n'), "minified stats are one line");
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["workers"][0]["status"], "idle");
}
