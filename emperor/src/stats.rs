//! The Emperor stats document ("Imperial Bureau of Statistics"): every key uWSGI 2.0
//! emits, in its order, so uwsgitop and dashboards keep working, plus imperium's own keys
//! per vassal: `state`, `restarts`, `backoff_ms` and `next_spawn_at` (the backoff deadline,
//! Unix milliseconds, 0 when none), `monitor_type`.

use crate::emperor::Emperor;
use crate::state::Phase;
use serde_json::{Value, json};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn unix_ms_at(at: Instant) -> u64 {
    let now_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = at.saturating_duration_since(Instant::now()).as_millis() as u64;
    now_wall + left
}

impl Emperor {
    /// One vassal's entry in `vassals`.
    fn vassal_value(&self, v: &crate::vassal::Vassal) -> Value {
        let l = &v.life;
        let (backoff_ms, next_spawn_at) = match l.phase {
            Phase::Throttled(t) => (self.blacklist.delay_ms(&v.name), unix_ms_at(t)),
            _ => (self.blacklist.delay_ms(&v.name), 0),
        };
        let monitor = self
            .monitors
            .get(v.monitor)
            .map(|m| m.arg().to_owned())
            .unwrap_or_default();
        json!({
            "id": v.name,
            "pid": v.pid.map(i64::from).unwrap_or(if l.on_demand { -1 } else { 0 }),
            "born": l.born,
            "last_mod": l.last_mod,
            "last_heartbeat": l.last_heartbeat_wall,
            "loyal": u8::from(l.loyal),
            "ready": u8::from(l.ready),
            "accepting": u8::from(l.accepting),
            "last_loyal": l.last_loyal,
            "last_ready": l.last_ready,
            "last_accepting": l.last_accepting,
            "first_run": l.first_run,
            "last_run": l.last_run,
            "cursed": l.cursed_at,
            "zerg": u8::from(v.name.contains(':')),
            "on_demand": v.socket_name.clone().unwrap_or_default(),
            "uid": v.uid,
            "gid": v.gid,
            "monitor": monitor,
            "respawns": l.respawns,
            "state": l.state_name(),
            "restarts": l.restarts,
            "backoff_ms": backoff_ms,
            "next_spawn_at": next_spawn_at,
            "cgroup": self.isolation.usage_json(&v.name),
        })
    }

    /// The document without `vassals` and `blacklist` (its first keys, in order).
    fn stats_head(&mut self) -> Value {
        let cwd = std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        json!({
            "version": imperium_config::VERSION,
            "pid": std::process::id(),
            "uid": nix::unistd::getuid().as_raw(),
            "gid": nix::unistd::getgid().as_raw(),
            "cwd": cwd,
            "emperor": self.monitors.iter().map(|m| m.arg().to_owned()).collect::<Vec<_>>(),
            "emperor_tyrant": u8::from(self.settings.tyrant),
            "throttle_level": self.limiter.level_ms(Instant::now()),
        })
    }

    /// The whole document, one line. Each vassal's entry is built and written in turn, so
    /// a stats request with a thousand vassals allocates one entry at a time instead of a
    /// tree of every entry (which, interleaved with spawns, left the heap fragmented).
    pub fn stats_json(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024 + 480 * self.vassals.len());
        // The head is a non-empty object: reopen it, `{...}` becomes
        // `{...,"vassals":[...],"blacklist":[...]}`.
        if serde_json::to_writer(&mut out, &self.stats_head()).is_ok() && out.ends_with(b"}") {
            out.pop();
            out.push(b',');
        } else {
            out.clear();
            out.push(b'{');
        }
        out.extend_from_slice(b"\"vassals\":[");
        for (i, v) in self.vassals.values().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, &self.vassal_value(v));
        }
        out.extend_from_slice(b"],\"blacklist\":[");
        for (i, (id, e)) in self.blacklist.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let entry = json!({
                "id": id,
                "throttle_level": self.blacklist.policy.delay_ms(e.failures),
                "attempt": e.failures.saturating_sub(1),
                "first_attempt": e.first_attempt,
                "last_attempt": e.last_attempt,
            });
            let _ = serde_json::to_writer(&mut out, &entry);
        }
        out.extend_from_slice(b"]}\n");
        out
    }
}
