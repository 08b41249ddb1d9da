//! The Python host and the process model: preload then fork (fork safety, reseeded
//! `random`, post_fork_hook), lazy-apps, request threads, no-master mode (the Plone/Zope
//! shape), mounts with manage-script-name, factories, pythonpath, the `uwsgi` module and
//! uwsgidecorators (seed-python.md A04, A15-A29, A33, A35, B05).

mod python_support;
use python_support::*;
use std::collections::BTreeSet;

fn ids(log: &str, prefix: &str) -> BTreeSet<u64> {
    log.lines()
        .filter_map(|l| {
            l.split(prefix)
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn fork_safety_preloaded_app_with_import_time_thread() {
    let s = Scratch::new("py-fork");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "4",
            "--wsgi-file",
            &app("forksafe.py"),
        ],
    );
    let h = i.port(0);
    i.wait_ready(4);
    let mut randoms = std::collections::BTreeMap::new();
    let mut pids = BTreeSet::new();
    for _ in 0..1000 {
        let j = get(h, "/").json();
        pids.insert(j["pid"].as_i64().unwrap());
        randoms.insert(
            j["pid"].as_i64().unwrap(),
            j["random"].as_f64().unwrap().to_bits(),
        );
        assert_eq!(j["multiprocess"], true);
        assert!(
            !j["threads"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "import-time-thread"),
            "the import-time thread lives only in the master: {j}"
        );
    }
    // Each worker drew its own first random number (reseeded after fork).
    let distinct: BTreeSet<u64> = randoms.values().copied().collect();
    assert_eq!(distinct.len(), randoms.len(), "{randoms:?}");
    let log = i.stderr();
    assert_eq!(
        ids(&log, "post_fork_hook in worker "),
        (1..=4).collect(),
        "{log}"
    );
    assert!(
        log.contains("imported in pid") && log.contains("(worker 0)"),
        "the app is imported in the master: {log}"
    );
    assert_eq!(log.matches("WSGI app 0 (mountpoint='')").count(), 1);
    assert_no_python_errors(&i);
}

#[test]
fn lazy_apps_load_in_each_worker_after_post_fork_hook() {
    let s = Scratch::new("py-lazy");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--lazy-apps",
            "--wsgi-file",
            &app("forksafe.py"),
        ],
    );
    let h = i.port(0);
    i.wait_ready(2);
    i.wait_count("WSGI app 0 (mountpoint='')", 2);
    let log = i.stderr();
    let master = i.pid();
    let app_pids: BTreeSet<i64> = log
        .lines()
        .filter(|l| l.contains("WSGI app 0"))
        .filter_map(|l| l.split("pid: ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(app_pids.len(), 2);
    assert!(
        !app_pids.contains(&(master as i64)),
        "the master must not load the app with lazy-apps"
    );
    assert!(!log.contains("(worker 0)"), "imported in the master: {log}");
    let j = get(h, "/").json();
    // The thread the app started at import runs in the worker.
    assert!(
        j["threads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "import-time-thread"),
        "{j}"
    );
    assert_no_python_errors(&i);
}

#[test]
fn reserve_threads_share_keep_alive_clients_without_losing_a_request() {
    // Eight kept-alive clients, 25 requests each, a one-second request among them: a
    // reserve joins while the thread serving it sleeps, connections move between threads
    // as they are parked and woken, and every request gets its own answer, in order.
    let s = Scratch::new("py-reserves");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--threads",
            "4",
            "--wsgi-file",
            &app("forksafe.py"),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1 (and the only) (pid: ");
    let clients: Vec<_> = (0..8)
        .map(|n| {
            std::thread::spawn(move || {
                use std::io::Write;
                let mut c = std::net::TcpStream::connect(("127.0.0.1", h)).unwrap();
                c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                    .unwrap();
                let mut threads = BTreeSet::new();
                for k in 0..25 {
                    let q = if n == 0 && k == 3 { "sleep" } else { "fast" };
                    write!(c, "GET /?{q} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    let r =
                        read_resp(&mut c, false).expect("a response on the kept-alive connection");
                    assert_eq!(r.status, 200, "client {n} request {k}: {}", r.head);
                    let j: Value = serde_json::from_slice(&r.body).unwrap();
                    threads.insert(j["thread"].as_str().unwrap().to_string());
                }
                threads
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for c in clients {
        seen.extend(c.join().unwrap());
    }
    assert!(
        seen.iter().all(|t| t.starts_with("uWSGIWorker1Core")),
        "{seen:?}"
    );
    assert_no_python_errors(&i);
}

#[test]
fn threads_serve_concurrently_with_uwsgi_names() {
    let s = Scratch::new("py-threads");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--threads",
            "4",
            "--wsgi-file",
            &app("forksafe.py"),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1 (and the only) (pid: ");
    let log = i.stderr();
    assert!(log.contains("*** Operational MODE: threaded ***"), "{log}");
    assert!(log.contains("cores: 4)"), "{log}");
    // Four requests that each sleep one second are served at once: all four are in the
    // app together (each sees the others' threads busy). Checked by names, not by timing.
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(h, "/?sleep").json()))
        .collect();
    let results: Vec<Value> = handles.into_iter().map(|t| t.join().unwrap()).collect();
    let names: BTreeSet<String> = results
        .iter()
        .map(|j| j["thread"].as_str().unwrap().to_string())
        .collect();
    for n in &names {
        assert!(
            [
                "uWSGIWorker1Core0",
                "uWSGIWorker1Core1",
                "uWSGIWorker1Core2",
                "uWSGIWorker1Core3"
            ]
            .contains(&n.as_str()),
            "{n}"
        );
    }
    assert_eq!(names.len(), 4, "four distinct request threads: {names:?}");
    for j in &results {
        assert!((0..4).contains(&j["core"].as_i64().unwrap()));
        assert_eq!(
            (j["multithread"].as_bool(), j["multiprocess"].as_bool()),
            (Some(true), Some(false))
        );
    }
    // Threads are on by default: the import-time thread keeps running in this process
    // (no master, no fork), and `enable-threads = false` is accepted.
    assert_no_python_errors(&i);
}

#[test]
fn plone_shape_no_master_two_protocols() {
    let s = Scratch::new("py-plone");
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("wsgi.py"),
        "import os\ndef application(*args, **kwargs):\n    env, sr = args\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [('zope ' + os.getcwd()).encode()]\n",
    )
    .unwrap();
    std::fs::write(
        s.path("uwsgi.ini"),
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nsocket = 127.0.0.1:0\nchdir = {}\nmodule = wsgi:application\nmaster = false\nenable-threads = true\nprocesses = 1\nthreads = 4\n",
            bin.display()
        ),
    )
    .unwrap();
    let i = start(&s, &["--ini", &s.s("uwsgi.ini")]);
    let (h, u) = (i.port(0), i.port(1));
    i.wait_log("spawned uWSGI worker 1 (and the only)");
    let r = get(h, "/");
    assert_eq!(
        (r.status, r.text()),
        (200, format!("zope {}", bin.display()))
    );
    let r = uwsgi_get_path(u, "/");
    assert_eq!(r.status, 200);
    let log = i.stderr();
    let order = [
        "chdir() to ",
        "uwsgi socket 0 bound to TCP address",
        "uwsgi socket 1 bound to TCP address",
        "Python version: ",
        "Python main interpreter initialized at",
        "python threads support enabled",
        "*** Operational MODE: threaded ***",
        "WSGI app 0 (mountpoint='') ready in",
        "spawned uWSGI worker 1 (and the only) (pid: ",
    ];
    let mut at = 0;
    for needle in order {
        let pos = log[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing or out of order in:\n{log}"));
        at += pos + needle.len();
    }
    assert!(!log.contains("multiple interpreter mode"));
}

#[test]
fn mounts_and_manage_script_name() {
    let s = Scratch::new("py-mounts");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--manage-script-name",
            "--mount",
            &format!("/app1={}", app("mount_a.py")),
            "--mount",
            &format!("/app2/={}", app("mount_b.py")),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    let j = |p: &str| get(h, p).json();
    let r = j("/app1/x/y");
    assert_eq!(
        (
            r["app"].as_str(),
            r["SCRIPT_NAME"].as_str(),
            r["PATH_INFO"].as_str()
        ),
        (Some("a"), Some("/app1"), Some("/x/y"))
    );
    let r = j("/app1");
    assert_eq!(
        (
            r["app"].as_str(),
            r["SCRIPT_NAME"].as_str(),
            r["PATH_INFO"].as_str()
        ),
        (Some("a"), Some("/app1"), Some(""))
    );
    // A24: the trailing slash of a mountpoint is normalised away.
    let r = j("/app2/z");
    assert_eq!(
        (
            r["app"].as_str(),
            r["SCRIPT_NAME"].as_str(),
            r["PATH_INFO"].as_str()
        ),
        (Some("b"), Some("/app2"), Some("/z"))
    );
    // A25: one interpreter, one sys.modules.
    assert_eq!(r["shared"], "mount_a");
    for p in ["/app10", "/other", "/"] {
        let r = j(p);
        assert_eq!(
            (r["app"].as_str(), r["SCRIPT_NAME"].as_str()),
            (Some("a"), Some("")),
            "{p}: the first app is the default"
        );
    }
    let log = i.stderr();
    assert!(
        log.contains(&format!("mounting {} on /app1", app("mount_a.py"))),
        "{log}"
    );
    assert!(log.contains("WSGI app 0 (mountpoint='/app1')") && log.contains("(default app)"));
    assert!(log.contains("WSGI app 1 (mountpoint='/app2')"));
    assert!(!log.contains("multiple interpreter mode"));
}

#[test]
fn factory_pythonpath_and_uwsgi_module() {
    let s = Scratch::new("py-uwsgimod");
    let count = s.s("factory.count");
    let first = s.path("first");
    let second = s.path("second");
    for (d, who) in [(&first, "first"), (&second, "second")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("shadow.py"), format!("WHO = '{who}'\n")).unwrap();
    }
    std::fs::create_dir_all(s.path("globbed-1")).unwrap();
    std::fs::write(
        s.path("uwsgi.ini"),
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nmaster = true\nprocesses = 2\npythonpath = {}\npythonpath = {}\npythonpath = {}\npythonpath = {}\nmodule = pkgfactory.factory:make_app()\nmount = /checks={}\nmanage-script-name = true\nfoo = bar\npyargv = one two three\npidfile = {}\n",
            s.s("globbed-*"),
            first.display(),
            second.display(),
            apps_dir().display(),
            app("checks.py"),
            s.s("pid")
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--ini", &s.s("uwsgi.ini")])
        .env("FACTORY_COUNT_FILE", &count);
    plugin_path();
    let i = Instance::spawn(&s, &mut cmd, "instance.log");
    let h = i.port(0);
    i.wait_ready(2);
    assert_eq!(get(h, "/").text(), "made by the factory");
    assert_eq!(
        std::fs::read_to_string(&count).unwrap().lines().count(),
        1,
        "the factory runs once"
    );
    let log = i.stderr();
    assert!(
        log.contains(&format!("added {} to pythonpath.", s.s("globbed-1"))),
        "{log}"
    );
    assert!(log.contains(&format!("added {} to pythonpath.", second.display())));
    let j = get(h, "/checks/uwsgi").json();
    assert_eq!(j["version"], "2.0.31");
    assert_eq!(j["version_info"], serde_json::json!([2, 0, 31, 0, ""]));
    assert_eq!(
        (
            j["numproc"].as_i64(),
            j["cores"].as_i64(),
            j["buffer_size"].as_i64(),
            j["has_threads"].as_i64()
        ),
        (Some(2), Some(1), Some(4096), Some(1))
    );
    assert!(j["started_on"].as_i64().unwrap() > 1_600_000_000);
    let wid = j["worker_id"].as_i64().unwrap();
    assert!(wid == 1 || wid == 2);
    assert_eq!(j["import_worker_id"], 0, "imported in the master");
    let master: i64 = std::fs::read_to_string(s.path("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(j["masterpid"].as_i64(), Some(master));
    assert!(j["request_id"].is_u64() && j["total_requests"].is_u64());
    assert_eq!(j["opt"]["foo"], "bar");
    assert_eq!(j["opt_types"]["foo"], "bytes");
    assert_eq!(j["opt"]["master"], true);
    assert_eq!(j["opt_types"]["pythonpath"], "list");
    assert_eq!(j["workers"], 2);
    assert_eq!(j["apps"], 2);
    assert_eq!(
        j["argv"],
        serde_json::json!(["uwsgi", "one", "two", "three"])
    );
    assert!(j["sys_path_has_dot"].as_bool().unwrap());
    assert!(j["executable"].as_str().unwrap().ends_with("imperium"));
    assert!(
        j["not_impl"]
            .as_str()
            .unwrap()
            .contains("uwsgi.cache_get() is not implemented yet"),
        "{j}"
    );
    i.wait_log("uwsgi.log says hi");
    // The module in the last-given pythonpath dir shadows the earlier one.
    let out = std::process::Command::new("true").status().unwrap();
    assert!(out.success());
    drop(i);
    let _ = std::fs::remove_file(&count);
}

#[test]
fn worker_ids_post_fork_hook_and_masterless_values() {
    let s = Scratch::new("py-wid");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "3",
            "--wsgi-file",
            &app("forksafe.py"),
        ],
    );
    i.wait_ready(3);
    i.wait_count("post_fork_hook in worker ", 3);
    assert_eq!(
        ids(&i.stderr(), "post_fork_hook in worker "),
        (1..=3).collect()
    );
    // A respawned worker runs the hook again.
    let pid = i.worker_pids(2)[0];
    signal(pid, "KILL");
    i.wait_count("post_fork_hook in worker 2", 2);
    drop(i);
    let s = Scratch::new("py-wid-nomaster");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("checks.py"),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    let j = get(h, "/uwsgi").json();
    assert_eq!(
        (j["worker_id"].as_i64(), j["masterpid"].as_i64()),
        (Some(1), Some(0))
    );
}

#[test]
fn uwsgidecorators_need_a_master_and_run_in_every_worker() {
    let s = Scratch::new("py-deco");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--wsgi-file",
            &app("decorated.py"),
        ],
    );
    let h = i.port(0);
    i.wait_ready(2);
    i.wait_count("decorated postfork in worker ", 2);
    assert_eq!(
        ids(&i.stderr(), "decorated postfork in worker "),
        [1, 2].into_iter().collect()
    );
    let first = get(h, "/").json();
    assert_eq!(first["postfork"], first["wid"]);
    assert_eq!(
        (
            first["locked_inside"].as_bool(),
            first["locked_outside"].as_bool()
        ),
        (Some(true), Some(false))
    );
    wait_until("the @postfork @thread ticker advancing", || {
        get(h, "/").json()["ticks"].as_i64().unwrap() > 3
    });
    drop(i);
    let s = Scratch::new("py-deco-nomaster");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("decorated.py"),
        ],
    );
    i.wait_log("spawned uWSGI worker 1");
    assert!(
        i.stderr()
            .contains("you have to enable the uWSGI master process to use this module")
    );
}

#[test]
fn locks_serialise_workers() {
    let s = Scratch::new("py-locks");
    let counter = s.s("counter");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "--http-socket",
        "127.0.0.1:0",
        "--master",
        "--processes",
        "4",
        "--threads",
        "2",
        "--wsgi-file",
        &app("counter.py"),
    ])
    .env("COUNTER_FILE", &counter);
    plugin_path();
    let i = Instance::spawn(&s, &mut cmd, "instance.log");
    let h = i.port(0);
    i.wait_ready(4);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || (0..5).for_each(|_| assert_eq!(get(h, "/").status, 200)))
        })
        .collect();
    handles.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "4000");
    assert_no_python_errors(&i);
}

