//! The vassal lifecycle: one state machine per vassal, pure (no system calls), so every
//! transition is unit-tested. The Emperor feeds it [`Input`]s (monitor events, protocol
//! bytes, deaths, timers, signals, commands) and carries out the [`Effect`]s it returns
//! (spawn, send a byte, kill, arm the on-demand socket, remove the record, log).
//!
//! ```text
//!            Discovered ──────────────► OnDemandWaiting ◄──────────┐
//!                │                          │ Connection          │ exit after 22
//!                ▼                          ▼                     │
//!   Throttled ─► Starting ─ Spawned ─► Alive ─ stop byte ─► Stopping(after)
//!      ▲                                │  ▲  crash / heartbeat loss   │
//!      └──────── unloyal death ─────────┘  └──── reload (byte 1) ──    ├─► Gone (removed)
//!                                       exit 26 ─► Exiled               ├─► Exiled (22: dormant)
//!                                                                       └─► Held (command stop)
//! ```
//! `Alive` carries the flags uWSGI reports (ready, accepting, loyal) plus `reloading` and
//! whether the protocol pipe is still open ("cursed" when it broke).

use crate::protocol::{self, FromVassal};
use crate::throttle::{Blacklist, RespawnLimiter};
use std::time::{Duration, Instant};

/// What happens once a stopping vassal's process has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Its config is gone (or Ragnarok): delete the record.
    Remove,
    /// Start it again at once (config reappeared, owner changed, respawn command).
    Respawn,
    /// Back to waiting on its on-demand socket (byte 22 of an on-demand vassal).
    OnDemand,
    /// It asked to stop (byte 22): wait for its config to change.
    Dormant,
    /// Stopped from the command socket: wait for a `start` command.
    Hold,
}

/// Why an exiled vassal is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exile {
    /// It exited with code 26.
    ExitCode,
    /// It could not be started at all (binary missing, not executable).
    SpawnImpossible,
    /// It stopped itself (byte 22) without an on-demand socket.
    Voluntary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A spawn was requested; the Emperor reports `Spawned` or `SpawnFailed` next.
    Starting,
    /// A process runs.
    Alive,
    /// A stop was requested; waiting for the process to exit.
    Stopping(AfterStop),
    /// Backoff: the next spawn happens at this instant.
    Throttled(Instant),
    /// On-demand: the socket is armed, no process.
    OnDemandWaiting,
    /// No process until the config changes.
    Exiled(Exile),
    /// No process until a `start` command.
    Held,
    /// The record is to be deleted.
    Gone,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The record was just created from a monitor event.
    Discovered {
        on_demand: bool,
    },
    /// Its config changed (new stamp); `mtime` in Unix seconds.
    ConfigChanged {
        mtime: i64,
    },
    /// Its config disappeared.
    ConfigRemoved,
    /// Stop and start again (tyrant owner change, on-demand mode change).
    Restart,
    /// The spawn requested by [`Effect::Spawn`] worked.
    Spawned,
    /// It did not; `permanent` when retrying cannot help (binary missing).
    SpawnFailed {
        permanent: bool,
    },
    /// A protocol byte.
    Byte(FromVassal),
    /// EOF or error on the protocol pipe.
    PipeClosed,
    /// The process was reaped.
    Exited(ExitStatus),
    /// A deadline from [`Life::next_deadline`] passed.
    Timer,
    /// A client connected to the on-demand socket.
    Connection,
    /// SIGHUP or the `reload` command.
    Reload,
    /// Command socket.
    Stop,
    Start,
    RespawnNow,
    ResetBackoff,
    /// The Emperor is shutting down.
    Ragnarok,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start the process now; answer with `Spawned` or `SpawnFailed`.
    Spawn,
    /// Write one byte on the protocol pipe.
    Send(u8),
    /// SIGKILL the process and its process group.
    Kill,
    /// Push the config again on the config pipe.
    PushConfig,
    /// Watch the on-demand socket for connections.
    ArmOnDemand,
    /// Stop watching it.
    DisarmOnDemand,
    /// Delete the record (and close everything it holds).
    Remove,
    /// A log line (verbose, with the date).
    Log(String),
}

/// The Emperor-wide policy the machine applies.
#[derive(Debug, Clone)]
pub struct Policy {
    pub graceful_shutdown: bool,
    pub curse_tolerance: Duration,
    pub heartbeat: Duration,
}

