//! The CPython plugin's less common options through the real binary: reload-on-exception
//! (and its -type filter), pymodule-alias, wsgi-strict, wsgi-accept-buffer,
//! post-buffering-bufsize, multiapp modules (`applications`), ini-paste, pyrun, python-raw
//! on a raw-socket; and
//! harakiri per request thread with a Python app.

mod python_support;
use python_support::*;
use std::path::PathBuf;
use std::process::Command;

fn options_app(s: &Scratch, extra: &[&str]) -> (Instance, u16) {
    let file = app("options_app.py");
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &file];
    args.extend_from_slice(extra);
    let i = start(s, &args);
    let port = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    (i, port)
}

#[test]
fn reload_on_exception_recycles_the_worker() {
    let s = Scratch::new("py-reload-exc");
    let (i, port) = options_app(&s, &["--master", "--reload-on-exception"]);
    let w1 = i.worker_pids(1)[0];
    assert_eq!(get(port, "/zero").status, 500);
    i.wait_log(&format!("...The work of process {w1} is done. Seeya!"));
    i.wait_log("Respawned uWSGI worker 1");
    let r = get(port, "/");
    assert_eq!(r.status, 200);
    assert_ne!(r.text(), format!("pid {w1}"));
}

#[test]
fn reload_on_exception_type_filters() {
    let s = Scratch::new("py-reload-exc-type");
    let (i, port) = options_app(
        &s,
        &[
            "--master",
            "--reload-on-exception-type",
            "ZeroDivisionError",
        ],
    );
    let w1 = i.worker_pids(1)[0];
    // A ValueError is not in the list: the same worker goes on.
    assert_eq!(get(port, "/value").status, 500);
    assert_eq!(get(port, "/").text(), format!("pid {w1}"));
    assert_eq!(i.count("is done. Seeya!"), 0);
    assert_eq!(get(port, "/zero").status, 500);
    i.wait_log(&format!("...The work of process {w1} is done. Seeya!"));
    i.wait_log("Respawned uWSGI worker 1");
}

#[test]
fn pymodule_alias_maps_modules_and_files() {
    let s = Scratch::new("py-alias");
    std::fs::write(s.path("helper.py"), "WHO = 'helper'\n").unwrap();
    let helper = format!("aliased_helper={}", s.s("helper.py"));
    let (i, port) = options_app(
        &s,
        &[
            "--pymodule-alias",
            "aliased_json=json",
            "--post-pymodule-alias",
            &helper,
        ],
    );
    assert_eq!(get(port, "/alias").text(), "[1] helper");
    i.wait_log("mapped virtual pymodule \"aliased_json\" to real pymodule \"json\"");
    i.wait_log(&format!(
        "mapped virtual pymodule \"aliased_helper\" to real pymodule \"{}\"",
        s.s("helper.py")
    ));
}

#[test]
fn wsgi_strict_iterates_a_bare_bytes_result() {
    let s = Scratch::new("py-strict-off");
    let (_i, port) = options_app(&s, &[]);
    assert_eq!(get(port, "/bytes").text(), "hello");
    let s = Scratch::new("py-strict");
    let (i, port) = options_app(&s, &["--wsgi-strict"]);
    // As in uWSGI: no fast path, so the bytes are iterated as ints, each one refused.
    let r = get(port, "/bytes");
    assert_eq!((r.status, r.text().as_str()), (200, ""));
    i.wait_log("[ERROR] Unhandled object from iterator: 104");
}

#[test]
fn wsgi_accept_buffer_takes_buffer_chunks() {
    let s = Scratch::new("py-buffers-off");
    let (i, port) = options_app(&s, &[]);
    assert_eq!(get(port, "/buffers").text(), "");
    i.wait_log("[ERROR] Unhandled object from iterator: bytearray(b'abc')");
    let s = Scratch::new("py-buffers");
    let (i, port) = options_app(&s, &["--wsgi-accept-buffer"]);
    assert_eq!(get(port, "/buffers").text(), "abcdef");
    assert_eq!(i.count("Unhandled object"), 0);
}

