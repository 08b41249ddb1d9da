//! Transition tests of the vassal state machine.

use super::*;
use crate::throttle::Backoff;

struct World {
    now: Instant,
    policy: Policy,
    blacklist: Blacklist,
    limiter: RespawnLimiter,
}

impl World {
    fn new() -> World {
        let now = Instant::now();
        World {
            now,
            policy: Policy {
                graceful_shutdown: false,
                curse_tolerance: Duration::from_secs(30),
                heartbeat: Duration::from_secs(30),
            },
            blacklist: Blacklist::new(
                Backoff {
                    step_ms: 1000,
                    max_ms: 5000,
                },
                false,
            ),
            limiter: RespawnLimiter::new(100, 100, now),
        }
    }

    fn feed(&mut self, life: &mut Life, input: Input) -> Vec<Effect> {
        let mut ctx = Ctx {
            now: self.now,
            wall: 1000,
            policy: &self.policy,
            blacklist: &mut self.blacklist,
            limiter: &mut self.limiter,
        };
        let fx = life.handle(input, &mut ctx);
        // The Emperor answers a spawn at once.
        if fx.contains(&Effect::Spawn) {
            let mut ctx = Ctx {
                now: self.now,
                wall: 1000,
                policy: &self.policy,
                blacklist: &mut self.blacklist,
                limiter: &mut self.limiter,
            };
            life.handle(Input::Spawned, &mut ctx);
        }
        fx
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

fn no_logs(fx: Vec<Effect>) -> Vec<Effect> {
    fx.into_iter()
        .filter(|e| !matches!(e, Effect::Log(_)))
        .collect()
}

fn running(w: &mut World) -> Life {
    let mut l = Life::new("a.ini", 5);
    let fx = w.feed(&mut l, Input::Discovered { on_demand: false });
    assert_eq!(no_logs(fx), [Effect::Spawn]);
    assert_eq!(l.phase, Phase::Alive);
    l
}

#[test]
fn discovery_spawns_and_bytes_set_flags() {
    let mut w = World::new();
    let mut l = running(&mut w);
    assert_eq!(l.state_name(), "spawning");
    w.feed(&mut l, Input::Byte(FromVassal::Ready));
    assert_eq!(l.state_name(), "ready");
    w.feed(&mut l, Input::Byte(FromVassal::Accepting));
    assert_eq!(l.state_name(), "accepting");
    w.feed(&mut l, Input::Byte(FromVassal::Loyal));
    assert_eq!(l.state_name(), "loyal");
    assert!(l.ready && l.accepting && l.loyal);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Byte(FromVassal::ConfigAgain))),
        [Effect::PushConfig]
    );
    assert!(no_logs(w.feed(&mut l, Input::Byte(FromVassal::Unknown(99)))).is_empty());
    assert_eq!(l.phase, Phase::Alive);
}

#[test]
fn change_reloads_gracefully() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::Byte(FromVassal::Ready));
    let fx = no_logs(w.feed(&mut l, Input::ConfigChanged { mtime: 9 }));
    assert_eq!(fx, [Effect::Send(protocol::RELOAD)]);
    assert_eq!(
        (l.respawns, l.last_mod, l.state_name()),
        (1, 9, "reloading")
    );
    w.feed(&mut l, Input::Byte(FromVassal::Ready));
    assert_eq!(l.state_name(), "ready");
}

#[test]
fn removal_stops_then_removes() {
    let mut w = World::new();
    let mut l = running(&mut w);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::ConfigRemoved)),
        [Effect::Send(protocol::STOP)]
    );
    assert_eq!(l.phase, Phase::Stopping(AfterStop::Remove));
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(0)))),
        [Effect::Remove]
    );
    assert_eq!(l.phase, Phase::Gone);
}

#[test]
fn graceful_shutdown_sends_two() {
    let mut w = World::new();
    w.policy.graceful_shutdown = true;
    let mut l = running(&mut w);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::ConfigRemoved)),
        [Effect::Send(protocol::GRACEFUL_STOP)]
    );
}

#[test]
fn config_back_while_stopping_respawns() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::ConfigRemoved);
    w.feed(&mut l, Input::ConfigChanged { mtime: 7 });
    assert_eq!(l.phase, Phase::Stopping(AfterStop::Respawn));
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(0)))),
        [Effect::Spawn]
    );
    assert_eq!(l.phase, Phase::Alive);
}

