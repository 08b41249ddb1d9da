//! Deadlines for the event loop: a binary heap with lazy cancellation. Each key has at
//! most one live entry (the earliest requested); an entry that fires early is simply
//! re-armed by its owner with the real deadline, so re-arming on every heartbeat never
//! grows the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A vassal's own deadline (backoff, curse, heartbeat, unmute).
    Vassal(u64),
    /// Full rescan of monitor `n`.
    Rescan(usize),
    /// Send `WATCHDOG=1`.
    Watchdog,
    /// Ragnarok's reload-mercy ran out.
    Mercy,
    /// A stats/command client took too long.
    Conn(u64),
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    armed: HashMap<TimerKey, Instant>,
}

impl Timers {
    /// Arms `key` at `at` unless it is already armed at or before `at`.
    pub fn set(&mut self, key: TimerKey, at: Instant) {
        match self.armed.get(&key) {
            Some(t) if *t <= at => {}
            _ => {
                self.armed.insert(key, at);
                self.heap.push(Reverse((at, key)));
            }
        }
    }

    pub fn cancel(&mut self, key: TimerKey) {
        self.armed.remove(&key);
    }

    fn live(&self, at: Instant, key: TimerKey) -> bool {
        self.armed.get(&key) == Some(&at)
    }

    /// The earliest live deadline.
    pub fn earliest(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if self.live(at, key) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns every key due at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<TimerKey> {
        let mut out = Vec::new();
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.live(at, key) {
                self.armed.remove(&key);
                out.push(key);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_wins_and_cancel_is_lazy() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(TimerKey::Vassal(1), t0 + Duration::from_secs(5));
        t.set(TimerKey::Vassal(1), t0 + Duration::from_secs(9));
        t.set(TimerKey::Vassal(2), t0 + Duration::from_secs(2));
        assert_eq!(t.earliest(), Some(t0 + Duration::from_secs(2)));
        t.cancel(TimerKey::Vassal(2));
        assert_eq!(t.earliest(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(t.due(t0 + Duration::from_secs(6)), [TimerKey::Vassal(1)]);
        assert_eq!(t.earliest(), None);
        // An earlier request replaces a later one.
        t.set(TimerKey::Mercy, t0 + Duration::from_secs(9));
        t.set(TimerKey::Mercy, t0 + Duration::from_secs(3));
        assert_eq!(t.due(t0 + Duration::from_secs(3)), [TimerKey::Mercy]);
        assert!(t.due(t0 + Duration::from_secs(10)).is_empty());
    }
}
