//! The Emperor's side of multi-tenant isolation: tyrant mode (who a vassal runs as, from
//! the config file the Emperor opened itself), `emperor-use-clone` namespaces with user
//! namespace maps, the `emperor-cap` bounding set, NO_NEW_PRIVS, per-vassal cgroups under
//! an Emperor-owned base (`emperor-cgroup*`) with limits, teardown, OOM notices and usage
//! for the stats, and the unprivileged Emperor (`uid`/`gid` + `cap = setgid,setuid`).
//! The mechanisms live in the `imperium-namespaces` crate; this module decides.

use crate::error::EmperorError;
use crate::spawn::Isolated;
use imperium_config::Config;
use imperium_namespaces::caps::{self, CapSet};
use imperium_namespaces::cgroup::{EmperorCgroups, Limits};
use imperium_namespaces::child::{Creds, IdMaps};
use imperium_namespaces::nsflags::{self, NsFlags};
use imperium_namespaces::{IsolationError, tyrant};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

/// The isolation options of the Emperor.
#[derive(Debug, Clone, Default)]
pub struct IsolationSettings {
    pub tyrant: bool,
    pub tyrant_nofollow: bool,
    /// `emperor-tyrant-initgroups`.
    pub tyrant_initgroups: bool,
    /// `emperor-use-clone`.
    pub use_clone: NsFlags,
    /// `emperor-use-clone-map = uid[:gid]`.
    pub clone_map: Option<(u32, u32)>,
    /// `emperor-cap` / `vassals-cap` / `vassal-cap`: the vassals' bounding set.
    pub vassal_cap: Option<CapSet>,
    /// `emperor-cgroup` and its limits.
    pub cgroup: Option<String>,
    pub limits: Limits,
    /// `emperor-cgroup-limits-dir`: per-vassal limits files (`<vassal>.limits`) the
    /// Emperor trusts (owned by root or by the Emperor's user, not writable by others).
    pub limits_dir: Option<String>,
    /// The Emperor's own `uid`, `gid` and `cap` (an unprivileged tyrant Emperor).
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub cap: Option<CapSet>,
}

fn bad(e: IsolationError) -> EmperorError {
    match e {
        IsolationError::Option {
            option,
            value,
            message,
        } => EmperorError::setting(&option, format!("{value}: {message}")),
        other => EmperorError::setting("isolation", other.to_string()),
    }
}

fn id_pair(option: &str, v: &str) -> Result<(u32, u32), EmperorError> {
    let (u, g) = v.split_once(':').unwrap_or((v, v));
    let p = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| EmperorError::setting(option, format!("expects uid[:gid], got '{v}'")))
    };
    Ok((p(u)?, p(g)?))
}

impl IsolationSettings {
    pub fn from_config(c: &Config) -> Result<IsolationSettings, EmperorError> {
        let mut limits = Limits::default();
        for name in [
            "memory-max",
            "memory-high",
            "pids-max",
            "cpu-max",
            "cpu-weight",
        ] {
            let option = format!("emperor-cgroup-{name}");
            if let Some(v) = c.get_nonblank(&option) {
                limits.apply_named(&option, name, v).map_err(bad)?;
            }
        }
        for v in c.get_all("emperor-cgroup-opt") {
            limits.raw(v).map_err(bad)?;
        }
        let cgroup = c.get_nonblank("emperor-cgroup").map(str::to_owned);
        if cgroup.is_none() && !limits.0.is_empty() {
            return Err(EmperorError::setting(
                "emperor-cgroup",
                "cgroup limits are set but no emperor-cgroup base is given",
            ));
        }
        Ok(IsolationSettings {
            tyrant: c.flag("emperor-tyrant"),
            tyrant_nofollow: c.flag("emperor-tyrant-nofollow"),
            tyrant_initgroups: c.flag("emperor-tyrant-initgroups"),
            use_clone: nsflags::parse("emperor-use-clone", &c.get_all("emperor-use-clone"))
                .map_err(bad)?,
            clone_map: c
                .get_nonblank("emperor-use-clone-map")
                .map(|v| id_pair("emperor-use-clone-map", v))
                .transpose()?,
            vassal_cap: c
                .get_nonblank("emperor-cap")
                .map(|v| caps::parse("emperor-cap", v))
                .transpose()
                .map_err(bad)?,
            cgroup,
            limits,
            limits_dir: c
                .get_nonblank("emperor-cgroup-limits-dir")
                .map(str::to_owned),
            uid: c.get_nonblank("uid").map(str::to_owned),
            gid: c.get_nonblank("gid").map(str::to_owned),
            cap: c
                .get_nonblank("cap")
                .map(|v| caps::parse("cap", v))
                .transpose()
                .map_err(bad)?,
        })
    }
}