#[test]
fn crash_of_loyal_vassal_respawns_at_once() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::Byte(FromVassal::Loyal));
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Signal(9)))),
        [Effect::Spawn]
    );
    assert_eq!((l.phase, l.restarts, l.loyal), (Phase::Alive, 1, false));
    assert!(w.blacklist.is_empty());
}

#[test]
fn unloyal_crashes_back_off_linearly_and_clamp() {
    let mut w = World::new();
    let mut l = running(&mut w);
    let mut delays = Vec::new();
    for _ in 0..9 {
        let fx = no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(1))));
        match l.phase {
            Phase::Alive => {
                assert_eq!(fx, [Effect::Spawn]);
                delays.push(0)
            }
            Phase::Throttled(t) => {
                assert!(fx.is_empty());
                let d = t - w.now;
                delays.push(d.as_millis() as u64);
                w.advance(d);
                assert_eq!(no_logs(w.feed(&mut l, Input::Timer)), [Effect::Spawn]);
            }
            p => panic!("unexpected {p:?}"),
        }
    }
    assert_eq!(delays, [0, 1000, 2000, 3000, 4000, 5000, 5000, 5000, 5000]);
    // Loyalty clears the blacklist.
    w.feed(&mut l, Input::Byte(FromVassal::Loyal));
    assert!(w.blacklist.is_empty());
}

#[test]
fn exit_26_exiles_until_config_changes() {
    let mut w = World::new();
    let mut l = running(&mut w);
    assert!(no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(26)))).is_empty());
    assert_eq!(l.phase, Phase::Exiled(Exile::ExitCode));
    assert!(no_logs(w.feed(&mut l, Input::Timer)).is_empty());
    assert_eq!(
        no_logs(w.feed(&mut l, Input::ConfigChanged { mtime: 8 })),
        [Effect::Spawn]
    );
    assert_eq!(l.phase, Phase::Alive);
}

#[test]
fn exiled_and_removed_is_gone() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::Exited(ExitStatus::Code(26)));
    assert_eq!(
        no_logs(w.feed(&mut l, Input::ConfigRemoved)),
        [Effect::Remove]
    );
}

#[test]
fn curse_kills_after_tolerance_and_repeats() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::ConfigRemoved);
    let d = l.next_deadline(&w.policy).unwrap();
    assert_eq!(d - w.now, Duration::from_secs(30));
    w.advance(Duration::from_secs(29));
    assert!(no_logs(w.feed(&mut l, Input::Timer)).is_empty());
    w.advance(Duration::from_secs(1));
    assert_eq!(no_logs(w.feed(&mut l, Input::Timer)), [Effect::Kill]);
    assert_eq!(
        l.next_deadline(&w.policy),
        Some(w.now + Duration::from_secs(30))
    );
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Signal(9)))),
        [Effect::Remove]
    );
}

#[test]
fn heartbeat_enforced_only_after_the_first() {
    let mut w = World::new();
    let mut l = running(&mut w);
    assert_eq!(l.next_deadline(&w.policy), None);
    w.advance(Duration::from_secs(100));
    assert!(no_logs(w.feed(&mut l, Input::Timer)).is_empty());
    w.feed(&mut l, Input::Byte(FromVassal::Heartbeat));
    assert_eq!(
        l.next_deadline(&w.policy),
        Some(w.now + Duration::from_secs(30))
    );
    w.advance(Duration::from_secs(30));
    assert_eq!(no_logs(w.feed(&mut l, Input::Timer)), [Effect::Kill]);
    assert_eq!(l.next_deadline(&w.policy), None);
    // The kill is a crash: it respawns (first unloyal failure: at once).
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Signal(9)))),
        [Effect::Spawn]
    );
}

#[test]
fn broken_pipe_curses_then_death_respawns() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::Byte(FromVassal::Loyal));
    w.feed(&mut l, Input::PipeClosed);
    assert_eq!(l.state_name(), "cursed");
    assert!(l.next_deadline(&w.policy).is_some());
    // A reload cannot be delivered on a broken pipe.
    assert!(no_logs(w.feed(&mut l, Input::Reload)).is_empty());
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(1)))),
        [Effect::Spawn]
    );
    assert!(l.pipe_open);
}

