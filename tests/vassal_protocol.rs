//! The request path without an application, through the real binary: uwsgi packets
//! (answered as uWSGI answers them, oversized/truncated/garbage ones refused and logged,
//! PING), and HTTP/1.1 on http-socket (keep-alive, pipelining, chunked bodies,
//! `Expect: 100-continue`, garbage, oversized heads, short bodies). After every bad input
//! the same single worker goes on serving.

mod vassal_support;

use std::io::Write;
use vassal_support::*;

const NO_APP_11: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nInternal Server Error";
const NO_APP_10: &[u8] = b"HTTP/1.0 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nInternal Server Error";

fn one_worker(s: &Scratch, extra: &[&str]) -> (Instance, Target) {
    let sock = s.s("u.sock");
    let mut args = vec!["--socket", sock.as_str(), "--master", "--processes", "1"];
    args.extend_from_slice(extra);
    let i = Instance::start(s, &args);
    i.wait_ready(1);
    (i, Target::Unix(sock.into()))
}

#[test]
fn uwsgi_request_gets_uwsgis_no_app_answer_and_log_line() {
    let s = Scratch::new("uwsgi-noapp");
    let (i, t) = one_worker(&s, &[]);
    assert_eq!(roundtrip(&t, &uwsgi_get("/hello?x=1")), NO_APP_11);
    // Without SERVER_PROTOCOL the status line says HTTP/1.0, as in uWSGI.
    assert_eq!(
        roundtrip(&t, &uwsgi_packet(&[("REQUEST_METHOD", "GET")])),
        NO_APP_10
    );
    i.wait_log("--- no python application found, check your startup logs for errors ---");
    let line = i.wait_log("|app: -1|req: -1/1]");
    assert!(line.contains(" 10.0.0.1 () {10 vars in "), "{line}");
    assert!(
        line.contains("GET /hello?x=1 => generated 21 bytes in ")
            && line.ends_with("(HTTP/1.1 500) 2 headers in 83 bytes (0 switches on core 0)"),
        "{line}"
    );
}

#[test]
fn oversized_truncated_and_garbage_packets_are_refused_and_the_worker_goes_on() {
    let s = Scratch::new("uwsgi-bad");
    let (i, t) = one_worker(&s, &[]);
    let worker = i.worker_pids(1)[0];

    // A vars block above buffer-size (4096): refused, logged, connection closed.
    let mut big = vec![0u8, 0x00, 0x20, 0]; // 8192
    big.extend(std::iter::repeat_n(b'x', 100));
    assert_eq!(roundtrip(&t, &big), b"");
    i.wait_log("invalid request block size: 8192 (max 4096)...skip");
    // An HTTP request on a uwsgi socket: the classic 21573.
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), b"");
    i.wait_log("invalid request block size: 21573 (max 4096)...skip");
    // A null key, a truncated value, a packet cut short by the client.
    assert_eq!(roundtrip(&t, &uwsgi_packet(&[("", "GET")])), b"");
    i.wait_log("uwsgi key cannot be null. skip this var.");
    assert_eq!(roundtrip(&t, &[0, 5, 0, 0, 1, 0, b'K', 9, 0]), b"");
    i.wait_log("invalid uwsgi request (current strsize: 9). skip.");
    let mut c = connect(&t);
    c.write_all(&[0, 50, 0, 0, 1, 2]).unwrap();
    c.shutdown_write();
    assert_eq!(read_to_close(&mut c), b"");
    // Random bytes.
    assert_eq!(roundtrip(&t, &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]), b"");
    // An unknown modifier.
    let mut m = uwsgi_get("/");
    m[0] = 77;
    assert_eq!(roundtrip(&t, &m), b"");
    i.wait_log("-- unavailable modifier requested: 77 --");

    // The same worker still serves.
    assert_eq!(roundtrip(&t, &uwsgi_get("/")), NO_APP_11);
    assert_eq!(i.worker_pids(1), vec![worker]);
    assert!(alive(worker));
    assert!(!i.stderr().contains("panicked"));
}

#[test]
fn buffer_size_raises_the_limit() {
    let s = Scratch::new("uwsgi-bufsize");
    let (i, t) = one_worker(&s, &["--buffer-size", "32768"]);
    let long = "v".repeat(6000);
    assert_eq!(
        roundtrip(
            &t,
            &uwsgi_packet(&[
                ("REQUEST_METHOD", "GET"),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("HTTP_X_BIG", &long)
            ])
        ),
        NO_APP_11
    );
    assert_eq!(i.count("invalid request block size"), 0);
}

