//! Which request threads of a worker take work: the duty roster of `threads = N`.
//!
//! Core 0 (the lead) always waits on the worker's epoll set. Cores 1..N are reserves: a
//! reserve joins in only when every core below it has spent [`PATIENCE`] or more inside
//! one request (a slow view, a sleeping or blocked app), and steps back as soon as one of
//! them is free again. So fast requests are all served by one thread, which keeps the GIL
//! with no hand-off to another thread between two requests, and slow ones still get up to
//! N threads at once, each joining 10 to 20 ms after the one below it got stuck.
//!
//! The bookkeeping is two atomic stores per connection on the serving thread. A reserve
//! looks at the roster every `PATIENCE` only while the core just below it is *active* (the
//! lead: not blocked waiting for events; a reserve: on duty), and otherwise sleeps until
//! that core becomes active and wakes it. So an idle worker has no timer wake-ups, and a
//! busy one with fast requests has one every `PATIENCE`, from reserve 1 alone.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread::Thread;
use std::time::Duration;

/// How long every lower core must have been in the same request before a reserve joins,
/// and how often reserve 1 looks while the lead works. (At 2 ms, the wake-ups cost a
/// hello-world worker about 15% of its throughput on a 2-CPU machine.)
pub const PATIENCE: Duration = Duration::from_millis(10);

/// A core's stamp while it waits for work (or, for a reserve, while it is off duty).
const FREE: u64 = 0;

/// One core's entry in the roster.
struct Entry {
    /// [`FREE`], or a stamp that changes with every connection the core serves.
    stamp: AtomicU64,
    /// The lead: not blocked waiting for events; a reserve: on duty.
    active: AtomicBool,
    /// The next core sleeps until this one becomes active.
    next_sleeps: AtomicBool,
}

/// The roster of one worker's request threads.
pub struct Duty {
    cores: Box<[Entry]>,
    /// The reserves' threads (core 1 first), to wake them.
    reserves: OnceLock<Vec<Thread>>,
}

/// What a reserve saw of the cores below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lower(Vec<u64>);

impl Lower {
    /// True when every core below was inside a request.
    pub fn all_busy(&self) -> bool {
        self.0.iter().all(|&s| s != FREE)
    }
}

impl Duty {
    /// A roster for `cores` request threads; the lead starts active.
    pub fn new(cores: usize) -> Duty {
        let cores: Box<[Entry]> = (0..cores.max(1))
            .map(|c| Entry {
                stamp: AtomicU64::new(FREE),
                active: AtomicBool::new(c == 0),
                next_sleeps: AtomicBool::new(false),
            })
            .collect();
        Duty {
            cores,
            reserves: OnceLock::new(),
        }
    }

    /// Records the reserves' threads, core 1 first (before the lead starts serving).
    pub fn set_reserves(&self, threads: Vec<Thread>) {
        let _ = self.reserves.set(threads);
    }

    /// `core` waits for work.
    pub fn free(&self, core: usize) {
        self.cores[core].stamp.store(FREE, SeqCst);
    }

    /// `core` begins serving a connection; `stamp` must differ from the core's previous
    /// one and from 0.
    pub fn begin(&self, core: usize, stamp: u64) {
        self.cores[core].stamp.store(stamp, SeqCst);
    }

    /// `core` becomes active (waking the next core if it sleeps) or inactive.
    pub fn set_active(&self, core: usize, active: bool) {
        let entry = &self.cores[core];
        entry.active.store(active, SeqCst);
        if active
            && entry.next_sleeps.load(SeqCst)
            && let Some(next) = self.reserves.get().and_then(|r| r.get(core))
            && entry.next_sleeps.swap(false, SeqCst)
        {
            next.unpark();
        }
    }

    /// The stamps of the cores below `core`.
    pub fn lower(&self, core: usize) -> Lower {
        Lower(
            self.cores[..core]
                .iter()
                .map(|e| e.stamp.load(SeqCst))
                .collect(),
        )
    }

    /// A reserve's pause between two looks at the roster: `PATIENCE` while the core below
    /// it is active, else until that core becomes active (at most `max`).
    pub fn rest(&self, core: usize, max: Duration) {
        let below = &self.cores[core - 1];
        if below.active.load(SeqCst) {
            std::thread::sleep(PATIENCE);
            return;
        }
        below.next_sleeps.store(true, SeqCst);
        if !below.active.load(SeqCst) {
            std::thread::park_timeout(max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_sees_the_cores_below_it() {
        let d = Duty::new(3);
        assert!(!d.lower(2).all_busy());
        d.begin(0, 1);
        assert!(!d.lower(2).all_busy(), "core 1 is free");
        assert!(d.lower(1).all_busy());
        d.begin(1, 7);
        let seen = d.lower(2);
        assert!(seen.all_busy());
        d.begin(0, 2);
        assert_ne!(d.lower(2), seen, "the lead moved on");
        d.free(0);
        assert!(!d.lower(1).all_busy());
    }

    #[test]
    fn the_lead_wakes_a_sleeping_reserve() {
        let d = std::sync::Arc::new(Duty::new(2));
        let d2 = d.clone();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        d.set_active(0, false);
        let t = std::thread::spawn(move || {
            let _ = wait.recv();
            d2.rest(1, Duration::from_secs(30))
        });
        d.set_reserves(vec![t.thread().clone()]);
        let _ = go.send(());
        // The reserve may not sleep yet: the lead then finds no sleeper, and the reserve
        // sees an active lead and only naps.
        while !t.is_finished() {
            d.set_active(0, true);
            d.set_active(0, false);
            std::thread::yield_now();
        }
        t.join().unwrap();
    }
}
