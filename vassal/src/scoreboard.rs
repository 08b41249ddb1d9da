//! The scoreboard: per-worker counters and state in memory shared by the master and its
//! workers (uWSGI's `uwsgi.workers[]`). Workers write their own slot; the master reads
//! every slot for harakiri, respawn decisions and the stats server. Slot 0 holds the
//! instance-wide totals.
//!
//! Each worker also has one [`CoreSlot`] per request thread (uWSGI's
//! `uwsgi.workers[w].cores[c]`): its busy flag, its harakiri deadline (so one stuck thread
//! is caught even while its siblings keep finishing requests) and the method and URI of
//! the request it serves (for SIGUSR2 and harakiri reports), in a fixed-size field.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering, Ordering::Relaxed};

/// Bytes kept of a request's `METHOD URI` in a core's slot (longer URIs are cut).
pub const REQUEST_TEXT: usize = 256;

/// One worker's shared state. Only atomics: the memory is shared across processes.
#[repr(C)]
#[derive(Default)]
pub struct Slot {
    pub pid: AtomicI32,
    /// 1 once the worker runs its accept loop.
    pub accepting: AtomicU32,
    /// How many of the worker's cores are handling a request (0: idle).
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
    pub harakiri_count: AtomicU64,
    /// Unix micros of the start of the latest request.
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

/// One request thread's shared state.
#[repr(C)]
#[derive(Default)]
pub struct CoreSlot {
    /// 1 while the core handles a request.
    pub in_request: AtomicU32,
    /// Even while `text` is stable, odd while the core rewrites it (a sequence lock: the
    /// master retries a read that overlapped a write).
    seq: AtomicU32,
    /// Unix time after which the master kills the worker (0: no deadline).
    pub harakiri: AtomicU64,
    /// Unix micros of the start of the current request.
    pub request_start: AtomicU64,
    /// Requests this core has served since the instance started.
    pub requests: AtomicU64,
    /// Length of the method at the start of `text`, and of all of `text`.
    method_len: AtomicU32,
    text_len: AtomicU32,
    /// `METHOD` then the URI, packed in native-endian words.
    text: [AtomicU64; REQUEST_TEXT / 8],
}

/// The request a core is serving, as SIGUSR2 and harakiri report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRequest {
    pub method: String,
    pub uri: String,
    /// Unix seconds of its start.
    pub since: u64,
}

impl CoreSlot {
    fn set_text(&self, method: &[u8], uri: &[u8]) {
        let mut bytes = [0u8; REQUEST_TEXT];
        let m = method.len().min(REQUEST_TEXT);
        bytes[..m].copy_from_slice(&method[..m]);
        let u = uri.len().min(REQUEST_TEXT - m);
        bytes[m..m + u].copy_from_slice(&uri[..u]);
        self.seq.fetch_add(1, Ordering::AcqRel);
        for (w, chunk) in self.text.iter().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            w.store(u64::from_ne_bytes(word), Relaxed);
        }
        self.method_len.store(m as u32, Relaxed);
        self.text_len.store((m + u) as u32, Relaxed);
        self.seq.fetch_add(1, Ordering::Release);
    }

    fn clear_text(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.text_len.store(0, Relaxed);
        self.method_len.store(0, Relaxed);
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// The request this core serves, if any (read by the master).
    pub fn current(&self) -> Option<CurrentRequest> {
        for _ in 0..64 {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let mut bytes = [0u8; REQUEST_TEXT];
            for (w, chunk) in self.text.iter().zip(bytes.chunks_exact_mut(8)) {
                chunk.copy_from_slice(&w.load(Relaxed).to_ne_bytes());
            }
            let len = (self.text_len.load(Relaxed) as usize).min(REQUEST_TEXT);
            let m = (self.method_len.load(Relaxed) as usize).min(len);
            let since = self.request_start.load(Relaxed) / 1_000_000;
            std::sync::atomic::fence(Ordering::Acquire);
            if self.seq.load(Relaxed) != before {
                continue;
            }
            if len == 0 || self.in_request.load(Relaxed) == 0 {
                return None;
            }
            return Some(CurrentRequest {
                method: String::from_utf8_lossy(&bytes[..m]).into_owned(),
                uri: String::from_utf8_lossy(&bytes[m..len]).into_owned(),
                since,
            });
        }
        None
    }
}