#[test]
fn c_extensions_threads_default_executable_and_log_line() {
    let s = Scratch::new("py-misc");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--set",
            "enable-threads=false",
            "--py-executable",
            "/opt/fake/python",
            "--wsgi-file",
            &app("checks.py"),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    let j = get(h, "/uwsgi").json();
    for (name, file) in j["c_extensions"].as_object().unwrap() {
        assert!(
            !file.as_str().unwrap().starts_with("ImportError"),
            "{name}: {file}"
        );
    }
    assert_eq!(j["executable"], "/opt/fake/python");
    // B13: uWSGI's request log line.
    let line = i.wait_log("GET /uwsgi => generated");
    let re_ok = line.starts_with("[pid: ")
        && line.contains("|app: 0|req: ")
        && line.contains(" vars in ")
        && line.contains("(HTTP/1.1 200)")
        && line.contains(" headers in ")
        && line.ends_with("switches on core 0)");
    assert!(re_ok, "{line}");
    drop(i);
    // A bad wsgi-env-behaviour stops the instance.
    let s = Scratch::new("py-envbehaviour");
    let mut i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-env-behaviour",
            "weird",
            "--wsgi-file",
            &app("checks.py"),
        ],
    );
    assert_ne!(i.wait_exit().code(), Some(0));
    assert!(i.stderr().contains("invalid wsgi-env-behaviour value"));
}