#[test]
fn ping_gets_pong() {
    let s = Scratch::new("uwsgi-ping");
    let (i, t) = one_worker(&s, &[]);
    assert_eq!(roundtrip(&t, &[100, 0, 0, 0]), [100, 0, 0, 1]);
    i.wait_log("PING");
}

fn http_worker(s: &Scratch, extra: &[&str]) -> (Instance, Target) {
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--master",
        "--processes",
        "1",
    ];
    args.extend_from_slice(extra);
    let i = Instance::start(s, &args);
    i.wait_ready(1);
    let port = i.port(0);
    (i, Target::Tcp(format!("127.0.0.1:{port}")))
}

#[test]
fn http_keep_alive_pipelining_chunked_and_continue() {
    let s = Scratch::new("http-ka");
    let (i, t) = http_worker(&s, &[]);
    let mut c = connect(&t);
    // Two requests on one connection, one after the other.
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r1 = read_response(&mut c);
    assert!(
        r1.starts_with("HTTP/1.1 500 Internal Server Error\r\n")
            && r1.ends_with("Internal Server Error"),
        "{r1}"
    );
    c.write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_response(&mut c);
    // Pipelined: three requests in one write, one with a chunked body.
    c.write_all(b"GET /c HTTP/1.1\r\n\r\nPOST /d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nPOST /e HTTP/1.1\r\nContent-Length: 4\r\n\r\nwxyz").unwrap();
    for _ in 0..3 {
        read_response(&mut c);
    }
    // Expect: 100-continue: the interim answer comes before the body is sent.
    c.write_all(b"POST /f HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    std::io::Read::read_exact(&mut c, &mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello").unwrap();
    read_response(&mut c);
    // Connection: close ends it.
    c.write_all(b"GET /g HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_to_close(&mut c), NO_APP_11);
    i.wait_count("--- no python application found", 7);
    for p in ["/a", "/b", "/c", "/d", "/e", "/f", "/g"] {
        assert!(
            i.stderr().contains(&format!(" POST {p} =>"))
                || i.stderr().contains(&format!(" GET {p} =>")),
            "no log line for {p}"
        );
    }
    assert_eq!(i.worker_pids(1).len(), 1);
    // HTTP/1.0 without keep-alive closes after the answer.
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
}

#[test]
fn http_garbage_and_oversized_heads_are_refused_and_the_worker_goes_on() {
    let s = Scratch::new("http-bad");
    let (i, t) = http_worker(&s, &[]);
    let worker = i.worker_pids(1)[0];
    let r = roundtrip(&t, b"garbage\r\n\r\n");
    assert!(
        r.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    i.wait_log("invalid HTTP request from 127.0.0.1: invalid HTTP request line");
    let r = roundtrip(&t, b"\x00\x01\x02\xff\r\n\r\n");
    assert!(r.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    let r = roundtrip(
        &t,
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert!(r.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    let r = roundtrip(&t, b"GET / HTTP/3.0\r\n\r\n");
    assert!(r.starts_with(b"HTTP/1.1 505 "));
    let r = roundtrip(
        &t,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    assert!(
        r.starts_with(b"HTTP/1.1 500 "),
        "a bad chunk is logged and the connection closed after the answer"
    );
    i.wait_log("invalid chunk size in a chunked request body");
    // A head larger than buffer-size.
    let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 5000));
    big.extend_from_slice(b"\r\n\r\n");
    let mut c = connect(&t);
    let _ = c.write_all(&big);
    let r = read_to_close(&mut c);
    assert!(
        r.is_empty() || r.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    i.wait_log("invalid HTTP request size (max 4096)...skip");
    // A client gone in the middle of a head.
    let mut c = connect(&t);
    c.write_all(b"GET / HT").unwrap();
    drop(c);

    let r = roundtrip(&t, b"GET /ok HTTP/1.0\r\n\r\n");
    assert_eq!(r, NO_APP_10);
    assert_eq!(i.worker_pids(1), vec![worker]);
    assert!(!i.stderr().contains("panicked"));
}

#[test]
fn a_body_shorter_than_its_content_length_times_out_and_the_worker_goes_on() {
    let s = Scratch::new("http-short");
    let (i, t) = http_worker(&s, &["--socket-timeout", "1"]);
    let mut c = connect(&t);
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort")
        .unwrap();
    // The worker gives up reading after socket-timeout, answers and closes.
    let r = read_to_close(&mut c);
    assert!(
        r.starts_with(b"HTTP/1.1 500 ") && r.windows(17).any(|w| w == b"Connection: close"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
    assert_eq!(i.worker_pids(1).len(), 1);
}

#[test]
fn a_client_trickling_its_head_is_cut_off_and_the_worker_goes_on() {
    let s = Scratch::new("http-slow");
    let (i, t) = http_worker(&s, &["--socket-timeout", "1"]);
    let mut c = connect(&t);
    c.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    // One byte at a time, each well within socket-timeout, never finishing the head.
    let mut closed = false;
    for _ in 0..400 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if c.write_all(b"a").is_err() {
            closed = true;
            break;
        }
    }
    assert!(
        closed || read_to_close(&mut c).is_empty(),
        "the slow client was never cut off"
    );
    i.wait_log("took more than 2s to send its request head");
    assert_eq!(roundtrip(&t, b"GET / HTTP/1.0\r\n\r\n"), NO_APP_10);
}

#[test]
fn one_thread_serves_many_kept_alive_connections_in_turn() {
    // One worker, one thread, and a socket-timeout far above the test's read timeout: a
    // worker that held each kept-alive connection until its client went quiet for
    // socket-timeout would leave every connection but the first unanswered.
    let s = Scratch::new("http-many-ka");
    let (i, t) = http_worker(&s, &["--socket-timeout", "300"]);
    let mut conns: Vec<Conn> = (0..24).map(|_| connect(&t)).collect();
    for round in 0..3 {
        for (n, c) in conns.iter_mut().enumerate() {
            c.write_all(format!("GET /c{n}r{round} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
        }
        // Answers come back on every connection, in any order of service.
        for c in conns.iter_mut().rev() {
            let r = read_response(c);
            assert!(
                r.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
                "{r}"
            );
        }
    }
    // A head sent in two pieces, with other connections served in between.
    conns[0].write_all(b"GET /split HTTP/1.1\r\nHo").unwrap();
    conns[1]
        .write_all(b"GET /between HTTP/1.1\r\n\r\n")
        .unwrap();
    read_response(&mut conns[1]);
    conns[0].write_all(b"st: x\r\n\r\n").unwrap();
    read_response(&mut conns[0]);
    i.wait_log(" GET /split =>");
    i.wait_count("--- no python application found", 24 * 3 + 2);
    assert_eq!(i.worker_pids(1).len(), 1);
    assert!(!i.stderr().contains("panicked"));
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_socket_timeout() {
    let s = Scratch::new("http-idle-ka");
    let (i, t) = http_worker(&s, &["--socket-timeout", "1"]);
    let mut c = connect(&t);
    c.write_all(b"GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_response(&mut c);
    // Nothing more is sent: the worker closes the connection (EOF, no bytes).
    assert_eq!(read_to_close(&mut c), b"");
    // A client that stops in the middle of a head is cut off and the cut is logged.
    let mut c = connect(&t);
    c.write_all(b"GET /stalled HTTP/1.1\r\n").unwrap();
    assert_eq!(read_to_close(&mut c), b"");
    i.wait_log("the client took more than 2s to send its request head");
    // The worker goes on serving.
    let mut c = connect(&t);
    c.write_all(b"GET /after HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_to_close(&mut c), NO_APP_11);
}

#[test]
fn a_silent_or_slow_uwsgi_client_does_not_hold_the_worker() {
    // socket-timeout far above the test's read timeout: a worker that waited on the
    // silent connection would answer nobody else in time.
    let s = Scratch::new("uwsgi-slow");
    let (i, t) = one_worker(&s, &["--socket-timeout", "300"]);
    let mut silent = connect(&t);
    let packet = uwsgi_get("/late");
    let mut slow = connect(&t);
    slow.write_all(&packet[..7]).unwrap();
    // Others are served meanwhile.
    for _ in 0..3 {
        assert_eq!(roundtrip(&t, &uwsgi_get("/other")), NO_APP_11);
    }
    // The slow packet completes and is answered; the silent client finally speaks too.
    slow.write_all(&packet[7..]).unwrap();
    assert_eq!(read_to_close(&mut slow), NO_APP_11);
    silent.write_all(&uwsgi_get("/silent")).unwrap();
    assert_eq!(read_to_close(&mut silent), NO_APP_11);
    i.wait_log(" GET /late =>");
    i.wait_log(" GET /silent =>");
}
