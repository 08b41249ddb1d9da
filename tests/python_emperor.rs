//! Python vassals under imperium's Emperor: the Emperor never maps libpython, two vassals
//! load two copies of the plugin side by side (from their own `plugins-dir`), and
//! `need-app` + `lazy-apps` with a broken app makes the instance exit 22 (seed-python.md
//! A32, A34).

mod python_support;
use python_support::*;
use std::process::Command;

fn maps(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn emperor_has_no_libpython_and_vassals_pick_their_plugin() {
    let s = Scratch::new("py-emperor");
    let plugin = plugin_path();
    let vassals = s.path("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    let mut ports = Vec::new();
    for (name, file) in [("a", "python311_plugin.so"), ("b", "python3_plugin.so")] {
        let dir = s.path(&format!("plugins-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&plugin, dir.join(file)).unwrap();
        let port = free_port();
        ports.push((port, dir.join(file)));
        let want = if name == "a" { "python311" } else { "python3" };
        std::fs::write(
            vassals.join(format!("{name}.ini")),
            format!("[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nplugins-dir = {}\nplugins = {want}\nwsgi-file = {}\n", dir.display(), app("checks.py")),
        )
        .unwrap();
    }
    let mut cmd = Command::new(BIN);
    cmd.args(["--emperor", &vassals.to_string_lossy()]);
    let i = Instance::spawn(&s, &mut cmd, "emperor.log");
    for (port, so) in &ports {
        wait_until("the vassal answering", || {
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
                && get(*port, "/hello").status == 200
        });
        let j = get(*port, "/uwsgi").json();
        let master = j["masterpid"].as_i64().unwrap();
        assert!(master > 0, "a vassal runs a master under the Emperor");
        let m = maps(master);
        assert!(m.contains("libpython3"), "the vassal maps libpython");
        assert!(
            m.contains(&*so.to_string_lossy()),
            "vassal {master} maps {}:\n{m}",
            so.display()
        );
    }
    let m = maps(i.pid() as i64);
    assert!(!m.is_empty());
    assert!(
        !m.contains("libpython") && !m.contains("imperium_python") && !m.contains("_plugin.so"),
        "the Emperor mapped Python:\n{m}"
    );
}

#[test]
fn need_app_with_lazy_apps_and_a_broken_app_exits_22() {
    let s = Scratch::new("py-lazy-needapp");
    let mut i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--lazy-apps",
            "--need-app",
            "--module",
            "no_such_module_at_all",
        ],
    );
    let st = i.wait_exit();
    assert_eq!(st.code(), Some(22), "{}", i.stderr());
    assert!(i.stderr().contains("*** no app loaded. GAME OVER ***"));
}

#[test]
fn uwsgi_reload_replaces_the_workers_and_keeps_the_socket() {
    let s = Scratch::new("py-reload");
    std::fs::write(
        s.path("reloader.py"),
        "import os, uwsgi\ndef application(e, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    if e['PATH_INFO'] == '/reload':\n        return [repr(uwsgi.reload()).encode()]\n    return [str(os.getpid()).encode()]\n",
    )
    .unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--wsgi-file",
            &s.s("reloader.py"),
        ],
    );
    let h = i.port(0);
    i.wait_ready(1);
    let before = get(h, "/").text();
    assert_eq!(get(h, "/reload").text(), "True");
    i.wait_log("gracefully (RE)spawned uWSGI master process");
    wait_until("a new worker answering", || {
        let r = std::panic::catch_unwind(|| get(h, "/").text());
        r.is_ok_and(|p| p != before && !p.is_empty())
    });
}

#[test]
fn atexit_runs_when_a_worker_ends_gracefully_and_after_req_hook_per_request() {
    let s = Scratch::new("py-atexit");
    std::fs::write(
        s.path("hooks.py"),
        "import uwsgi\ndef _bye():\n    uwsgi.log('atexit in worker %d' % uwsgi.worker_id())\nuwsgi.atexit = _bye\ndef _after():\n    uwsgi.log('after_req_hook ran')\nuwsgi.after_req_hook = _after\ndef application(e, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [b'ok']\n",
    )
    .unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--wsgi-file",
            &s.s("hooks.py"),
        ],
    );
    let h = i.port(0);
    i.wait_ready(2);
    for _ in 0..3 {
        assert_eq!(get(h, "/").text(), "ok");
    }
    i.wait_count("after_req_hook ran", 3);
    i.signal("HUP");
    i.wait_count("atexit in worker ", 2);
}