#[test]
fn post_buffering_bufsize_reads_in_small_chunks() {
    let s = Scratch::new("py-pb-bufsize");
    let (_i, port) = options_app(
        &s,
        &["--post-buffering", "1", "--post-buffering-bufsize", "7"],
    );
    let body: Vec<u8> = (0..1000u32).map(|n| b'a' + (n % 26) as u8).collect();
    let r = http(port, "POST", "/echo", &body);
    assert_eq!((r.status, r.body), (200, body));
}

#[test]
fn multiapp_module_mounts_every_app() {
    let s = Scratch::new("py-multiapp");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--module",
            "multiapp",
            "--pythonpath",
            &apps_dir().to_string_lossy(),
            "--manage-script-name",
        ],
    );
    let port = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    i.wait_log("found a multiapp module...");
    i.wait_log("WSGI app 0 (mountpoint='/one') ready");
    i.wait_log("WSGI app 1 (mountpoint='/two') ready");
    assert_eq!(get(port, "/one/x").text(), "first /one /x");
    assert_eq!(get(port, "/two/y").text(), "second /two /y");
    // The first app is the default one.
    assert_eq!(get(port, "/else").text(), "first  /else");
}

#[test]
fn uwsgi_applications_set_at_import() {
    let s = Scratch::new("py-uwsgi-applications");
    std::fs::write(
        s.path("dyn.py"),
        "import uwsgi\n\
         def a(e, sr):\n    sr('200 OK', [])\n    return [b'A']\n\
         def b(e, sr):\n    sr('200 OK', [])\n    return [b'B']\n\
         uwsgi.applications = {'': a, '/b': b}\n",
    )
    .unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &s.s("dyn.py"),
            "--manage-script-name",
        ],
    );
    let port = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    assert_eq!(get(port, "/").text(), "A");
    assert_eq!(get(port, "/b/c").text(), "B");
}

fn pyvenv() -> PathBuf {
    std::env::var_os("IMPERIUM_PYVENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyvenv"))
}

#[test]
fn ini_paste_reads_options_and_the_paste_app() {
    let venv = pyvenv();
    let ok = Command::new(venv.join("bin/python"))
        .args(["-c", "import paste.deploy"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "no paste.deploy in {}", venv.display());
    let s = Scratch::new("py-ini-paste");
    std::fs::write(
        s.path("pasteapp.py"),
        "import logging\n\
         def make_app(global_conf, **local):\n\
         \x20   def app(e, sr):\n\
         \x20       logging.getLogger('pasteapp').warning('served by paste')\n\
         \x20       sr('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20       return [('paste says ' + local.get('greeting', '?')).encode()]\n\
         \x20   return app\n",
    )
    .unwrap();
    std::fs::write(
        s.path("app.ini"),
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nvirtualenv = {}\npythonpath = {}\n\n\
             [app:main]\npaste.app_factory = pasteapp:make_app\ngreeting = hello\n\n\
             [loggers]\nkeys = root\n\n[handlers]\nkeys = file\n\n[formatters]\nkeys = plain\n\n\
             [logger_root]\nlevel = INFO\nhandlers = file\n\n\
             [handler_file]\nclass = FileHandler\nargs = ('{}',)\nformatter = plain\n\n\
             [formatter_plain]\nformat = PASTELOG %(message)s\n",
            venv.display(),
            s.dir.display(),
            s.s("paste.log")
        ),
    )
    .unwrap();
    let i = start(&s, &["--ini-paste-logged", &s.s("app.ini")]);
    let port = i.port(0);
    i.wait_log(&format!(
        "Loading paste environment: config:{}",
        s.s("app.ini")
    ));
    i.wait_log("spawned uWSGI worker 1");
    assert_eq!(get(port, "/").text(), "paste says hello");
    wait_until("the paste logger's file line", || {
        std::fs::read_to_string(s.path("paste.log"))
            .is_ok_and(|l| l.contains("PASTELOG served by paste"))
    });
}