/// The scoreboard of an instance with `workers` workers: slots `1..=workers`, slot 0 for
/// the totals, and `cores` core slots per worker.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    slots: &'static [Slot],
    cores: &'static [CoreSlot],
    per_worker: usize,
}

// SAFETY: both types are `repr(C)` and made only of atomics (and arrays of them), for
// which all-zero bits are a valid value and cross-process mutation is sound.
unsafe impl crate::sys::shm::ShmSafe for Slot {}
// SAFETY: as above.
unsafe impl crate::sys::shm::ShmSafe for CoreSlot {}

impl Scoreboard {
    /// Maps a shared scoreboard (before any fork).
    pub fn shared(workers: usize, cores: usize) -> nix::Result<Scoreboard> {
        let per_worker = cores.max(1);
        Ok(Scoreboard {
            slots: crate::sys::shm::map_slots(workers + 1)?,
            cores: crate::sys::shm::map_slots((workers + 1) * per_worker)?,
            per_worker,
        })
    }

    /// A private scoreboard (unit tests).
    pub fn private(workers: usize) -> Scoreboard {
        Scoreboard::private_with_cores(workers, 1)
    }

    /// A private scoreboard with `cores` cores per worker (unit tests).
    pub fn private_with_cores(workers: usize, cores: usize) -> Scoreboard {
        let per_worker = cores.max(1);
        let v: Vec<Slot> = (0..=workers).map(|_| Slot::default()).collect();
        let c: Vec<CoreSlot> = (0..(workers + 1) * per_worker)
            .map(|_| CoreSlot::default())
            .collect();
        Scoreboard {
            slots: Box::leak(v.into_boxed_slice()),
            cores: Box::leak(c.into_boxed_slice()),
            per_worker,
        }
    }