#[test]
fn py_autoreload_reloads_when_a_module_changes() {
    let s = Scratch::new("py-autoreload");
    std::fs::write(s.path("helper_mod.py"), "VALUE = 1\n").unwrap();
    std::fs::write(s.path("reloadme.py"), "import helper_mod\ndef application(e, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [str(helper_mod.VALUE).encode()]\n").unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--py-autoreload",
            "1",
            "--wsgi-file",
            &s.s("reloadme.py"),
        ],
    );
    let h = i.port(0);
    // py-autoreload implies the master.
    i.wait_ready(1);
    i.wait_log("Python auto-reloader enabled");
    assert_eq!(get(h, "/").text(), "1");
    std::fs::write(s.path("helper_mod.py"), "VALUE = 2\n").unwrap();
    let ok = Command::new("touch")
        .args(["-d", "+1 minute", &s.s("helper_mod.py")])
        .status()
        .unwrap();
    assert!(ok.success());
    i.wait_log(&format!(
        "[uwsgi-python-reloader] module/file {} has been modified",
        s.s("helper_mod.py")
    ));
    i.wait_log("gracefully (RE)spawned uWSGI master process");
    wait_until("the new code served", || {
        std::panic::catch_unwind(|| get(h, "/").text()).is_ok_and(|t| t == "2")
    });
}

#[test]
fn atexit_runs_in_every_worker_on_sigint() {
    let s = Scratch::new("py-atexit-int");
    std::fs::write(
        s.path("hooks.py"),
        "import uwsgi\ndef _bye():\n    uwsgi.log('atexit in worker %d' % uwsgi.worker_id())\nuwsgi.atexit = _bye\ndef application(e, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [b'ok']\n",
    )
    .unwrap();
    let mut i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--wsgi-file",
            &s.s("hooks.py"),
        ],
    );
    let h = i.port(0);
    i.wait_ready(2);
    assert_eq!(get(h, "/").text(), "ok");
    i.signal("INT");
    let st = i.wait_exit();
    assert_eq!(st.code(), Some(0), "{}", i.stderr());
    assert_eq!(i.count("atexit in worker "), 2, "{}", i.stderr());
}

#[test]
fn py_tracebacker_dumps_every_thread() {
    use std::io::Read;
    let s = Scratch::new("py-tb");
    let base = s.s("tb");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--py-tracebacker",
            &base,
            "--wsgi-file",
            &app("checks.py"),
            "--callable",
            "raw",
        ],
    );
    let h = i.port(0);
    i.wait_log(&format!(
        "python tracebacker for worker 1 available on {base}1"
    ));
    let slow = std::thread::spawn(move || get(h, "/sleep?3").status);
    let mut dump = String::new();
    wait_until("a traceback showing the sleeping request", || {
        dump.clear();
        let Ok(mut c) = std::os::unix::net::UnixStream::connect(format!("{base}1")) else {
            return false;
        };
        let _ = c.read_to_string(&mut dump);
        dump.contains("function = raw") && dump.contains("time.sleep")
    });
    assert!(
        dump.starts_with("*** uWSGI Python traceback output ***"),
        "{dump}"
    );
    assert!(dump.contains("thread_id = uWSGIWorker1Core"), "{dump}");
    assert_eq!(slow.join().unwrap(), 200);
}

/// libpython's directory for a Python executable.
fn libdir(python: &str) -> String {
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn two_python_builds_serve_side_by_side() {
    // The second build: the plugin against the system's /usr/bin/python3 (on this machine
    // Debian's 3.11.2 beside pyenv's 3.11.7; on a plain Debian machine the same Python
    // twice), in its own target dir.
    let first = plugin_path();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugin-system");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            "imperium-python",
            "--target-dir",
            &dir.to_string_lossy(),
        ])
        .env("PYO3_PYTHON", "/usr/bin/python3")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = dir.join("debug/libimperium_python.so");
    let s = Scratch::new("py-two-builds");
    let mut vassals = Vec::new();
    for (name, so) in [("a", &first), ("b", &second)] {
        let pdir = s.path(&format!("plugins-{name}"));
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::copy(so, pdir.join("python311_plugin.so")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--http-socket",
            "127.0.0.1:0",
            "--plugins-dir",
            &pdir.to_string_lossy(),
            "--plugin",
            "python311",
            "--wsgi-file",
            &app("checks.py"),
        ]);
        let i = Instance::spawn(&s, &mut cmd, &format!("{name}.log"));
        vassals.push((i, pdir.join("python311_plugin.so")));
    }
    let system_lib = format!("{}/libpython3", libdir("/usr/bin/python3"));
    let mut versions = Vec::new();
    for (i, so) in &vassals {
        let h = i.port(0);
        i.wait_log("spawned uWSGI worker 1");
        let j = get(h, "/uwsgi").json();
        let m = maps(j["pid"].as_i64().unwrap());
        assert!(
            m.contains(&*so.to_string_lossy()),
            "{} not mapped",
            so.display()
        );
        versions.push((
            j["py_version"].as_str().unwrap().to_string(),
            m.contains(&system_lib),
        ));
    }
    assert!(
        versions[1].1,
        "the second vassal runs the system's libpython ({system_lib})"
    );
    eprintln!("side by side: {versions:?}");
}