#[test]
fn pyrun_runs_a_script_and_exits() {
    let s = Scratch::new("py-pyrun");
    std::fs::write(
        s.path("script.py"),
        format!(
            "import sys, uwsgi\nopen({:?}, 'w').write('%s %s %s' % (__name__, sys.argv[0], uwsgi.worker_id()))\n",
            s.s("out.txt")
        ),
    )
    .unwrap();
    let mut i = start(
        &s,
        &["--http-socket", "127.0.0.1:0", "--pyrun", &s.s("script.py")],
    );
    assert_eq!(i.wait_exit().code(), Some(0), "{}", i.stderr());
    assert_eq!(
        std::fs::read_to_string(s.path("out.txt")).unwrap(),
        format!("__main__ {} 1", s.s("script.py"))
    );
}

#[test]
fn harakiri_catches_one_stuck_thread_while_another_serves() {
    let s = Scratch::new("py-harakiri-core");
    let (i, port) = options_app(&s, &["--master", "--threads", "2", "--harakiri", "2"]);
    let w1 = i.worker_pids(1)[0];
    let stuck = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read, Write};
        c.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
    });
    wait_until("the sleeping request in SIGUSR2's report", || {
        i.signal("USR2");
        std::thread::sleep(std::time::Duration::from_millis(200));
        i.count("is managing request /sleep") > 0
    });
    // The other thread keeps serving (and ending) requests meanwhile.
    for _ in 0..3 {
        assert_eq!(get(port, "/").text(), format!("pid {w1}"));
    }
    i.wait_log("WAS managing request /sleep since ");
    i.wait_log("HARAKIRI triggered by worker 1 core ");
    i.wait_log("Respawned uWSGI worker 1");
    stuck.join().unwrap();
    assert_ne!(get(port, "/").text(), format!("pid {w1}"));
}

#[test]
fn python_raw_gets_the_connection_of_a_raw_socket() {
    use std::io::{Read, Write};
    let s = Scratch::new("py-raw");
    std::fs::write(
        s.path("raw.py"),
        "import os\n\
         def application(fd):\n\
         \x20   data = os.read(fd, 100)\n\
         \x20   os.write(fd, b'echo:' + data)\n",
    )
    .unwrap();
    let i = start(
        &s,
        &[
            "--raw-socket",
            "127.0.0.1:0",
            "--python-raw",
            &s.s("raw.py"),
            "--master",
            "--stats",
            &s.s("stats.sock"),
        ],
    );
    let port = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.write_all(b"hello").unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"echo:hello");
    let doc = stats(&Target::Unix(s.path("stats.sock")));
    assert_eq!(doc["sockets"][0]["proto"], "raw");
    assert_eq!(doc["workers"][0]["requests"], 1);
}

#[test]
fn harakiri_logs_the_tracebacks_of_the_stuck_worker() {
    let s = Scratch::new("py-harakiri-tb");
    let base = s.s("tb");
    let (i, port) = options_app(
        &s,
        &["--master", "--harakiri", "2", "--py-tracebacker", &base],
    );
    let _stuck = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
    });
    i.wait_log("HARAKIRI triggered by worker 1 core 0 !!!");
    let log = i.stderr();
    let tb = log
        .find("*** uWSGI Python traceback output ***")
        .unwrap_or_else(|| panic!("no traceback before the kill:\n{log}"));
    let kill = log.find("HARAKIRI triggered by worker 1").unwrap();
    assert!(tb < kill, "{log}");
    assert!(
        log[tb..kill].contains("thread_id = uWSGIWorker1Core0")
            && log[tb..kill].contains("function = application line = time.sleep(60)"),
        "{log}"
    );
}

#[test]
fn start_response_nodelay_sends_the_head_at_once() {
    use std::io::{Read, Write};
    let s = Scratch::new("py-nodelay");
    let (_i, port) = options_app(&s, &["--start_response-nodelay"]);
    let flag = s.s("flag");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.write_all(
        format!("GET /nodelay?{flag} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    // The app waits for the flag file before it returns its body: the head is already out.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut b).unwrap(),
            1,
            "{:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    std::fs::write(&flag, "").unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(
        String::from_utf8_lossy(&rest).contains("after the head"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}
