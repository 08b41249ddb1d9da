//! The CPython plugin serving WSGI apps through the real binary: http-socket and uwsgi
//! socket, the startup lines, the environ, wsgi.input, start_response, close(), the file
//! wrapper, errors, and the response framing (seed-python.md A02-A14). Requests that
//! follow the WSGI rules go through `wsgiref.validate` (the `application` of checks.py).

mod python_support;
use python_support::*;

/// An instance serving checks.py on an http-socket and a uwsgi socket.
fn checks(s: &Scratch, extra: &[&str]) -> (Instance, u16, u16) {
    let close = s.s("close.log");
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &*Box::leak(app("checks.py").into_boxed_str()),
    ];
    args.extend_from_slice(extra);
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(&args).env("CHECKS_CLOSE_FILE", &close);
    plugin_path();
    let i = Instance::spawn(s, &mut cmd, "instance.log");
    let (h, u) = (i.port(0), i.port(1));
    i.wait_log("spawned uWSGI worker 1");
    (i, h, u)
}

#[test]
fn hello_over_http_and_uwsgi_with_startup_lines() {
    let s = Scratch::new("py-hello");
    let (i, h, u) = checks(&s, &["--master", "--processes", "2"]);
    let r = get(h, "/hello");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World"), "{r:?}");
    assert_eq!(r.header("content-length").as_deref(), Some("11"));
    let r = uwsgi_get_path(u, "/hello");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World"), "{r:?}");
    let log = i.stderr();
    for line in [
        "Python version: 3.",
        "Python main interpreter initialized at 0x",
        "python threads support enabled",
        "*** Operational MODE: preforking ***",
        "WSGI app 0 (mountpoint='') ready in 0 seconds on interpreter 0x",
        "(default app)",
        "spawned uWSGI worker 1 (pid: ",
        ", cores: 1)",
    ] {
        assert!(log.contains(line), "{line:?} missing from:\n{log}");
    }
    assert!(
        !log.contains("multiple interpreter mode") && !log.contains("dynamic mode"),
        "{log}"
    );
    assert!(
        log.contains("[pid: ")
            && log.contains("|app: 0|req: ")
            && log.contains("GET /hello => generated 11 bytes"),
        "{log}"
    );
    assert_no_python_errors(&i);
}

#[test]
fn validated_routes_pass_wsgiref_validate() {
    let s = Scratch::new("py-validate");
    let f = s.path("payload.bin");
    std::fs::write(&f, vec![7u8; 100_000]).unwrap();
    let (i, h, u) = checks(&s, &[]);
    for path in [
        "/hello",
        "/environ",
        "/generator",
        "/single-gen",
        "/close-ok",
        "/uwsgi",
    ] {
        assert_eq!(get(h, path).status, 200, "{path}");
        assert_eq!(uwsgi_get_path(u, path).status, 200, "{path}");
    }
    let r = get(h, &format!("/file?{}", f.display()));
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    assert_no_python_errors(&i);
}

#[test]
fn environ_keys_and_types() {
    let s = Scratch::new("py-environ");
    let (i, h, u) = checks(&s, &[]);
    let e = get(h, "/environ/some/path?x=1").json();
    let v = |k: &str| e[k][1].clone();
    let t = |k: &str| e[k][0].as_str().unwrap_or("missing").to_string();
    assert_eq!(v("PATH_INFO"), "/environ/some/path");
    assert_eq!(v("QUERY_STRING"), "x=1");
    assert_eq!(v("REQUEST_URI"), "/environ/some/path?x=1");
    assert_eq!(v("SERVER_PROTOCOL"), "HTTP/1.1");
    assert_eq!(v("SCRIPT_NAME"), "");
    assert_eq!(v("REQUEST_METHOD"), "GET");
    assert_eq!(e["wsgi.version"][1], serde_json::json!([1, 0]));
    assert_eq!(v("wsgi.url_scheme"), "http");
    assert_eq!(v("wsgi.run_once"), false);
    assert_eq!(v("wsgi.multithread"), false);
    assert_eq!(v("wsgi.multiprocess"), false);
    assert_eq!(t("uwsgi.version"), "bytes");
    assert_eq!(t("uwsgi.node"), "bytes");
    assert_eq!(v("uwsgi.node"), e["_uwsgi_hostname"]);
    assert_eq!(t("uwsgi.core"), "missing", "no uwsgi.core without threads");
    assert_eq!(t("wsgi.file_wrapper"), "type");
    for (k, val) in e.as_object().unwrap() {
        if k.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            assert_eq!(val[0], "str", "{k} is not a str");
        }
    }
    // A07: a UTF-8 path arrives as a latin-1 native string.
    let e = get(h, "/caf%C3%A9").json();
    assert_eq!(e["PATH_INFO"][1].as_str().unwrap(), "/caf\u{c3}\u{a9}");
    // Over the uwsgi protocol: whatever the web server sent, plus SCRIPT_NAME.
    let e = uwsgi_get_path(u, "/environ/u?q=2").json();
    assert_eq!(e["PATH_INFO"][1], "/environ/u");
    assert_eq!(e["SCRIPT_NAME"][1], "");
    assert_eq!(e["DOCUMENT_ROOT"][1], "/var/www");
    assert_no_python_errors(&i);
}

