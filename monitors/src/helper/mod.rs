//! The monitor helper process: the `imperium` binary re-executed by
//! [`crate::remote::RemoteMonitor`] with `IMPERIUM_MONITOR=<--emperor value>`. It runs one
//! async driver (PostgreSQL, AMQP, ZeroMQ, MongoDB) on a current-thread tokio runtime,
//! keeps its connection open, reconnects with backoff, and writes [`Frame`]s to the pipe
//! that was its stdout (fd 1 is pointed at stderr, so nothing else can corrupt the stream).
//! It dies with the Emperor (`PR_SET_PDEATHSIG`, FreeBSD's `PROC_PDEATHSIG_CTL`) and when the pipe breaks.

pub mod amqp;
pub mod mongo;
pub mod pg;
pub mod zmq;

use crate::MonitorError;
use crate::feed::{Frame, encode};
use crate::remote::{FREQ_ENV, PARENT_ENV};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Checks an `--emperor` value of a helper-backed scheme without connecting anywhere, so a
/// typo stops the Emperor at start-up instead of being retried forever.
pub fn validate(arg: &str) -> Result<(), MonitorError> {
    let scheme = arg.split("://").next().unwrap_or("");
    let bad = |reason: String| MonitorError::BadSpec {
        scheme: scheme.to_owned(),
        reason,
    };
    match scheme {
        "pg" => pg::PgSpec::parse(arg).map(drop).map_err(bad),
        "amqp" | "amqps" => amqp::AmqpSpec::parse(arg).map(drop).map_err(bad),
        "zmq" => zmq::ZmqSpec::parse(arg).map(drop).map_err(bad),
        "mongodb" | "mongodb2" => mongo::MongoSpec::parse(arg).map(drop).map_err(bad),
        _ => Err(MonitorError::UnknownScheme(scheme.to_owned())),
    }
}

/// One log line on stderr (the Emperor's log), in a single write.
pub fn log(scheme: &str, msg: &str) {
    let line = format!("[emperor-{scheme}] {msg}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Where frames go: the pipe to the Emperor. A broken pipe means the Emperor is gone.
pub struct Sink {
    out: File,
}

impl Sink {
    pub fn send(&mut self, f: &Frame) {
        if self.out.write_all(&encode(f)).is_err() {
            // The Emperor closed its end: nothing left to do.
            std::process::exit(0);
        }
    }

    pub fn send_all(&mut self, frames: &[Frame]) {
        let mut buf = Vec::new();
        for f in frames {
            buf.extend_from_slice(&encode(f));
        }
        if self.out.write_all(&buf).is_err() {
            std::process::exit(0);
        }
    }
}

/// Reconnection delays: 0.5 s doubling to 30 s, back to the start after a success.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(500);
    }

    pub async fn wait(&mut self) {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(30));
        tokio::time::sleep(d).await;
    }
}

/// Logs a repeating problem once until it changes or clears.
#[derive(Default)]
pub struct Once {
    last: Option<String>,
}

impl Once {
    pub fn log(&mut self, scheme: &str, msg: String) {
        if self.last.as_deref() != Some(msg.as_str()) {
            log(scheme, &msg);
            self.last = Some(msg);
        }
    }

    pub fn clear(&mut self) -> bool {
        self.last.take().is_some()
    }
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Asks the kernel to SIGKILL this process when its parent (the Emperor) dies.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    #[cfg(target_os = "freebsd")]
    {
        let mut sig: libc::c_int = libc::SIGKILL;
        // SAFETY: PROC_PDEATHSIG_CTL on this process reads one int from `sig`.
        unsafe {
            libc::procctl(
                libc::P_PID,
                0,
                libc::PROC_PDEATHSIG_CTL,
                (&raw mut sig).cast(),
            )
        };
    }
}

/// The helper role's entry point; returns the exit code.
pub fn main(arg: &str) -> i32 {
    let scheme = arg.split("://").next().unwrap_or("").to_owned();
    // Keep the pipe on a private descriptor; fd 1 becomes stderr for any stray print.
    let out = match nix::unistd::dup(std::io::stdout()) {
        Ok(fd) => fd,
        Err(e) => {
            log(&scheme, &format!("dup(): {e}"));
            return 1;
        }
    };
    let _ = nix::unistd::dup2_stdout(std::io::stderr());
    die_with_parent();
    let parent: Option<i32> = std::env::var(PARENT_ENV).ok().and_then(|v| v.parse().ok());
    if parent.is_some_and(|p| nix::unistd::getppid().as_raw() != p) {
        return 0; // the Emperor died before we could ask to die with it
    }
    let freq = std::env::var(FREQ_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .unwrap_or(3000);
    let freq = Duration::from_millis(freq);
    let sink = Sink {
        out: File::from(OwnedFd::from(out)),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log(&scheme, &format!("cannot start the runtime: {e}"));
            return 1;
        }
    };
    let result = match scheme.as_str() {
        "pg" => pg::PgSpec::parse(arg).and_then(|s| rt.block_on(pg::run(s, freq, sink))),
        "amqp" | "amqps" => {
            amqp::AmqpSpec::parse(arg).and_then(|s| rt.block_on(amqp::run(s, sink)))
        }
        "zmq" => zmq::ZmqSpec::parse(arg).and_then(|s| rt.block_on(zmq::run(s, sink))),
        "mongodb" | "mongodb2" => {
            mongo::MongoSpec::parse(arg).and_then(|s| rt.block_on(mongo::run(s, freq, sink)))
        }
        _ => Err(format!("unknown monitor scheme {scheme}://")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            log(&scheme, &e);
            1
        }
    }
}