#[test]
fn on_demand_cycle() {
    let mut w = World::new();
    let mut l = Life::new("od.ini", 1);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Discovered { on_demand: true })),
        [Effect::ArmOnDemand]
    );
    assert_eq!(l.state_name(), "on-demand");
    // A config change while waiting only updates the record.
    assert!(no_logs(w.feed(&mut l, Input::ConfigChanged { mtime: 2 })).is_empty());
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Connection)),
        [Effect::DisarmOnDemand, Effect::Spawn]
    );
    assert_eq!(l.phase, Phase::Alive);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Byte(FromVassal::VoluntaryShutdown))),
        [Effect::Send(protocol::STOP)]
    );
    assert_eq!(l.phase, Phase::Stopping(AfterStop::OnDemand));
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(0)))),
        [Effect::ArmOnDemand]
    );
    assert_eq!(l.phase, Phase::OnDemandWaiting);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::ConfigRemoved)),
        [Effect::DisarmOnDemand, Effect::Remove]
    );
}

#[test]
fn voluntary_shutdown_without_on_demand_goes_dormant() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::Byte(FromVassal::VoluntaryShutdown));
    w.feed(&mut l, Input::Exited(ExitStatus::Code(0)));
    assert_eq!(l.phase, Phase::Exiled(Exile::Voluntary));
}

#[test]
fn commands() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::Stop);
    assert_eq!(l.phase, Phase::Stopping(AfterStop::Hold));
    w.feed(&mut l, Input::Exited(ExitStatus::Code(0)));
    assert_eq!(l.state_name(), "stopped");
    // A held vassal ignores config changes until started.
    assert!(no_logs(w.feed(&mut l, Input::ConfigChanged { mtime: 3 })).is_empty());
    assert_eq!(no_logs(w.feed(&mut l, Input::Start)), [Effect::Spawn]);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::RespawnNow)),
        [Effect::Send(protocol::STOP)]
    );
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(0)))),
        [Effect::Spawn]
    );
    // Reset-backoff ends a throttle at once.
    for _ in 0..2 {
        w.feed(&mut l, Input::Exited(ExitStatus::Code(1)));
    }
    assert!(matches!(l.phase, Phase::Throttled(_)));
    assert_eq!(
        no_logs(w.feed(&mut l, Input::ResetBackoff)),
        [Effect::Spawn]
    );
    assert!(w.blacklist.is_empty());
}

#[test]
fn spawn_failures() {
    let mut w = World::new();
    let mut l = Life::new("a.ini", 1);
    let mut ctx = Ctx {
        now: w.now,
        wall: 1,
        policy: &w.policy,
        blacklist: &mut w.blacklist,
        limiter: &mut w.limiter,
    };
    l.handle(Input::Discovered { on_demand: false }, &mut ctx);
    l.handle(Input::SpawnFailed { permanent: true }, &mut ctx);
    assert_eq!(l.phase, Phase::Exiled(Exile::SpawnImpossible));
    l.handle(Input::ConfigChanged { mtime: 2 }, &mut ctx);
    assert_eq!(l.phase, Phase::Starting);
    l.handle(Input::SpawnFailed { permanent: false }, &mut ctx);
    assert!(matches!(l.phase, Phase::Throttled(_)));
}

#[test]
fn ragnarok_stops_everything() {
    let mut w = World::new();
    let mut l = running(&mut w);
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Ragnarok)),
        [Effect::Send(protocol::STOP)]
    );
    assert_eq!(l.next_deadline(&w.policy), None, "mercy is global");
    assert_eq!(
        no_logs(w.feed(&mut l, Input::Exited(ExitStatus::Code(0)))),
        [Effect::Remove]
    );
    let mut t = Life::new("t.ini", 1);
    t.phase = Phase::Throttled(w.now + Duration::from_secs(5));
    assert_eq!(no_logs(w.feed(&mut t, Input::Ragnarok)), [Effect::Remove]);
}

#[test]
fn removed_unloyal_vassal_is_blacklisted() {
    let mut w = World::new();
    let mut l = running(&mut w);
    w.feed(&mut l, Input::ConfigRemoved);
    w.feed(&mut l, Input::Exited(ExitStatus::Code(0)));
    assert!(w.blacklist.get("a.ini").is_some());
}
