//! All throttle arithmetic, in milliseconds, in one place.
//!
//! - Per-name backoff (the "blacklist"): a vassal that dies (or is removed) before it was
//!   ever loyal counts one failure. After `n` consecutive failures the next spawn waits
//!   `min((n - 1) * emperor-throttle, emperor-max-throttle)` ms: 0, 1 s, 2 s, ... capped
//!   at 3 min with the defaults. Loyalty (byte 17), SIGURG and the command socket clear it.
//!   uWSGI's version reads the first step as microseconds and halves the delay at the cap
//!   (a saw-tooth); this one is linear and clamped (docs/compat.md).
//! - A global respawn limiter (token bucket) for crash respawns only, so a herd of
//!   vassals crashing together cannot fork-bomb the machine; initial discovery and reloads
//!   are never limited. Its current wait is what stats report as `throttle_level`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The backoff policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub step_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// Delay before the next spawn after `failures` consecutive unloyal deaths.
    pub fn delay_ms(&self, failures: u32) -> u64 {
        if failures <= 1 {
            return 0;
        }
        (u64::from(failures - 1))
            .saturating_mul(self.step_ms)
            .min(self.max_ms)
    }
}

/// One blacklisted name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Consecutive unloyal deaths.
    pub failures: u32,
    /// Wall-clock seconds of the first and the last failure (for stats).
    pub first_attempt: i64,
    pub last_attempt: i64,
    /// When the last failure happened (monotonic).
    pub last_at: Instant,
}

/// The blacklist: names whose vassals died unloyal, and the arithmetic on them.
#[derive(Debug, Clone)]
pub struct Blacklist {
    pub policy: Backoff,
    /// `emperor-no-blacklist`: nothing is ever recorded.
    pub disabled: bool,
    entries: BTreeMap<String, Entry>,
}

impl Blacklist {
    pub fn new(policy: Backoff, disabled: bool) -> Self {
        Blacklist {
            policy,
            disabled,
            entries: BTreeMap::new(),
        }
    }

    /// Records an unloyal death; returns the delay before the next spawn.
    pub fn record_failure(&mut self, name: &str, now: Instant, wall: i64) -> Duration {
        if self.disabled {
            return Duration::ZERO;
        }
        let e = self.entries.entry(name.to_owned()).or_insert(Entry {
            failures: 0,
            first_attempt: wall,
            last_attempt: wall,
            last_at: now,
        });
        e.failures = e.failures.saturating_add(1);
        e.last_attempt = wall;
        e.last_at = now;
        Duration::from_millis(self.policy.delay_ms(e.failures))
    }

    /// When a spawn of `name` is allowed (None: now).
    pub fn allowed_at(&self, name: &str) -> Option<Instant> {
        let e = self.entries.get(name)?;
        let d = self.policy.delay_ms(e.failures);
        if d == 0 {
            None
        } else {
            Some(e.last_at + Duration::from_millis(d))
        }
    }

    /// Current delay of a name in ms (0 when not blacklisted).
    pub fn delay_ms(&self, name: &str) -> u64 {
        self.entries
            .get(name)
            .map(|e| self.policy.delay_ms(e.failures))
            .unwrap_or(0)
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The global crash-respawn limiter: a token bucket.
#[derive(Debug, Clone)]
pub struct RespawnLimiter {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl RespawnLimiter {
    /// `burst` respawns at once, then `per_sec` per second.
    pub fn new(burst: u32, per_sec: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        RespawnLimiter {
            burst,
            per_sec: f64::from(per_sec.max(1)),
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        self.at = now;
    }

    /// Takes a token: Ok when the respawn may happen now, Err(wait) otherwise.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }

    /// The current wait in ms (0 when a respawn may happen now).
    pub fn level_ms(&mut self, now: Instant) -> u64 {
        self.refill(now);
        if self.tokens >= 1.0 {
            0
        } else {
            ((1.0 - self.tokens) / self.per_sec * 1000.0).ceil() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_clamped() {
        let b = Backoff {
            step_ms: 1000,
            max_ms: 180_000,
        };
        assert_eq!(b.delay_ms(0), 0);
        assert_eq!(b.delay_ms(1), 0);
        assert_eq!(b.delay_ms(2), 1000);
        assert_eq!(b.delay_ms(3), 2000);
        assert_eq!(b.delay_ms(181), 180_000);
        assert_eq!(b.delay_ms(10_000), 180_000);
        assert_eq!(b.delay_ms(u32::MAX), 180_000);
        let small = Backoff {
            step_ms: 200,
            max_ms: 1000,
        };
        let gaps: Vec<u64> = (1..9).map(|n| small.delay_ms(n)).collect();
        assert_eq!(gaps, [0, 200, 400, 600, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn blacklist_lifecycle() {
        let t0 = Instant::now();
        let mut bl = Blacklist::new(
            Backoff {
                step_ms: 1000,
                max_ms: 5000,
            },
            false,
        );
        assert_eq!(bl.record_failure("a.ini", t0, 100), Duration::ZERO);
        assert_eq!(bl.allowed_at("a.ini"), None);
        assert_eq!(bl.record_failure("a.ini", t0, 101), Duration::from_secs(1));
        assert_eq!(bl.allowed_at("a.ini"), Some(t0 + Duration::from_secs(1)));
        let e = bl.get("a.ini").unwrap();
        assert_eq!((e.failures, e.first_attempt, e.last_attempt), (2, 100, 101));
        assert!(bl.remove("a.ini"));
        assert_eq!(bl.allowed_at("a.ini"), None);
    }

    #[test]
    fn disabled_blacklist_records_nothing() {
        let mut bl = Blacklist::new(
            Backoff {
                step_ms: 1000,
                max_ms: 5000,
            },
            true,
        );
        for _ in 0..5 {
            assert_eq!(
                bl.record_failure("a.ini", Instant::now(), 0),
                Duration::ZERO
            );
        }
        assert!(bl.is_empty());
    }

    #[test]
    fn limiter_bucket() {
        let t0 = Instant::now();
        let mut l = RespawnLimiter::new(2, 4, t0);
        assert!(l.take(t0).is_ok());
        assert!(l.take(t0).is_ok());
        let wait = l.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(250));
        assert_eq!(l.level_ms(t0), 250);
        assert!(l.take(t0 + Duration::from_millis(250)).is_ok());
    }
}