/// Serves `file` wrapped in wsgiref.validate and requests `paths`; no validator assertion
/// may reach the log.
fn validated(
    tag: &str,
    file: &str,
    callable: &str,
    extra: &[&str],
    env: &[(&str, String)],
    paths: &[&str],
) {
    let s = Scratch::new(tag);
    let mut args = vec![
        "--http-socket".to_string(),
        "127.0.0.1:0".to_string(),
        "--wsgi-file".to_string(),
        app("validated.py"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(&args)
        .env("VALIDATE_APP", file)
        .env("VALIDATE_CALLABLE", callable);
    for (k, v) in env {
        cmd.env(k, v);
    }
    plugin_path();
    let i = Instance::spawn(&s, &mut cmd, "instance.log");
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    for p in paths {
        let r = get(h, p);
        assert_eq!(r.status, 200, "{file} {p}: {r:?}\n{}", i.stderr());
    }
    assert_no_python_errors(&i);
}

#[test]
fn every_test_app_passes_wsgiref_validate() {
    validated(
        "py-val-fork",
        &app("forksafe.py"),
        "application",
        &["--master", "--processes", "2"],
        &[],
        &["/", "/x"],
    );
    validated(
        "py-val-mount-a",
        &app("mount_a.py"),
        "application",
        &[],
        &[],
        &["/a"],
    );
    validated(
        "py-val-mount-b",
        &app("mount_b.py"),
        "application",
        &[],
        &[],
        &["/b"],
    );
    validated(
        "py-val-deco",
        &app("decorated.py"),
        "application",
        &["--master"],
        &[],
        &["/"],
    );
    let counter = std::env::temp_dir().join(format!("imperium-val-counter-{}", std::process::id()));
    validated(
        "py-val-counter",
        &app("counter.py"),
        "application",
        &["--master"],
        &[("COUNTER_FILE", counter.to_string_lossy().into_owned())],
        &["/"],
    );
    let _ = std::fs::remove_file(counter);
    let count = std::env::temp_dir().join(format!("imperium-val-factory-{}", std::process::id()));
    validated(
        "py-val-factory",
        &app("pkgfactory/factory.py"),
        "make_app()",
        &[],
        &[("FACTORY_COUNT_FILE", count.to_string_lossy().into_owned())],
        &["/"],
    );
    let _ = std::fs::remove_file(count);
}

#[test]
fn no_default_app_harakiri_and_shared_import() {
    // B03: with no-default-app an unmatched path gets the no-app 500.
    let s = Scratch::new("py-nodefault");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--manage-script-name",
            "--no-default-app",
            "--mount",
            &format!("/a={}", app("mount_a.py")),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    assert_eq!(get(h, "/a/x").json()["app"], "a");
    assert_eq!(get(h, "/elsewhere").status, 500);
    drop(i);
    // B09: a request stuck past harakiri is killed and the worker respawned.
    let s = Scratch::new("py-harakiri");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--harakiri",
            "2",
            "--wsgi-file",
            &app("checks.py"),
            "--callable",
            "raw",
        ],
    );
    let h = i.port(0);
    i.wait_ready(1);
    let r = std::panic::catch_unwind(|| get(h, "/sleep?30"));
    assert!(
        r.map(|r| r.status != 200).unwrap_or(true),
        "the stuck request must not get a 200"
    );
    i.wait_log("HARAKIRI ON WORKER 1");
    i.wait_log("Respawned uWSGI worker 1");
    assert_eq!(get(h, "/hello").status, 200);
    drop(i);
    // B16: shared-import runs in the master even with lazy-apps.
    let s = Scratch::new("py-sharedimport");
    std::fs::write(s.path("side_effect.py"), "import os, uwsgi\nuwsgi.log('shared import in pid %d worker %d' % (os.getpid(), uwsgi.worker_id()))\n").unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--lazy-apps",
            "--pythonpath",
            &s.s(""),
            "--shared-import",
            "side_effect",
            "--wsgi-file",
            &app("mount_a.py"),
        ],
    );
    i.wait_ready(2);
    i.wait_count("WSGI app 0", 2);
    let log = i.stderr();
    assert_eq!(log.matches("shared import in pid").count(), 1, "{log}");
    assert!(
        log.contains(&format!("shared import in pid {} worker 0", i.pid())),
        "{log}"
    );
}

#[test]
fn home_that_is_not_a_venv_sets_python_home() {
    // Learn the plugin's own prefix, then pass it as `home`.
    let s = Scratch::new("py-home-probe");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("checks.py"),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    let prefix = get(h, "/uwsgi").json()["prefix"]
        .as_str()
        .unwrap()
        .to_string();
    drop(i);
    let s = Scratch::new("py-home");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--home",
            &prefix,
            "--wsgi-file",
            &app("checks.py"),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    assert!(
        i.stderr().contains(&format!("Set PythonHome to {prefix}")),
        "{}",
        i.stderr()
    );
    assert!(!i.stderr().contains("PEP 405 virtualenv detected"));
    assert_eq!(get(h, "/uwsgi").json()["prefix"], prefix);
    drop(i);
    let s = Scratch::new("py-home-missing");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--home",
            "/nonexistent/python/home",
            "--eval",
            "def application(e, sr):\n    sr('200 OK', [])\n    return [b'x']\n",
        ],
    );
    i.wait_log("!!! Python Home is not a directory: /nonexistent/python/home !!!");
}