#[test]
fn request_body_reads() {
    let s = Scratch::new("py-body");
    let (i, h, _) = checks(&s, &["--wsgi-file", &app("checks.py"), "--callable", "raw"]);
    let r = http(h, "POST", "/post?read", b"a=1");
    let j = r.json();
    assert_eq!(j["chunks"], serde_json::json!(["a=1"]));
    assert_eq!(j["after"], "");
    assert_eq!(j["CONTENT_LENGTH"], "3");
    assert_eq!(j["CONTENT_TYPE"], "application/x-www-form-urlencoded");
    assert_eq!(j["plain"], true);
    let j = http(h, "POST", "/post?readn", b"hello world").json();
    assert_eq!(j["chunks"], serde_json::json!(["hel", "lo w", "orld"]));
    let j = http(h, "POST", "/post?readline", b"one\ntwo\nthree").json();
    assert_eq!(j["chunks"], serde_json::json!(["one\n", "two\n", "three"]));
    let j = http(h, "POST", "/post?iter", b"x\ny\n").json();
    assert_eq!(j["chunks"], serde_json::json!(["x\n", "y\n"]));
    // Without post-buffering, seeking is refused with uWSGI's message.
    let j = http(h, "POST", "/seek", b"hello world").json();
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("seeking wsgi.input without post_buffering is IMPOSSIBLE"),
        "{j}"
    );
    drop(i);
}

#[test]
fn post_buffering_makes_input_seekable_and_spools_big_bodies() {
    let s = Scratch::new("py-postbuf");
    let (_i, h, _) = checks(&s, &["--callable", "raw", "--post-buffering", "4096"]);
    let j = http(h, "POST", "/seek", b"hello world").json();
    assert_eq!(
        (j["first"].as_str(), j["whole"].as_str(), j["tell"].as_u64()),
        (Some("hello"), Some("hello world"), Some(11)),
        "{j}"
    );
    let big: Vec<u8> = (0..1_000_000u32).map(|n| (n % 251) as u8).collect();
    let j = http(h, "POST", "/bigpost", &big).json();
    assert_eq!(j["len"], 1_000_000);
    use std::fmt::Write as _;
    let want = {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        std::io::Write::write_all(out.stdin.as_mut().unwrap(), &big).unwrap();
        let o = out.wait_with_output().unwrap();
        let mut s = String::new();
        let _ = write!(
            s,
            "{}",
            String::from_utf8_lossy(&o.stdout)
                .split(' ')
                .next()
                .unwrap()
        );
        s
    };
    assert_eq!(j["sha"], want);
    // The spool file is unlinked: nothing named imperium-body is left in the temp dir.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("imperium-body"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn file_wrapper_sends_files_and_drains_filelikes() {
    let s = Scratch::new("py-filewrap");
    let f = s.path("payload.bin");
    let data: Vec<u8> = (0..300_000u32).map(|n| (n % 253) as u8).collect();
    std::fs::write(&f, &data).unwrap();
    let (_i, h, u) = checks(&s, &["--callable", "raw"]);
    let r = get(h, &format!("/file?{}", f.display()));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("300000"));
    assert!(r.body == data, "file body differs");
    let r = uwsgi_get_path(u, &format!("/file?{}", f.display()));
    assert!(r.body == data, "file body over uwsgi differs");
    let r = get(h, "/filelike");
    assert_eq!(r.text(), "abcdef");
    let tags = get(h, "/close-count").json();
    assert!(
        tags.as_array().unwrap().iter().any(|t| t == "filelike"),
        "{tags}"
    );
}