/// The isolation state of a running Emperor.
#[derive(Debug, Default)]
pub struct Isolation {
    pub settings: IsolationSettings,
    pub cgroups: Option<EmperorCgroups>,
    /// OOM kills already reported, per vassal name.
    oom_seen: HashMap<String, u64>,
    /// Groups of removed vassals whose killed processes were not gone yet (retried at
    /// every rescan rather than waited for: the loop never blocks).
    pending_removal: Vec<String>,
}

fn lookup_id(v: &str, user: bool) -> Result<u32, EmperorError> {
    if let Ok(n) = v.trim().parse() {
        return Ok(n);
    }
    let found = if user {
        nix::unistd::User::from_name(v.trim())
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    } else {
        nix::unistd::Group::from_name(v.trim())
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    };
    found.ok_or_else(|| {
        EmperorError::setting(
            if user { "uid" } else { "gid" },
            format!("no such {}: {v}", if user { "user" } else { "group" }),
        )
    })
}

impl Isolation {
    /// Start-up: the Emperor's own privilege drop, the tyrant capability check, the
    /// cgroup base. Refuses to start when something asked for cannot work.
    pub fn boot(settings: IsolationSettings) -> Result<Isolation, EmperorError> {
        if nix::unistd::geteuid().is_root() && (settings.uid.is_some() || settings.gid.is_some()) {
            let uid = settings
                .uid
                .as_deref()
                .map(|u| lookup_id(u, true))
                .transpose()?;
            let gid = match settings.gid.as_deref() {
                Some(g) => Some(lookup_id(g, false)?),
                None => uid
                    .and_then(|u| {
                        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u))
                            .ok()
                            .flatten()
                    })
                    .map(|u| u.gid.as_raw()),
            };
            let keep = settings.cap.unwrap_or_default();
            drop_emperor_privileges(uid, gid, keep)
                .map_err(|e| EmperorError::setting("uid", e.to_string()))?;
            log!(
                "[emperor] running as uid {} gid {} keeping capabilities: {}",
                nix::unistd::getuid(),
                nix::unistd::getgid(),
                if keep.is_empty() {
                    "none".into()
                } else {
                    keep.names()
                }
            );
        }
        if settings.tyrant {
            tyrant::check_capabilities()
                .map_err(|e| EmperorError::setting("emperor-tyrant", e.to_string()))?;
            log!(
                "*** Tyrant mode enabled: every vassal runs as the owner of its config (never root) ***"
            );
        }
        if !settings.use_clone.is_empty() {
            log!(
                "[emperor] vassals are cloned into new namespaces: {}",
                settings.use_clone.names()
            );
        }
        if let Some(c) = settings.vassal_cap {
            log!(
                "[emperor] vassals keep only these capabilities in their bounding set: {}",
                c.with(caps::SETPCAP).names()
            );
        }
        let cgroups = match &settings.cgroup {
            Some(spec) => {
                let cg = EmperorCgroups::new(spec, settings.limits.clone())
                    .map_err(|e| EmperorError::setting("emperor-cgroup", e.to_string()))?;
                log!(
                    "[emperor] per-vassal cgroups under {} ({})",
                    cg.base
                        .dirs()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    cg.layout.describe()
                );
                for n in &cg.notes {
                    log!("[emperor] cgroup v2 controller not enabled for vassals: {n}");
                }
                if !cg.limits.0.is_empty() {
                    log!(
                        "[emperor] per-vassal cgroup limits: {}",
                        cg.limits
                            .0
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
                Some(cg)
            }
            None => None,
        };
        Ok(Isolation {
            settings,
            cgroups,
            oom_seen: HashMap::new(),
            pending_removal: Vec::new(),
        })
    }

    /// Reads a tyrant vassal's config through the descriptor the Emperor opens itself.
    pub fn tyrant_config(&self, path: &Path) -> Result<tyrant::TyrantConfig, String> {
        tyrant::open_config(path, self.settings.tyrant_nofollow).map_err(|e| e.to_string())
    }

    /// Everything the spawn of one vassal needs from isolation; None when nothing is on.
    pub fn for_spawn(
        &self,
        name: &str,
        tyrant_owner: Option<(u32, u32)>,
    ) -> Result<Isolated, String> {
        let mut iso = Isolated {
            namespaces: self.settings.use_clone,
            bounding: self.settings.vassal_cap,
            ..Default::default()
        };
        if let Some((uid, gid)) = tyrant_owner {
            iso.creds = Some(Creds {
                uid,
                gid,
                groups: tyrant::groups_for(uid, gid, self.settings.tyrant_initgroups),
            });
            iso.no_new_privs = true;
        }
        if self.settings.use_clone.has(nsflags::NEWUSER) {
            let (u, g) = self
                .settings
                .clone_map
                .or(tyrant_owner)
                .unwrap_or((65534, 65534));
            iso.id_maps = Some(IdMaps::root_as(u, g));
            if u != 0 {
                iso.no_new_privs = true;
            }
        }
        if let Some(cg) = &self.cgroups {
            let limits = self.vassal_limits(name, &cg.limits)?;
            let (g, fresh) = cg
                .prepare(name, &limits)
                .map_err(|e| format!("cgroup of vassal {name}: {e}"))?;
            if fresh {
                iso.cgroup_dir = g.open_v2_dir();
            }
            let mut procs = g
                .open_procs()
                .map_err(|e| format!("cgroup of vassal {name}: {e}"))?;
            if g.v2.is_some() && !procs.is_empty() {
                iso.cgroup_dir_procs = Some(procs.remove(0));
            }
            iso.cgroup_procs = procs;
        }
        Ok(iso)
    }

    /// The limits of one vassal: the Emperor's, overridden by its trusted limits file.
    fn vassal_limits(&self, name: &str, defaults: &Limits) -> Result<Limits, String> {
        use std::os::unix::fs::MetadataExt;
        let Some(dir) = &self.settings.limits_dir else {
            return Ok(defaults.clone());
        };
        let file = Path::new(dir).join(format!("{}.limits", name.replace('/', "_")));
        let Ok(md) = std::fs::symlink_metadata(&file) else {
            return Ok(defaults.clone());
        };
        let me = nix::unistd::geteuid().as_raw();
        if !md.file_type().is_file() || (md.uid() != 0 && md.uid() != me) || md.mode() & 0o022 != 0
        {
            return Err(format!(
                "{}: not a regular file owned by root (or the Emperor's user) and writable only by it: refusing to start the vassal",
                file.display()
            ));
        }
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        defaults
            .with_file(&file.to_string_lossy(), &text)
            .map_err(|e| e.to_string())
    }

    /// A vassal's main process is gone: nothing it started may survive it (a daemon
    /// that double-forked out of its process group is still in its cgroup). Also
    /// reports OOM kills.
    pub fn vassal_exited(&mut self, name: &str) {
        self.check_oom(name);
        if let Some(cg) = &self.cgroups {
            let n = cg.kill(name);
            if n > 0 {
                vlog!("[emperor] vassal {name}: killed {n} leftover process(es) in its cgroup");
            }
        }
    }

    /// A vassal was stopped for good: kill what is left and remove its cgroup.
    pub fn vassal_removed(&mut self, name: &str) {
        self.check_oom(name);
        self.oom_seen.remove(name);
        if let Some(cg) = &self.cgroups {
            cg.kill(name);
            // The directory can be removed only once the killed processes are gone.
            if !cg.remove(name) && !self.pending_removal.iter().any(|n| n == name) {
                self.pending_removal.push(name.to_owned());
            }
        }
    }

    /// Retries the removal of emptied groups (called at every rescan); a name that is
    /// in use again (the vassal came back) is left alone.
    pub fn retry_removals(&mut self, in_use: &dyn Fn(&str) -> bool) {
        let Some(cg) = &self.cgroups else { return };
        self.pending_removal.retain(|n| !in_use(n) && !cg.remove(n));
    }

    /// Kills every process of a vassal's cgroup now (stop, curse, Ragnarok).
    pub fn kill(&self, name: &str) {
        if let Some(cg) = &self.cgroups {
            cg.kill(name);
        }
    }

    /// Logs new OOM kills in a vassal's cgroup.
    pub fn check_oom(&mut self, name: &str) {
        let Some(cg) = &self.cgroups else { return };
        let Some(n) = cg.usage(name).oom_kills else {
            return;
        };
        let seen = self.oom_seen.entry(name.to_owned()).or_insert(0);
        if n > *seen {
            let limit = cg
                .limits
                .0
                .iter()
                .find(|(k, _)| k == "memory.max")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "none".into());
            vlog!(
                "[emperor] !!! vassal {name}: {} process(es) killed by the OOM killer in its cgroup (memory.max: {limit}) !!!",
                n - *seen
            );
            *seen = n;
        }
    }

    /// Per-vassal resource use for the stats (`cgroup` object), or Null.
    pub fn usage_json(&self, name: &str) -> Value {
        let Some(cg) = &self.cgroups else {
            return Value::Null;
        };
        let u = cg.usage(name);
        json!({
            "memory_current": u.memory_bytes,
            "cpu_usage_usec": u.cpu_usec,
            "pids_current": u.pids,
            "oom_kills": u.oom_kills,
        })
    }
}