/// What a transition may read and update besides the vassal itself.
pub struct Ctx<'a> {
    pub now: Instant,
    /// Wall clock, Unix seconds (for the stats' timestamps).
    pub wall: i64,
    pub policy: &'a Policy,
    pub blacklist: &'a mut Blacklist,
    pub limiter: &'a mut RespawnLimiter,
}

/// The lifecycle of one vassal.
#[derive(Debug, Clone)]
pub struct Life {
    pub name: String,
    pub phase: Phase,
    pub on_demand: bool,
    pub ready: bool,
    pub accepting: bool,
    pub loyal: bool,
    pub reloading: bool,
    pub pipe_open: bool,
    pub born: i64,
    pub last_mod: i64,
    pub first_run: i64,
    pub last_run: i64,
    pub last_ready: i64,
    pub last_accepting: i64,
    pub last_loyal: i64,
    pub last_heartbeat_wall: i64,
    pub cursed_at: i64,
    pub last_heartbeat: Option<Instant>,
    pub curse_deadline: Option<Instant>,
    /// Reloads (byte 1 sent), as uWSGI's `respawns`.
    pub respawns: u64,
    /// Process restarts after deaths.
    pub restarts: u64,
    asked_reinforcements: bool,
}

impl Life {
    pub fn new(name: &str, mtime: i64) -> Life {
        Life {
            name: name.to_owned(),
            phase: Phase::Starting,
            on_demand: false,
            ready: false,
            accepting: false,
            loyal: false,
            reloading: false,
            pipe_open: false,
            born: mtime,
            last_mod: mtime,
            first_run: 0,
            last_run: 0,
            last_ready: 0,
            last_accepting: 0,
            last_loyal: 0,
            last_heartbeat_wall: 0,
            cursed_at: 0,
            last_heartbeat: None,
            curse_deadline: None,
            respawns: 0,
            restarts: 0,
            asked_reinforcements: false,
        }
    }

    /// True while a process exists (or is being created).
    pub fn has_process(&self) -> bool {
        matches!(
            self.phase,
            Phase::Starting | Phase::Alive | Phase::Stopping(_)
        )
    }