#[test]
fn start_response_rules() {
    let s = Scratch::new("py-sr");
    let (_i, h, _) = checks(&s, &["--callable", "raw"]);
    assert_eq!(
        get(h, "/sr-tuple").text(),
        "http headers must be in a python list"
    );
    assert_eq!(get(h, "/sr-status").text(), "http status must be a string");
    let r = get(h, "/sr-twice");
    assert_eq!((r.status, r.text().as_str()), (201, "last wins"));
    let r = get(h, "/sr-late");
    assert_eq!(r.text(), "written headers already sent");
}

#[test]
fn close_is_called_on_success_error_and_disconnect() {
    let s = Scratch::new("py-close");
    let (i, h, _) = checks(&s, &["--callable", "raw"]);
    assert_eq!(get(h, "/close-ok").text(), "ab");
    let _ = std::panic::catch_unwind(|| get(h, "/close-fail"));
    {
        // A client that goes away in the middle of a big response.
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", h)).unwrap();
        c.write_all(b"GET /close-big HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut b = [0u8; 1000];
        let _ = c.read(&mut b);
    }
    wait_until("three close() calls", || {
        let tags = get(h, "/close-count").json();
        let t: Vec<String> = tags
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        ["ok", "fail", "disconnect"]
            .iter()
            .all(|w| t.iter().any(|x| x == w))
    });
    assert!(i.stderr().contains("failing on purpose mid-iteration"));
}

#[test]
fn exception_before_start_response_is_a_500() {
    let s = Scratch::new("py-raise");
    let (i, h, u) = checks(&s, &["--callable", "raw"]);
    let r = get(h, "/raise");
    assert_eq!(r.status, 500, "{r:?}");
    let r = uwsgi_get_path(u, "/raise");
    assert_eq!(r.status, 500, "{r:?}");
    i.wait_log("ValueError: raised before start_response");
    assert!(i.stderr().contains("Traceback"));
    // The worker goes on serving.
    assert_eq!(get(h, "/hello").status, 200);
    drop(i);
    let s = Scratch::new("py-catch");
    let (_i, h, _) = checks(&s, &["--callable", "raw", "--catch-exceptions"]);
    let r = get(h, "/raise");
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("uWSGI exceptions catcher for \"GET /raise\"")
            && r.text().contains("ValueError"),
        "{}",
        r.text()
    );
}

#[test]
fn framing_keepalive_chunked_head() {
    use std::io::Write;
    let s = Scratch::new("py-framing");
    let (_i, h, _) = checks(&s, &["--callable", "raw"]);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", h)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    // Several requests on one connection: known lengths get Content-Length, a generator
    // of several chunks goes chunked, HEAD has no body.
    for (path, method) in [
        ("/hello", "GET"),
        ("/generator", "GET"),
        ("/single-gen", "GET"),
        ("/bytes", "GET"),
        ("/hello", "HEAD"),
        ("/hello", "GET"),
    ] {
        write!(c, "{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_resp(&mut c, method == "HEAD")
            .unwrap_or_else(|| panic!("connection closed before {method} {path}"));
        assert_eq!(r.status, 200, "{path}");
        match (path, method) {
            ("/generator", _) => {
                assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
                assert_eq!(r.text(), "one two three");
            }
            ("/single-gen", _) => assert_eq!(
                (r.header("content-length").as_deref(), r.text().as_str()),
                (Some("10"), "only chunk")
            ),
            ("/bytes", _) => assert_eq!(r.text(), "bare bytes"),
            (_, "HEAD") => assert_eq!(r.header("content-length").as_deref(), Some("11")),
            _ => assert_eq!(r.text(), "Hello World"),
        }
    }
    drop(c);
    // HTTP/1.0 with an unknown length: delimited by the end of the connection.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", h)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    write!(c, "GET /generator HTTP/1.0\r\n\r\n").unwrap();
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.text(), "one two three");
    assert!(r.header("transfer-encoding").is_none());
}