/// Drops the Emperor itself to `uid`/`gid`, keeping only `keep` (typically setgid,setuid
/// for tyrant mode). No ambient capabilities: vassals must not inherit them.
fn drop_emperor_privileges(
    uid: Option<u32>,
    gid: Option<u32>,
    keep: CapSet,
) -> Result<(), IsolationError> {
    use imperium_namespaces::sys;
    if !keep.is_empty() {
        caps::before_setuid(keep)?;
    }
    if let Some(g) = gid {
        sys::setgroups(&[]).map_err(|e| IsolationError::sys("setgroups()", e))?;
        sys::setresgid(g).map_err(|e| IsolationError::sys(format!("setgid({g})"), e))?;
    }
    if let Some(u) = uid {
        sys::setresuid(u).map_err(|e| IsolationError::sys(format!("setuid({u})"), e))?;
    }
    if !keep.is_empty() {
        caps::restrict_to(keep)?;
    }
    sys::set_keepcaps(false).map_err(|e| IsolationError::sys("prctl(PR_SET_KEEPCAPS)", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs)
    }

    #[test]
    fn options_are_read_and_checked() {
        let s = IsolationSettings::from_config(&cfg(&[
            ("emperor-use-clone", "pid,net"),
            ("emperor-use-clone", "fs"),
            ("vassal-cap", "setuid,net_bind_service"),
            ("emperor-cgroup", "imperium"),
            ("emperor-cgroup-memory-max", "64M"),
            ("emperor-cgroup-cpu-max", "25%"),
            ("emperor-use-clone-map", "5000"),
        ]))
        .unwrap();
        assert_eq!(s.use_clone.names(), "fs,pid,net");
        assert_eq!(s.vassal_cap.unwrap().names(), "setuid,net_bind_service");
        assert_eq!(s.clone_map, Some((5000, 5000)));
        assert_eq!(
            s.limits.0,
            [
                ("memory.max".to_owned(), "67108864".to_owned()),
                ("cpu.max".to_owned(), "25000 100000".to_owned())
            ]
        );
    }

    #[test]
    fn bad_values_stop_the_emperor() {
        for pairs in [
            vec![("emperor-use-clone", "pid,bogus")],
            vec![("emperor-cap", "frobnicate")],
            vec![("emperor-cgroup-memory-max", "64M")],
            vec![("emperor-cgroup", "x"), ("emperor-cgroup-cpu-weight", "0")],
            vec![
                ("emperor-cgroup", "x"),
                ("emperor-cgroup-opt", "cgroup.procs=1"),
            ],
            vec![("emperor-use-clone-map", "root")],
        ] {
            assert!(
                IsolationSettings::from_config(&cfg(&pairs)).is_err(),
                "{pairs:?}"
            );
        }
    }
}
