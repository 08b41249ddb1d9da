//! A graceful reload (SIGHUP, and `touch-reload`) under continuous load loses no request:
//! clients keep opening connections and sending requests while the master re-executes
//! itself three times; every request gets a 200 from a Python app, none is refused or
//! cut off. Counts, never timings.

mod python_support;
use python_support::*;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// One request on a new connection; true when a complete 200 came back.
fn one_request(port: u16) -> Result<(), String> {
    let mut c =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    if text.starts_with("HTTP/1.1 200") && text.ends_with("Hello") {
        Ok(())
    } else {
        Err(format!("bad answer: {text:?}"))
    }
}

#[test]
fn graceful_reloads_under_load_lose_no_request() {
    let s = Scratch::new("py-reload-load");
    let app = s.path("hello.py");
    std::fs::write(
        &app,
        "def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'Hello']\n",
    )
    .unwrap();
    let touch = s.path("reload.touch");
    std::fs::write(&touch, "").unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--wsgi-file",
            &app.to_string_lossy(),
            "--touch-reload",
            &touch.to_string_lossy(),
            "--listen",
            "1024",
        ],
    );
    i.wait_ready(2);
    let port = i.port(0);
    one_request(port).expect("the app answers before the load starts");

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match one_request(port) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();

    let served_before = |n: usize| {
        wait_until(&format!("{n} requests served"), || {
            ok.load(Ordering::Relaxed) >= n
        })
    };
    served_before(50);
    for round in 1..=3 {
        if round == 2 {
            // The same graceful reload, asked through touch-reload.
            let f = std::fs::File::options().write(true).open(&touch).unwrap();
            f.set_modified(std::time::SystemTime::now() + Duration::from_secs(round))
                .unwrap();
        } else {
            i.signal("HUP");
        }
        i.wait_count(
            "gracefully (RE)spawned uWSGI master process",
            round as usize,
        );
        let now = ok.load(Ordering::Relaxed);
        served_before(now + 50);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across 3 reloads: {:?}",
        failures.len(),
        ok.load(Ordering::Relaxed) + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        i.count("binary reloading uWSGI") >= 3,
        "three reloads happened: {}",
        i.stderr()
    );
}
