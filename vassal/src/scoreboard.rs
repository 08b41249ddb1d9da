//! The scoreboard: per-worker counters and state in memory shared by the master and its
//! workers (uWSGI's `uwsgi.workers[]`). Workers write their own slot; the master reads
//! every slot for harakiri, respawn decisions and the stats server. Slot 0 holds the
//! instance-wide totals.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

/// One worker's shared state. Only atomics: the memory is shared across processes.
#[repr(C)]
#[derive(Default)]
pub struct Slot {
    pub pid: AtomicI32,
    /// 1 once the worker runs its accept loop.
    pub accepting: AtomicU32,
    /// 1 while a request is being handled.
    pub in_request: AtomicU32,
    /// 1 while the instance is paused (SIGTSTP, FIFO `p`): the worker does not accept.
    pub suspended: AtomicU32,
    /// 0 once the worker decided to stop after this request (max-requests...).
    pub manage_next_request: AtomicU32,
    /// Requests handled by this slot's workers since the instance started.
    pub requests: AtomicU64,
    /// Requests handled by the current process of this slot.
    pub delta_requests: AtomicU64,
    pub exceptions: AtomicU64,
    /// Unix time after which the master kills the worker (0: no deadline).
    pub harakiri: AtomicU64,
    pub harakiri_count: AtomicU64,
    /// Unix micros of the start of the current request.
    pub request_start: AtomicU64,
    /// Micros spent in requests in all.
    pub running_time: AtomicU64,
    /// Bytes sent.
    pub tx: AtomicU64,
    /// Moving average of the response time, micros.
    pub avg_rt: AtomicU64,
    /// Unix time of the last (re)spawn.
    pub last_spawn: AtomicU64,
    pub respawn_count: AtomicU64,
    pub read_errors: AtomicU64,
    pub write_errors: AtomicU64,
}

/// The scoreboard of an instance with `workers` workers: slots `1..=workers`, slot 0 for
/// the totals.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    slots: &'static [Slot],
}

impl Scoreboard {
    /// Maps a shared scoreboard (before any fork).
    pub fn shared(workers: usize) -> nix::Result<Scoreboard> {
        Ok(Scoreboard {
            slots: crate::sys::shm::map_slots(workers + 1)?,
        })
    }

    /// A private scoreboard (unit tests).
    pub fn private(workers: usize) -> Scoreboard {
        let v: Vec<Slot> = (0..=workers).map(|_| Slot::default()).collect();
        Scoreboard {
            slots: Box::leak(v.into_boxed_slice()),
        }
    }

    /// The slot of worker `id` (1-based), or the totals for 0.
    pub fn slot(&self, id: usize) -> &'static Slot {
        &self.slots[id]
    }

    /// The number of worker slots.
    pub fn workers(&self) -> usize {
        self.slots.len() - 1
    }

    /// Instance-wide request count.
    pub fn total_requests(&self) -> u64 {
        self.slots[0].requests.load(Relaxed)
    }

    /// Marks the start of a request in worker `id`'s slot, with a harakiri deadline.
    pub fn begin_request(&self, id: usize, now_micros: u64, harakiri_secs: u64) {
        let s = self.slot(id);
        s.in_request.store(1, Relaxed);
        s.request_start.store(now_micros, Relaxed);
        if harakiri_secs > 0 {
            s.harakiri
                .store(now_micros / 1_000_000 + harakiri_secs, Relaxed);
        }
    }

    /// Records the end of a request; returns the instance-wide request count after it.
    pub fn end_request(&self, id: usize, now_micros: u64, sent: u64) -> u64 {
        let s = self.slot(id);
        s.harakiri.store(0, Relaxed);
        let rt = now_micros.saturating_sub(s.request_start.load(Relaxed));
        s.running_time.fetch_add(rt, Relaxed);
        s.tx.fetch_add(sent, Relaxed);
        let n = s.requests.fetch_add(1, Relaxed) + 1;
        s.delta_requests.fetch_add(1, Relaxed);
        let avg = s.avg_rt.load(Relaxed);
        s.avg_rt
            .store(if n <= 1 { rt } else { (avg * (n - 1) + rt) / n }, Relaxed);
        s.in_request.store(0, Relaxed);
        self.slots[0].requests.fetch_add(1, Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_accounting() {
        let sb = Scoreboard::private(2);
        sb.begin_request(2, 1_000_000, 5);
        assert_eq!(sb.slot(2).harakiri.load(Relaxed), 6);
        assert_eq!(sb.slot(2).in_request.load(Relaxed), 1);
        assert_eq!(sb.end_request(2, 1_000_300, 21), 1);
        let s = sb.slot(2);
        assert_eq!(
            (
                s.requests.load(Relaxed),
                s.tx.load(Relaxed),
                s.avg_rt.load(Relaxed)
            ),
            (1, 21, 300)
        );
        assert_eq!(s.harakiri.load(Relaxed), 0);
        assert_eq!(sb.total_requests(), 1);
        assert_eq!(sb.workers(), 2);
    }
}
