//! Vassal-level work of the Emperor: turning monitor events into state-machine inputs,
//! carrying out the machine's effects (spawn, bytes, kills, on-demand sockets, removal),
//! reading the protocol pipes and reaping deaths.

use crate::emperor::{Emperor, Helper};
use crate::protocol::FromVassal;
use crate::reactor::{Kind, token};
use crate::spawn::{self, SpawnPlan};
use crate::state::{Ctx, Effect, ExitStatus, Input, Phase};
use crate::timers::TimerKey;
use crate::vassal::{FLOOD_MUTE, Vassal};
use crate::{ondemand, reaper};
use imperium_monitors::Touch;
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

impl Emperor {
    /// A monitor reports a new or changed config.
    pub fn touch(&mut self, midx: usize, t: Touch) {
        if self.ragnarok.is_some() {
            return;
        }
        let key = (midx, t.name.clone());
        if let Some(id) = self.by_name.get(&key).copied() {
            let tyrant = self.settings.tyrant;
            let Some(v) = self.vassals.get_mut(&id) else {
                return;
            };
            if t.config.is_some() {
                v.config = t.config.clone();
            }
            if tyrant && (v.uid, v.gid) != (t.uid, t.gid) {
                log!(
                    "!!! permissions of file {} changed. stopping the instance... !!!",
                    t.name
                );
                v.uid = t.uid;
                v.gid = t.gid;
                v.life.last_mod = t.mtime;
                self.apply(id, Input::Restart);
                return;
            }
            self.apply(id, Input::ConfigChanged { mtime: t.mtime });
            return;
        }
        // [monitors] a vassal is keyed by its monitor and name; a second monitor claiming a
        // name already governed is refused, never a silent takeover.
        if let Some(other) = self
            .vassals
            .values()
            .find(|v| v.name == t.name && v.monitor != midx)
        {
            vlog!(
                "[emperor] vassal name {} is claimed by --emperor {} and --emperor {}: the second claim is ignored",
                t.name,
                self.monitors[other.monitor].arg(),
                self.monitors[midx].arg()
            );
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut v = Vassal::new(id, midx, &t.name, t.mtime);
        v.uid = t.uid;
        v.gid = t.gid;
        v.config = t.config.clone();
        let socket = t.socket.clone().or_else(|| {
            ondemand::socket_name(&self.settings, self.monitors[midx].as_ref(), &t.name)
        });
        if let Some(s) = socket {
            match ondemand::bind(&s, self.settings.listen) {
                Ok(fd) => {
                    log!(
                        "[uwsgi-emperor] {} -> \"on demand\" instance detected, waiting for connections on socket \"{s}\" ...",
                        t.name
                    );
                    v.on_demand = Some(fd);
                    v.socket_name = Some(s);
                }
                Err(e) => {
                    vlog!(
                        "[emperor] unable to bind the on-demand socket \"{s}\" of vassal {}: {e}",
                        t.name
                    );
                    return;
                }
            }
        }
        let on_demand = v.on_demand.is_some();
        self.vassals.insert(id, v);
        self.by_name.insert(key, id);
        self.apply(id, Input::Discovered { on_demand });
    }

    /// Feeds one input to a vassal's machine and carries out the effects (which may feed
    /// further inputs, e.g. the result of a spawn).
    pub fn apply(&mut self, id: u64, input: Input) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let now = Instant::now();
            let wall = crate::log::now_secs();
            let Some(v) = self.vassals.get_mut(&id) else {
                return;
            };
            let mut ctx = Ctx {
                now,
                wall,
                policy: &self.policy,
                blacklist: &mut self.blacklist,
                limiter: &mut self.limiter,
            };
            let effects = v.life.handle(input, &mut ctx);
            for fx in effects {
                match fx {
                    Effect::Log(s) => vlog!("{s}"),
                    Effect::Spawn => queue.push_back(self.spawn_vassal(id)),
                    Effect::Send(b) => {
                        if !self.send_byte(id, b) {
                            queue.push_back(Input::PipeClosed);
                        }
                    }
                    Effect::Kill => {
                        if let Some(pid) = self.vassals.get(&id).and_then(|v| v.pid) {
                            reaper::kill_tree(pid);
                        }
                        if let Some(v) = self.vassals.get(&id) {
                            self.isolation.kill(&v.name);
                        }
                    }
                    Effect::PushConfig => self.push_config(id),
                    Effect::ArmOnDemand => {
                        if let Some(fd) = self.vassals.get(&id).and_then(|v| v.on_demand.as_ref()) {
                            let _ = self.reactor.add(fd.as_fd(), token(Kind::OnDemand, id));
                        }
                    }
                    Effect::DisarmOnDemand => {
                        if let Some(fd) = self.vassals.get(&id).and_then(|v| v.on_demand.as_ref()) {
                            self.reactor.delete(fd.as_fd());
                        }
                    }
                    Effect::Remove => {
                        self.remove_vassal(id);
                        return;
                    }
                }
            }
        }
        self.arm_vassal_timer(id);
    }

    fn arm_vassal_timer(&mut self, id: u64) {
        let Some(v) = self.vassals.get(&id) else {
            return;
        };
        let d = [v.life.next_deadline(&self.policy), v.flood.muted_until]
            .into_iter()
            .flatten()
            .min();
        match d {
            Some(t) => self.timers.set(TimerKey::Vassal(id), t),
            None => self.timers.cancel(TimerKey::Vassal(id)),
        }
    }

    pub fn on_vassal_timer(&mut self, id: u64) {
        let now = Instant::now();
        if let Some(v) = self.vassals.get_mut(&id)
            && v.flood.muted_until.is_some_and(|t| t <= now)
        {
            v.flood.muted_until = None;
            if let Some(p) = &v.pipe {
                let _ = self.reactor.add(p.as_fd(), token(Kind::Pipe, id));
            }
        }
        self.apply(id, Input::Timer);
    }

    fn send_byte(&mut self, id: u64, b: u8) -> bool {
        let Some(p) = self.vassals.get(&id).and_then(|v| v.pipe.as_ref()) else {
            return false;
        };
        match nix::sys::socket::send(
            p.as_raw_fd(),
            &[b],
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(1) => true,
            Ok(_) | Err(Errno::EAGAIN) => {
                let name = self
                    .vassals
                    .get(&id)
                    .map(|v| v.name.clone())
                    .unwrap_or_default();
                vlog!(
                    "[emperor] the protocol pipe of vassal {name} is full: byte {b} not delivered"
                );
                true
            }
            Err(_) => false,
        }
    }

    fn push_config(&mut self, id: u64) {
        // A tyrant vassal asking for its config again (reload) gets the file as it is
        // now, read through a fresh descriptor; an owner change stops it instead.
        if let Some(v) = self.vassals.get(&id)
            && v.tyrant_file
        {
            let path = self.monitors[v.monitor].vassal_cwd().join(&v.name);
            match self.isolation.tyrant_config(&path) {
                Ok(tc) if (tc.uid, tc.gid) == (v.uid, v.gid) => {
                    if let Some(v) = self.vassals.get_mut(&id) {
                        v.config = Some(tc.content);
                    }
                }
                Ok(_) => {
                    log!(
                        "!!! permissions of file {} changed. stopping the instance... !!!",
                        v.name
                    );
                    return;
                }
                Err(e) => {
                    log!("[emperor-tyrant] not pushing {}: {e}", path.display());
                    return;
                }
            }
        }
        let Some(v) = self.vassals.get(&id) else {
            return;
        };
        let (Some(cfg), Some(p)) = (&v.config, &v.config_pipe) else {
            return;
        };
        let framed = imperium_config::wire::encode_pushed_config(cfg);
        if let Err(e) = nix::sys::socket::send(
            p.as_raw_fd(),
            &framed,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        ) {
            vlog!("[uwsgi-emperor] write() config of {}: {e}", v.name);
        }
    }

    /// Starts a vassal's process; returns the machine's next input.
    fn spawn_vassal(&mut self, id: u64) -> Input {
        // Tyrant mode, file monitors: the Emperor opens the config itself, takes the owner
        // from the open descriptor and pushes that content (isolation.rs).
        if self.settings.tyrant
            && let Some(v) = self.vassals.get(&id)
            && (v.config.is_none() || v.tyrant_file)
        {
            let path = self.monitors[v.monitor].vassal_cwd().join(&v.name);
            match self.isolation.tyrant_config(&path) {
                Ok(tc) => {
                    if let Some(v) = self.vassals.get_mut(&id) {
                        v.uid = tc.uid;
                        v.gid = tc.gid;
                        v.config = Some(tc.content);
                        v.tyrant_file = true;
                    }
                }
                Err(e) => {
                    log!("[emperor-tyrant] refusing to spawn {}: {e}", path.display());
                    return Input::SpawnFailed { permanent: true };
                }
            }
        }
        let Some(v) = self.vassals.get(&id) else {
            return Input::SpawnFailed { permanent: true };
        };
        let name = v.name.clone();
        if self.settings.tyrant && (v.uid == 0 || v.gid == 0) {
            log!("[emperor-tyrant] invalid permissions for vassal {name}");
            return Input::SpawnFailed { permanent: true };
        }
        let program = OsString::from(&self.argv.argv0);
        if spawn::resolve_program(&program).is_none() {
            vlog!(
                "[emperor] unable to spawn vassal {name}: {} not found or not executable",
                self.argv.argv0
            );
            log!("[emperor] binary path: {}", self.argv.argv0);
            log!("[emperor] is the uwsgi binary in your system PATH ?");
            return Input::SpawnFailed { permanent: true };
        }
        let pair = || {
            socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
        };
        let (ours, theirs) = match pair() {
            Ok(p) => p,
            Err(e) => {
                vlog!("[emperor] socketpair() for vassal {name}: {e}");
                return Input::SpawnFailed { permanent: false };
            }
        };
        let cfg_pair = if v.config.is_some() {
            match pair() {
                Ok(p) => Some(p),
                Err(e) => {
                    vlog!("[emperor] socketpair() for vassal {name}: {e}");
                    return Input::SpawnFailed { permanent: false };
                }
            }
        } else {
            None
        };
        let cwd = self.monitors[v.monitor].vassal_cwd().to_owned();
        let config_ref = if v.config.is_some() {
            format!("emperor://{name}")
        } else if self.settings.magic_exec
            && nix::unistd::access(
                &cwd.join(&name),
                nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK,
            )
            .is_ok()
        {
            format!("exec://{name}")
        } else {
            name.clone()
        };
        let argv = self.argv.build(&self.rules, &name, &config_ref);
        let mut env = self.base_env.clone();
        env.push((
            "UWSGI_EMPEROR_FD".into(),
            theirs.as_raw_fd().to_string().into(),
        ));
        let mut keep = vec![theirs.as_raw_fd()];
        if let Some((_, c)) = &cfg_pair {
            env.push((
                "UWSGI_EMPEROR_FD_CONFIG".into(),
                c.as_raw_fd().to_string().into(),
            ));
            keep.push(c.as_raw_fd());
        }
        keep.extend(self.settings.safe_fds.iter().copied());
        let stdin = match &v.on_demand {
            Some(s) => match s.try_clone() {
                Ok(fd) => Some(fd),
                Err(e) => {
                    vlog!("[emperor] dup() of the on-demand socket of {name}: {e}");
                    return Input::SpawnFailed { permanent: false };
                }
            },
            None => None,
        };
        let isolated = match self
            .isolation
            .for_spawn(&name, self.settings.tyrant.then_some((v.uid, v.gid)))
        {
            Ok(i) => i,
            Err(e) => {
                vlog!("[emperor] unable to spawn vassal {name}: {e}");
                return Input::SpawnFailed { permanent: false };
            }
        };
        let mut plan = SpawnPlan {
            program,
            argv: argv.iter().map(OsString::from).collect(),
            env,
            cwd: cwd.clone(),
            stdin,
            keep_fds: keep,
            uid_gid: self.settings.tyrant.then_some((v.uid, v.gid)),
            own_group: true,
            isolation: Some(isolated),
        };
        if self.settings.tyrant {
            log!(
                "[emperor-tyrant] dropping privileges to {} {} for instance {name}",
                v.uid,
                v.gid
            );
        }
        spawn::wrap_with_hooks(
            &mut plan,
            self.settings.start_hook.as_deref(),
            &crate::hooks::as_vassal(&self.settings, &name, v.uid, v.gid),
            &self.settings.exec_as_vassal,
            &name,
            &cwd.to_string_lossy(),
        );
        match spawn::spawn(plan) {
            Ok(pid) => {
                let pid = pid as i32;
                drop(theirs);
                let _ = nix::fcntl::fcntl(
                    &ours,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                let _ = self.reactor.add(ours.as_fd(), token(Kind::Pipe, id));
                let (uid, gid) = (v.uid, v.gid);
                if let Some(v) = self.vassals.get_mut(&id) {
                    v.pid = Some(pid);
                    v.pipe = Some(ours);
                    v.config_pipe = cfg_pair.map(|(o, _)| o);
                    v.flood = Default::default();
                }
                self.by_pid.insert(pid, id);
                vlog!("[emperor] vassal {name} spawned (pid: {pid})");
                self.push_config(id);
                self.exec_as_emperor(&name, pid, uid, gid);
                Input::Spawned
            }
            Err(e) => {
                vlog!("[emperor] unable to spawn vassal {name}: {e}");
                let permanent = matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EACCES | libc::ENOEXEC | libc::ENOTDIR)
                );
                if permanent {
                    log!("[emperor] binary path: {}", self.argv.argv0);
                    log!("[emperor] is the uwsgi binary in your system PATH ?");
                }
                Input::SpawnFailed { permanent }
            }
        }
    }

    fn exec_as_emperor(&mut self, name: &str, pid: i32, uid: u32, gid: u32) {
        crate::hooks::as_emperor(&self.settings, name, pid, uid, gid);
        let cmds = self.settings.exec_as_emperor.clone();
        for cmd in cmds {
            log!(
                "running \"{cmd}\" (as-emperor for vassal \"{name}\" pid: {pid} uid: {uid} gid: {gid})..."
            );
            let mut env = self.base_env.clone();
            env.push(("UWSGI_VASSAL_CONFIG".into(), name.into()));
            env.push(("UWSGI_VASSAL_PID".into(), pid.to_string().into()));
            env.push(("UWSGI_VASSAL_UID".into(), uid.to_string().into()));
            env.push(("UWSGI_VASSAL_GID".into(), gid.to_string().into()));
            match spawn::spawn_helper("/bin/sh", &["-c", &cmd], &env, &self.startup_cwd) {
                Ok(hp) => {
                    self.helpers.insert(
                        hp as i32,
                        Helper {
                            what: format!("command \"{cmd}\""),
                        },
                    );
                }
                Err(e) => log!("unable to run \"{cmd}\": {e}"),
            }
        }
        crate::hooks::as_emperor_calls(&self.settings, name, pid, uid, gid);
    }

    fn run_stop_hook(&mut self, name: &str, cwd: &std::path::Path) {
        let Some(hook) = self.settings.stop_hook.clone() else {
            return;
        };
        log!("[emperor] running vassal stop-hook: {hook} {name}");
        let mut env = self.base_env.clone();
        env.push(("UWSGI_VASSALS_DIR".into(), cwd.as_os_str().to_owned()));
        match spawn::spawn_helper(&hook, &[name], &env, cwd) {
            Ok(hp) => {
                self.helpers.insert(
                    hp as i32,
                    Helper {
                        what: format!("[emperor] {name} stop-hook"),
                    },
                );
            }
            Err(e) => log!("[emperor] {name} stop-hook cannot run: {e}"),
        }
    }

    /// Deletes a record and everything it holds.
    fn remove_vassal(&mut self, id: u64) {
        let Some(v) = self.vassals.remove(&id) else {
            return;
        };
        self.isolation.vassal_removed(&v.name);
        self.timers.cancel(TimerKey::Vassal(id));
        self.by_name.remove(&(v.monitor, v.name.clone()));
        if let Some(pid) = v.pid {
            self.by_pid.remove(&pid);
        }
        if let Some(p) = &v.pipe {
            self.reactor.delete(p.as_fd());
        }
        if let Some(s) = &v.on_demand {
            self.reactor.delete(s.as_fd());
            if let Some(name) = &v.socket_name {
                ondemand::unlink(name);
            }
        }
        let cwd = self.monitors[v.monitor].vassal_cwd().to_owned();
        self.run_stop_hook(&v.name, &cwd);
    }

    /// The protocol pipe of a vassal is readable.
    pub fn on_pipe(&mut self, id: u64) {
        let mut buf = [0u8; 4096];
        // Bounded per wake-up so one chatty vassal cannot starve the others.
        for _ in 0..16 {
            let Some(p) = self.vassals.get(&id).and_then(|v| v.pipe.as_ref()) else {
                return;
            };
            match nix::unistd::read(p, &mut buf) {
                Ok(0) => return self.pipe_closed(id),
                Ok(n) => {
                    let mut garbage = 0u64;
                    for &b in &buf[..n] {
                        match FromVassal::decode(b) {
                            FromVassal::Unknown(x) => {
                                garbage += 1;
                                if let Some(v) = self.vassals.get_mut(&id)
                                    && !v.flood.warned_unknown
                                {
                                    v.flood.warned_unknown = true;
                                    vlog!(
                                        "[emperor] vassal {} sent an unknown protocol byte ({x}): ignored",
                                        v.name
                                    );
                                }
                            }
                            known => self.apply(id, Input::Byte(known)),
                        }
                    }
                    if garbage > 0 && self.flood_check(id, garbage) {
                        return;
                    }
                    if n < buf.len() {
                        return;
                    }
                }
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => return self.pipe_closed(id),
            }
        }
    }

    /// True when the vassal got muted.
    fn flood_check(&mut self, id: u64, garbage: u64) -> bool {
        let now = Instant::now();
        let Some(v) = self.vassals.get_mut(&id) else {
            return true;
        };
        if !v.flood.count(garbage, now) {
            return false;
        }
        if !v.flood.warned_flood {
            v.flood.warned_flood = true;
            vlog!(
                "[emperor] vassal {} floods the Emperor protocol with garbage: ignoring it for a second at a time",
                v.name
            );
        }
        v.flood.muted_until = Some(now + FLOOD_MUTE);
        if let Some(p) = &v.pipe {
            self.reactor.delete(p.as_fd());
        }
        self.arm_vassal_timer(id);
        true
    }

    fn pipe_closed(&mut self, id: u64) {
        let Some(v) = self.vassals.get_mut(&id) else {
            return;
        };
        if let Some(p) = v.pipe.take() {
            self.reactor.delete(p.as_fd());
        }
        if v.life.phase == Phase::Alive {
            vlog!(
                "[emperor] curse the uwsgi instance {} (pid: {})",
                v.name,
                v.pid.unwrap_or(-1)
            );
        }
        self.apply(id, Input::PipeClosed);
    }

    /// A client connected to an on-demand socket.
    pub fn on_connection(&mut self, id: u64) {
        self.apply(id, Input::Connection);
    }

    /// SIGCHLD: reap every dead child.
    pub fn reap(&mut self) {
        loop {
            let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) => (p.as_raw(), ExitStatus::Code(c)),
                Ok(WaitStatus::Signaled(p, s, _)) => (p.as_raw(), ExitStatus::Signal(s as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            if let Some(id) = self.by_pid.remove(&pid) {
                // Workers or children the vassal left in its process group go with it.
                reaper::kill_group(pid);
                if let Some(name) = self.vassals.get(&id).map(|v| v.name.clone()) {
                    self.isolation.vassal_exited(&name);
                }
                if let Some(v) = self.vassals.get_mut(&id) {
                    v.pid = None;
                    if let Some(p) = v.pipe.take() {
                        self.reactor.delete(p.as_fd());
                    }
                    v.config_pipe = None;
                    v.flood.muted_until = None;
                }
                self.apply(id, Input::Exited(status));
            } else if let Some(h) = self.helpers.remove(&pid) {
                match status {
                    ExitStatus::Code(c) if h.what.ends_with("stop-hook") => {
                        log!("{} returned {c}", h.what)
                    }
                    ExitStatus::Code(c) => log!("{} exited with code: {c}", h.what),
                    ExitStatus::Signal(s) => log!("{} killed by signal {s}", h.what),
                }
            }
            // Anything else is an orphan reparented to us (subreaper): just reaped.
        }
    }

    /// Periodic isolation checks (OOM kills in the vassals' cgroups).
    pub fn check_isolation(&mut self) {
        if self.isolation.cgroups.is_none() {
            return;
        }
        let names: Vec<String> = self.vassals.values().map(|v| v.name.clone()).collect();
        for n in &names {
            self.isolation.check_oom(n);
        }
        self.isolation
            .retry_removals(&|n| names.iter().any(|x| x == n));
    }

    /// Vassal ids whose name matches, for the command socket.
    pub fn find(&self, name: &str) -> Vec<u64> {
        self.vassals
            .values()
            .filter(|v| v.name == name)
            .map(|v| v.id)
            .collect()
    }
}
