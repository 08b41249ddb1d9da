//! Per-worker limits the master or the request path enforce: `reload-on-rss`,
//! `reload-on-as` (graceful recycle once the worker's memory passes the limit and it has
//! lived `min-worker-lifetime`), `evil-reload-on-rss`, `evil-reload-on-as` (SIGKILL at
//! once), and `limit-post` (a request body larger than the limit is refused:
//! [`check_limit_post`], for the request path).

use imperium_config::Config;

/// Memory limits, in bytes (the options are in megabytes); 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryLimits {
    pub rss: u64,
    pub vsz: u64,
    pub evil_rss: u64,
    pub evil_vsz: u64,
}

/// What to do with a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Graceful recycle; the message says why.
    Recycle(&'static str, u64),
    /// SIGKILL now.
    Kill(&'static str, u64),
}

impl MemoryLimits {
    pub fn from_config(config: &Config) -> MemoryLimits {
        let mb = |n: &str| config.int_or(n, 0).unwrap_or(0).max(0) as u64 * 1024 * 1024;
        MemoryLimits {
            rss: mb("reload-on-rss"),
            vsz: mb("reload-on-as"),
            evil_rss: mb("evil-reload-on-rss"),
            evil_vsz: mb("evil-reload-on-as"),
        }
    }

    pub fn any(&self) -> bool {
        *self != MemoryLimits::default()
    }

    /// The worker's own check after each request (uWSGI's `uwsgi_close_request`): true
    /// when `reload-on-as` or `reload-on-rss` is passed (the evil limits are the master's).
    pub fn graceful_due(&self, vsz: u64, rss: u64) -> bool {
        (self.vsz > 0 && vsz >= self.vsz) || (self.rss > 0 && rss >= self.rss)
    }

    /// The verdict for a worker using `(vsz, rss)` bytes.
    pub fn judge(&self, vsz: u64, rss: u64, lived_enough: bool) -> Verdict {
        if self.evil_vsz > 0 && vsz >= self.evil_vsz {
            return Verdict::Kill("ADDRESS SPACE", vsz);
        }
        if self.evil_rss > 0 && rss >= self.evil_rss {
            return Verdict::Kill("RSS", rss);
        }
        if lived_enough && self.vsz > 0 && vsz >= self.vsz {
            return Verdict::Recycle("address space", vsz);
        }
        if lived_enough && self.rss > 0 && rss >= self.rss {
            return Verdict::Recycle("rss", rss);
        }
        Verdict::Fine
    }
}

/// `(vsz, rss)` of a process in bytes, from /proc/<pid>/statm.
pub fn usage(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((it.next()?? * page, it.next()?? * page))
}

/// A request body declared larger than `limit-post`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge {
    pub limit: u64,
    pub declared: u64,
}

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request body of {} bytes over limit-post ({})",
            self.declared, self.limit
        )
    }
}

impl std::error::Error for BodyTooLarge {}

/// `limit-post`: `Err` (and uWSGI's log line) when a declared body length is over the
/// limit (0: no limit). The request path calls this with the request's CONTENT_LENGTH
/// and refuses the request on `Err` (uWSGI closes the connection without a response).
pub fn check_limit_post(limit: u64, content_length: u64) -> Result<(), BodyTooLarge> {
    if limit > 0 && content_length > limit {
        crate::vlog!("Invalid (too big) CONTENT_LENGTH. skip.");
        return Err(BodyTooLarge {
            limit,
            declared: content_length,
        });
    }
    Ok(())
}

/// `limit-post` from the configuration (bytes; 0: none).
pub fn limit_post(config: &Config) -> u64 {
    config.int_or("limit-post", 0).unwrap_or(0).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let l = MemoryLimits {
            rss: 100,
            vsz: 0,
            evil_rss: 0,
            evil_vsz: 1000,
        };
        assert_eq!(l.judge(10, 50, true), Verdict::Fine);
        assert_eq!(l.judge(10, 150, false), Verdict::Fine);
        assert_eq!(l.judge(10, 150, true), Verdict::Recycle("rss", 150));
        assert_eq!(
            l.judge(2000, 1, false),
            Verdict::Kill("ADDRESS SPACE", 2000)
        );
        assert!(check_limit_post(10, 11).is_err());
        assert!(check_limit_post(0, 11).is_ok());
        assert!(usage(std::process::id() as i32).is_some_and(|(v, r)| v > 0 && r > 0));
    }
}