    /// The slot of worker `id` (1-based), or the totals for 0.
    pub fn slot(&self, id: usize) -> &'static Slot {
        &self.slots[id]
    }

    /// Core `core` (0-based) of worker `id`; cores past the configured count map to the
    /// last one.
    pub fn core(&self, id: usize, core: usize) -> &'static CoreSlot {
        &self.cores[id * self.per_worker + core.min(self.per_worker - 1)]
    }

    /// Cores per worker.
    pub fn cores(&self) -> usize {
        self.per_worker
    }

    /// The number of worker slots.
    pub fn workers(&self) -> usize {
        self.slots.len() - 1
    }

    /// Instance-wide request count.
    pub fn total_requests(&self) -> u64 {
        self.slots[0].requests.load(Relaxed)
    }

    /// Clears worker `id`'s request state (a new or dead process in the slot).
    pub fn reset_requests(&self, id: usize) {
        self.slot(id).in_request.store(0, Relaxed);
        for c in 0..self.per_worker {
            let core = self.core(id, c);
            core.harakiri.store(0, Relaxed);
            core.in_request.store(0, Relaxed);
            core.clear_text();
        }
    }

    /// Clears every harakiri deadline of worker `id` (it is being killed).
    pub fn disarm_harakiri(&self, id: usize) {
        for c in 0..self.per_worker {
            self.core(id, c).harakiri.store(0, Relaxed);
        }
    }

    /// The first core of worker `id` whose harakiri deadline passed before `now` (Unix
    /// seconds).
    pub fn harakiri_due(&self, id: usize, now: u64) -> Option<usize> {
        (0..self.per_worker).find(|&c| {
            let d = self.core(id, c).harakiri.load(Relaxed);
            d > 0 && d < now
        })
    }

    /// Marks the start of a request on core `core` of worker `id`, with a harakiri
    /// deadline and the request's method and URI.
    pub fn begin_request(
        &self,
        id: usize,
        core: usize,
        now_micros: u64,
        harakiri_secs: u64,
        method: &[u8],
        uri: &[u8],
    ) {
        let s = self.slot(id);
        let c = self.core(id, core);
        c.request_start.store(now_micros, Relaxed);
        c.in_request.store(1, Relaxed);
        c.set_text(method, uri);
        if harakiri_secs > 0 {
            c.harakiri
                .store(now_micros / 1_000_000 + harakiri_secs, Relaxed);
        }
        s.request_start.store(now_micros, Relaxed);
        s.in_request.fetch_add(1, Relaxed);
    }

    /// Records the end of a request on core `core`; returns the instance-wide request
    /// count after it.
    pub fn end_request(&self, id: usize, core: usize, now_micros: u64, sent: u64) -> u64 {
        let s = self.slot(id);
        let c = self.core(id, core);
        c.harakiri.store(0, Relaxed);
        let rt = now_micros.saturating_sub(c.request_start.load(Relaxed));
        c.clear_text();
        c.requests.fetch_add(1, Relaxed);
        c.in_request.store(0, Relaxed);
        s.running_time.fetch_add(rt, Relaxed);
        s.tx.fetch_add(sent, Relaxed);
        let n = s.requests.fetch_add(1, Relaxed) + 1;
        s.delta_requests.fetch_add(1, Relaxed);
        let avg = s.avg_rt.load(Relaxed);
        s.avg_rt
            .store(if n <= 1 { rt } else { (avg * (n - 1) + rt) / n }, Relaxed);
        let _ = s
            .in_request
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        self.slots[0].requests.fetch_add(1, Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_accounting() {
        let sb = Scoreboard::private(2);
        sb.begin_request(2, 0, 1_000_000, 5, b"GET", b"/x?y=1");
        assert_eq!(sb.core(2, 0).harakiri.load(Relaxed), 6);
        assert_eq!(sb.slot(2).in_request.load(Relaxed), 1);
        assert_eq!(
            sb.core(2, 0).current(),
            Some(CurrentRequest {
                method: "GET".into(),
                uri: "/x?y=1".into(),
                since: 1
            })
        );
        assert_eq!(sb.end_request(2, 0, 1_000_300, 21), 1);
        assert_eq!(sb.core(2, 0).current(), None);
        let s = sb.slot(2);
        assert_eq!(
            (
                s.requests.load(Relaxed),
                s.tx.load(Relaxed),
                s.avg_rt.load(Relaxed)
            ),
            (1, 21, 300)
        );
        assert_eq!(sb.core(2, 0).harakiri.load(Relaxed), 0);
        assert_eq!(sb.total_requests(), 1);
        assert_eq!(sb.workers(), 2);
    }

    #[test]
    fn harakiri_per_core() {
        let sb = Scoreboard::private_with_cores(1, 2);
        // Core 0 gets stuck; core 1 serves and ends a request meanwhile.
        sb.begin_request(1, 0, 1_000_000, 2, b"GET", b"/stuck");
        sb.begin_request(1, 1, 1_500_000, 2, b"GET", b"/quick");
        sb.end_request(1, 1, 1_600_000, 10);
        assert_eq!(sb.slot(1).in_request.load(Relaxed), 1);
        assert_eq!(sb.harakiri_due(1, 3), None);
        assert_eq!(sb.harakiri_due(1, 4), Some(0));
        let long = "/".repeat(400);
        sb.begin_request(1, 1, 1_700_000, 0, b"POST", long.as_bytes());
        let cur = sb.core(1, 1).current().unwrap();
        assert_eq!((cur.method.len() + cur.uri.len()), REQUEST_TEXT);
        sb.reset_requests(1);
        assert_eq!(sb.harakiri_due(1, 100), None);
        assert_eq!(sb.slot(1).in_request.load(Relaxed), 0);
    }
}
