//! A fleet: three Emperors, each in its own network namespace (made by the test with
//! `ip netns` and a veth pair), follow one PostgreSQL table (with NOTIFY) and one AMQP
//! exchange through the host. Inserting a row or publishing a config starts the vassal on
//! all three; deleting the row or publishing an empty body stops it on all three.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/peers.rs"]
mod peers;

use harness::*;
use peers::*;
use std::process::{Command, Stdio};

fn fleet_emperor(s: &Scratch, ns: &NetNs, i: usize, args: &[String]) -> Emperor {
    let log = s.path(&format!("emperor-{i}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, BIN])
        .args(args)
        .current_dir(&s.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .expect("ip netns exec");
    Emperor {
        child,
        log,
        status: None,
    }
}

/// Pids of started vassals (with `tag`) whose parent is one of `emperors`.
fn started_under(s: &Scratch, tag: &str, emperors: &[i32]) -> Vec<(i32, i32)> {
    starts(s)
        .into_iter()
        .filter(|e| e.get("tag") == tag)
        .filter_map(|e| {
            e.get("ppid")
                .parse::<i32>()
                .ok()
                .filter(|p| emperors.contains(p))
                .map(|p| (p, e.pid))
        })
        .collect()
}

fn exited(s: &Scratch, pid: i32) -> bool {
    s.events().iter().any(|e| e.pid == pid && e.event == "exit")
}

#[test]
fn three_emperors_in_namespaces_follow_one_table_and_one_exchange() {
    let s = Scratch::new("fleet");
    let db = PgDb::new("fleet");
    let mq = RabbitVhost::new("fleet");
    // The peers listen on the host's loopback; proxies on every address make them
    // reachable from the namespaces through the veth links.
    let pg_proxy = Proxy::listen_on("0.0.0.0", "127.0.0.1:5432");
    let mq_proxy = Proxy::listen_on("0.0.0.0", "127.0.0.1:5672");
    let nss: Vec<NetNs> = (0..3).map(NetNs::new).collect();
    let mut emperors = Vec::new();
    for (i, ns) in nss.iter().enumerate() {
        let pg = format!(
            "pg://host={} port={} user=postgres dbname={} listen=fleet",
            ns.host_ip, pg_proxy.port, db.name
        );
        let amqp = format!(
            "amqp://{}:{}@{}:{}/{}",
            mq.user, mq.password, ns.host_ip, mq_proxy.port, mq.vhost
        );
        let args: Vec<String> = [
            "--emperor",
            &pg,
            "--emperor",
            &amqp,
            "--binary-path",
            PROBE,
            "--emperor-freq",
            "600",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        emperors.push(fleet_emperor(&s, ns, i, &args));
    }
    for e in &emperors {
        e.wait_log("consuming from the uwsgi.emperor exchange");
        e.wait_log("pg monitor helper started");
    }
    let pids: Vec<i32> = emperors.iter().map(Emperor::pid).collect();

    // A row (with NOTIFY: the poll period is 10 minutes) starts it everywhere.
    let cfg = probe_cfg(&s.probe_log(), "row", "send:1");
    db.sql(&format!(
        "INSERT INTO vassals (name, config) VALUES ('fleet-row.ini', {}); NOTIFY fleet",
        lit(&cfg)
    ));
    wait_until("the row's vassal on all three", || {
        started_under(&s, "row", &pids).len() == 3
    });
    let mut parents: Vec<i32> = started_under(&s, "row", &pids)
        .iter()
        .map(|p| p.0)
        .collect();
    parents.sort();
    let mut want = pids.clone();
    want.sort();
    assert_eq!(parents, want, "one per Emperor");

    // A published config starts it everywhere.
    mq.publish(
        "fleet-msg.ini",
        probe_cfg(&s.probe_log(), "msg", "send:1").as_bytes(),
    );
    wait_until("the message's vassal on all three", || {
        started_under(&s, "msg", &pids).len() == 3
    });

    // Deleting the row and an empty body stop them everywhere.
    db.sql("DELETE FROM vassals; NOTIFY fleet");
    mq.publish("fleet-msg.ini", b"");
    let all: Vec<i32> = started_under(&s, "row", &pids)
        .into_iter()
        .chain(started_under(&s, "msg", &pids))
        .map(|p| p.1)
        .collect();
    assert_eq!(all.len(), 6);
    wait_until("all six stopped", || all.iter().all(|p| exited(&s, *p)));
    for mut e in emperors {
        e.signal(2);
        e.wait_exit();
    }
}