#[test]
fn missing_app_answers_500_and_need_app_exits_22() {
    let s = Scratch::new("py-noapp");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--module",
            "no_such_module_here",
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    let r = get(h, "/");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(r.text(), "Internal Server Error");
    i.wait_log("--- no python application found, check your startup logs for errors ---");
    assert!(
        i.stderr()
            .contains("unable to load app 0 (mountpoint='') (callable not found or import error)")
    );
    assert!(
        i.stderr()
            .contains("*** no app loaded. going in full dynamic mode ***")
    );
    drop(i);
    let s = Scratch::new("py-needapp");
    let mut i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("checks.py"),
            "--callable",
            "nope",
            "--need-app",
        ],
    );
    let st = i.wait_exit();
    assert_eq!(st.code(), Some(22), "{}", i.stderr());
    assert!(i.stderr().contains("*** no app loaded. GAME OVER ***"));
}

#[test]
fn limit_post_refuses_big_bodies_before_the_app() {
    let s = Scratch::new("py-limitpost");
    let (i, h, _) = checks(&s, &["--callable", "raw", "--limit-post", "10"]);
    let r = http(h, "POST", "/post?read", &[b'x'; 100]);
    assert_eq!(r.status, 413, "{r:?}");
    i.wait_log("Invalid (too big) CONTENT_LENGTH. skip.");
    let j = http(h, "POST", "/post?read", b"0123456789").json();
    assert_eq!(j["chunks"], serde_json::json!(["0123456789"]));
}

#[test]
fn eval_defines_the_app() {
    let s = Scratch::new("py-eval");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--eval",
            "def application(e, sr):\n    sr('200 OK', [])\n    return [b'from eval']\n",
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    assert_eq!(get(h, "/").text(), "from eval");
}

#[test]
fn pipelined_requests_and_chunked_request_bodies() {
    use std::io::Write;
    let s = Scratch::new("py-pipeline");
    let (_i, h, _) = checks(&s, &["--callable", "raw"]);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", h)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    // Two requests in one write, the first with a body the app reads only in part.
    c.write_all(b"POST /post?readn HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789abcdefghijGET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(
        r.json()["chunks"],
        serde_json::json!(["012", "3456", "789abcdefghij"])
    );
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.text(), "Hello World");
    // A chunked request body arrives decoded, and the connection goes on.
    c.write_all(b"POST /post?read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").unwrap();
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.json()["chunks"], serde_json::json!(["hello world"]));
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_resp(&mut c, false).unwrap().text(), "Hello World");
    // A body the app does not read at all is drained before the next request.
    c.write_all(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nxxxxxGET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_resp(&mut c, false).unwrap().text(), "Hello World");
    assert_eq!(read_resp(&mut c, false).unwrap().text(), "Hello World");
}

#[test]
fn set_logvar_reaches_log_format() {
    let s = Scratch::new("py-logvar");
    std::fs::write(
        s.path("lv.py"),
        "import uwsgi\ndef application(e, sr):\n    uwsgi.set_logvar('who', 'alice')\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [uwsgi.get_logvar('who').encode()]\n",
    )
    .unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--log-format",
            "LOGLINE %(method) %(uri) %(status) app=%(app) core=%(core) who=%(who)",
            "--wsgi-file",
            &s.s("lv.py"),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    assert_eq!(get(h, "/x").text(), "alice");
    let line = i.wait_log("LOGLINE ");
    assert!(
        line.contains("LOGLINE GET /x 200") && line.ends_with("who=alice"),
        "{line}"
    );
}

#[test]
fn a_streamed_body_reaches_a_client_that_reads_late_whole_and_in_order() {
    // Small chunks go out without the GIL released when the socket takes them at once;
    // what it cannot take is kept and must still arrive first. With threads, so another
    // request runs while this client is not reading.
    let s = Scratch::new("py-stream-late");
    let (_i, h, _) = checks(&s, &["--threads", "2"]);
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", h)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.write_all(b"GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Not reading: the socket buffers fill up while the app streams.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(get(h, "/hello").text(), "Hello World");
    let r = read_resp(&mut c, false).expect("the streamed response");
    assert_eq!(r.status, 200);
    let want: Vec<u8> = (0..40u8)
        .flat_map(|i| std::iter::repeat_n(b'a' + i % 26, 60000))
        .collect();
    assert_eq!(r.body.len(), want.len());
    assert!(r.body == want, "the body arrived out of order");
    // The connection goes on.
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_resp(&mut c, false).unwrap().text(), "Hello World");
}