    /// The state name reported in stats and logs.
    pub fn state_name(&self) -> &'static str {
        match self.phase {
            Phase::Starting => "spawning",
            Phase::Alive if !self.pipe_open => "cursed",
            Phase::Alive if self.reloading => "reloading",
            Phase::Alive if self.loyal => "loyal",
            Phase::Alive if self.accepting => "accepting",
            Phase::Alive if self.ready => "ready",
            Phase::Alive => "spawning",
            Phase::Stopping(_) => "stopping",
            Phase::Throttled(_) => "throttled",
            Phase::OnDemandWaiting => "on-demand",
            Phase::Exiled(_) => "exiled",
            Phase::Held => "stopped",
            Phase::Gone => "removed",
        }
    }

    /// The next instant at which [`Input::Timer`] has something to do.
    pub fn next_deadline(&self, policy: &Policy) -> Option<Instant> {
        match self.phase {
            Phase::Throttled(t) => Some(t),
            Phase::Alive => {
                let hb = self.last_heartbeat.map(|t| t + policy.heartbeat);
                [hb, self.curse_deadline].into_iter().flatten().min()
            }
            Phase::Stopping(_) => self.curse_deadline,
            _ => None,
        }
    }

    /// Applies one input.
    pub fn handle(&mut self, input: Input, ctx: &mut Ctx<'_>) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Discovered { on_demand } => {
                self.on_demand = on_demand;
                if on_demand {
                    self.phase = Phase::OnDemandWaiting;
                    fx.push(Effect::ArmOnDemand);
                } else {
                    self.spawn_unless_blacklisted(ctx, &mut fx);
                }
            }
            Input::ConfigChanged { mtime } => {
                self.last_mod = mtime;
                self.on_config_changed(ctx, &mut fx);
            }
            Input::ConfigRemoved => match self.phase {
                Phase::Alive | Phase::Starting => self.stop(AfterStop::Remove, ctx, &mut fx),
                Phase::Stopping(_) => self.phase = Phase::Stopping(AfterStop::Remove),
                Phase::Gone => {}
                _ => self.remove(&mut fx),
            },
            Input::Restart => match self.phase {
                Phase::Alive | Phase::Starting => self.stop(AfterStop::Respawn, ctx, &mut fx),
                Phase::Stopping(AfterStop::Remove | AfterStop::Dormant | AfterStop::Hold) => {
                    self.phase = Phase::Stopping(AfterStop::Respawn)
                }
                _ => self.on_config_changed(ctx, &mut fx),
            },
            Input::Spawned => {
                self.phase = Phase::Alive;
                self.ready = false;
                self.accepting = false;
                self.loyal = false;
                self.reloading = false;
                self.pipe_open = true;
                self.last_heartbeat = None;
                self.last_heartbeat_wall = 0;
                self.curse_deadline = None;
                self.cursed_at = 0;
                self.asked_reinforcements = false;
                if self.first_run == 0 {
                    self.first_run = ctx.wall;
                }
                self.last_run = ctx.wall;
            }
            Input::SpawnFailed { permanent } => {
                if permanent {
                    self.phase = Phase::Exiled(Exile::SpawnImpossible);
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} cannot be spawned: it stays exiled until its config changes",
                        self.name
                    )));
                } else {
                    let delay = ctx
                        .blacklist
                        .record_failure(&self.name, ctx.now, ctx.wall)
                        .max(Duration::from_secs(1));
                    self.throttle(delay, ctx, &mut fx);
                }
            }
            Input::Byte(b) => self.on_byte(b, ctx, &mut fx),
            Input::PipeClosed => {
                self.pipe_open = false;
                if self.phase == Phase::Alive {
                    self.cursed_at = ctx.wall;
                    self.curse_deadline = Some(ctx.now + ctx.policy.curse_tolerance);
                }
            }
            Input::Exited(status) => self.on_exit(status, ctx, &mut fx),
            Input::Timer => self.on_timer(ctx, &mut fx),
            Input::Connection => {
                if self.phase == Phase::OnDemandWaiting {
                    fx.push(Effect::DisarmOnDemand);
                    self.spawn(&mut fx);
                }
            }
            Input::Reload => {
                if self.phase == Phase::Alive {
                    self.reload(ctx, &mut fx);
                }
            }
            Input::Stop => match self.phase {
                Phase::Alive | Phase::Starting => self.stop(AfterStop::Hold, ctx, &mut fx),
                Phase::Stopping(AfterStop::Respawn | AfterStop::Dormant | AfterStop::OnDemand) => {
                    self.phase = Phase::Stopping(AfterStop::Hold)
                }
                Phase::OnDemandWaiting => {
                    fx.push(Effect::DisarmOnDemand);
                    self.phase = Phase::Held;
                }
                Phase::Throttled(_) | Phase::Exiled(_) => self.phase = Phase::Held,
                _ => {}
            },
            Input::Start => match self.phase {
                Phase::Held | Phase::Exiled(_) | Phase::Throttled(_) => self.wake(&mut fx),
                Phase::Stopping(AfterStop::Hold | AfterStop::Dormant) => {
                    self.phase = Phase::Stopping(AfterStop::Respawn)
                }
                _ => {}
            },
            Input::RespawnNow => match self.phase {
                Phase::Alive => self.stop(AfterStop::Respawn, ctx, &mut fx),
                Phase::Held | Phase::Exiled(_) | Phase::Throttled(_) => self.spawn(&mut fx),
                Phase::OnDemandWaiting => {
                    fx.push(Effect::DisarmOnDemand);
                    self.spawn(&mut fx);
                }
                Phase::Stopping(AfterStop::Hold | AfterStop::Dormant) => {
                    self.phase = Phase::Stopping(AfterStop::Respawn)
                }
                _ => {}
            },
            Input::ResetBackoff => {
                ctx.blacklist.remove(&self.name);
                if let Phase::Throttled(_) = self.phase {
                    self.spawn(&mut fx);
                }
            }
            Input::Ragnarok => match self.phase {
                Phase::Alive | Phase::Starting => {
                    self.stop(AfterStop::Remove, ctx, &mut fx);
                    // Ragnarok has its own deadline (reload-mercy) for everybody.
                    self.curse_deadline = None;
                }
                Phase::Stopping(_) => {
                    self.phase = Phase::Stopping(AfterStop::Remove);
                    self.curse_deadline = None;
                }
                Phase::Gone => {}
                _ => self.remove(&mut fx),
            },
        }
        fx
    }

    fn on_config_changed(&mut self, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        match self.phase {
            Phase::Alive => self.reload(ctx, fx),
            Phase::Stopping(AfterStop::Remove | AfterStop::Dormant) => {
                self.phase = Phase::Stopping(AfterStop::Respawn)
            }
            // A new config deserves a try at once; failures still count.
            Phase::Throttled(_) | Phase::Exiled(_) => self.spawn(fx),
            Phase::OnDemandWaiting => {
                self.ready = false;
                self.accepting = false;
                fx.push(Effect::Log(format!(
                    "[emperor] updated configuration for \"on demand\" instance {}",
                    self.name
                )));
            }
            _ => {}
        }
    }

    fn on_byte(&mut self, b: FromVassal, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        if !matches!(self.phase, Phase::Alive | Phase::Stopping(_)) {
            return;
        }
        match b {
            FromVassal::Ready => {
                self.ready = true;
                self.reloading = false;
                self.last_ready = ctx.wall;
                fx.push(Effect::Log(format!(
                    "[emperor] vassal {} has been spawned",
                    self.name
                )));
            }
            FromVassal::ConfigAgain => fx.push(Effect::PushConfig),
            FromVassal::Accepting => {
                // A reloaded uWSGI master does not send byte 1 again, only 5.
                self.reloading = false;
                self.accepting = true;
                self.last_accepting = ctx.wall;
                fx.push(Effect::Log(format!(
                    "[emperor] vassal {} is ready to accept requests",
                    self.name
                )));
            }
            FromVassal::Loyal => {
                if !self.loyal {
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} is now loyal",
                        self.name
                    )));
                }
                self.loyal = true;
                self.last_loyal = ctx.wall;
                ctx.blacklist.remove(&self.name);
            }
            FromVassal::Heartbeat => {
                self.last_heartbeat = Some(ctx.now);
                self.last_heartbeat_wall = ctx.wall;
            }
            FromVassal::VoluntaryShutdown => {
                if self.phase == Phase::Alive {
                    if self.on_demand {
                        fx.push(Effect::Log(format!(
                            "[emperor] bringing back instance {} to on-demand mode",
                            self.name
                        )));
                        self.stop(AfterStop::OnDemand, ctx, fx);
                    } else {
                        self.stop(AfterStop::Dormant, ctx, fx);
                    }
                }
            }
            FromVassal::Broodlord => {
                if !self.asked_reinforcements {
                    self.asked_reinforcements = true;
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} asks for reinforcements (broodlord is not available yet)",
                        self.name
                    )));
                }
            }
            FromVassal::Unknown(_) => {}
        }
    }

    fn on_exit(&mut self, status: ExitStatus, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        let was_loyal = self.loyal;
        let phase = self.phase;
        self.pipe_open = false;
        self.ready = false;
        self.accepting = false;
        self.reloading = false;
        self.last_heartbeat = None;
        self.curse_deadline = None;
        match phase {
            Phase::Alive | Phase::Starting => {
                if status == ExitStatus::Code(protocol::EXILE_CODE) {
                    self.phase = Phase::Exiled(Exile::ExitCode);
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} exited with code {}: exiled until its config changes",
                        self.name,
                        protocol::EXILE_CODE
                    )));
                    return;
                }
                self.restarts += 1;
                if was_loyal {
                    ctx.blacklist.remove(&self.name);
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} died ({status}): respawning it",
                        self.name
                    )));
                    match ctx.limiter.take(ctx.now) {
                        Ok(()) => self.spawn(fx),
                        Err(wait) => self.throttle(wait, ctx, fx),
                    }
                } else {
                    let delay = ctx.blacklist.record_failure(&self.name, ctx.now, ctx.wall);
                    if let Some(e) = ctx.blacklist.get(&self.name)
                        && e.failures == 3
                    {
                        fx.push(Effect::Log(format!(
                            "[emperor] unloyal bad behaving vassal found: {} throttling it...",
                            self.name
                        )));
                    }
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} died before being loyal ({status}): next spawn in {} ms",
                        self.name,
                        delay.as_millis()
                    )));
                    if delay.is_zero() {
                        match ctx.limiter.take(ctx.now) {
                            Ok(()) => self.spawn(fx),
                            Err(wait) => self.throttle(wait, ctx, fx),
                        }
                    } else {
                        self.throttle(delay, ctx, fx);
                    }
                }
            }
            Phase::Stopping(after) => match after {
                AfterStop::Remove => {
                    if !was_loyal {
                        ctx.blacklist.record_failure(&self.name, ctx.now, ctx.wall);
                    }
                    self.remove(fx);
                }
                AfterStop::Respawn => self.spawn(fx),
                AfterStop::OnDemand => {
                    self.phase = Phase::OnDemandWaiting;
                    fx.push(Effect::ArmOnDemand);
                }
                AfterStop::Dormant => {
                    self.phase = Phase::Exiled(Exile::Voluntary);
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} stopped itself: it restarts when its config changes",
                        self.name
                    )));
                }
                AfterStop::Hold => self.phase = Phase::Held,
            },
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        match self.phase {
            Phase::Throttled(t) if t <= ctx.now => self.spawn(fx),
            Phase::Alive => {
                if let Some(hb) = self.last_heartbeat
                    && hb + ctx.policy.heartbeat <= ctx.now
                {
                    fx.push(Effect::Log(format!(
                        "[emperor] vassal {} sent no heartbeat in last {} seconds, brutally respawning it...",
                        self.name,
                        ctx.policy.heartbeat.as_secs()
                    )));
                    self.last_heartbeat = None;
                    fx.push(Effect::Kill);
                }
                self.curse_check(ctx, fx);
            }
            Phase::Stopping(_) => self.curse_check(ctx, fx),
            _ => {}
        }
    }

    fn curse_check(&mut self, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        if let Some(d) = self.curse_deadline
            && d <= ctx.now
        {
            fx.push(Effect::Log(format!(
                "[emperor] vassal {} did not die within {} seconds: killing it",
                self.name,
                ctx.policy.curse_tolerance.as_secs()
            )));
            fx.push(Effect::Kill);
            self.curse_deadline = Some(ctx.now + ctx.policy.curse_tolerance);
        }
    }

    fn reload(&mut self, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        if !self.pipe_open {
            return;
        }
        fx.push(Effect::Send(protocol::RELOAD));
        self.respawns += 1;
        self.last_run = ctx.wall;
        self.ready = false;
        self.accepting = false;
        self.reloading = true;
        fx.push(Effect::Log(format!(
            "[emperor] reload the uwsgi instance {}",
            self.name
        )));
    }

    fn stop(&mut self, after: AfterStop, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        if self.pipe_open {
            fx.push(Effect::Send(if ctx.policy.graceful_shutdown {
                protocol::GRACEFUL_STOP
            } else {
                protocol::STOP
            }));
        }
        self.phase = Phase::Stopping(after);
        self.cursed_at = ctx.wall;
        self.curse_deadline = Some(ctx.now + ctx.policy.curse_tolerance);
        fx.push(Effect::Log(format!(
            "[emperor] stop the uwsgi instance {}",
            self.name
        )));
    }

    fn spawn(&mut self, fx: &mut Vec<Effect>) {
        self.phase = Phase::Starting;
        fx.push(Effect::Spawn);
    }

    fn spawn_unless_blacklisted(&mut self, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        match ctx.blacklist.allowed_at(&self.name) {
            Some(t) if t > ctx.now => self.phase = Phase::Throttled(t),
            _ => self.spawn(fx),
        }
    }

    fn throttle(&mut self, delay: Duration, ctx: &mut Ctx<'_>, fx: &mut Vec<Effect>) {
        if delay.is_zero() {
            self.spawn(fx);
        } else {
            self.phase = Phase::Throttled(ctx.now + delay);
        }
    }

    fn wake(&mut self, fx: &mut Vec<Effect>) {
        if self.on_demand {
            self.phase = Phase::OnDemandWaiting;
            fx.push(Effect::ArmOnDemand);
        } else {
            self.spawn(fx);
        }
    }

    fn remove(&mut self, fx: &mut Vec<Effect>) {
        if self.phase == Phase::OnDemandWaiting {
            fx.push(Effect::DisarmOnDemand);
        }
        self.phase = Phase::Gone;
        fx.push(Effect::Log(format!(
            "[emperor] removed uwsgi instance {}",
            self.name
        )));
        fx.push(Effect::Remove);
    }
}

#[cfg(test)]
mod tests;
