//! The vassal's own isolation options, applied while it is still root: `cgroup` /
//! `cgroup-opt` / `cgroup-dir-mode`, `unshare`, FreeBSD `jail`/`jail2`/`jail-attach`,
//! then `chroot` and `pivot_root`; and the privilege drop (`uid`, `gid`, `add-gid`,
//! initgroups unless `no-initgroups`, `cap` kept as ambient capabilities,
//! NO_NEW_PRIVS for every non-root instance, the death signal re-armed after the uid
//! change). The mechanisms are in the `imperium-namespaces` crate.
//!
//! Start-up order (uWSGI's, as documented): pre-jail hooks → [`Isolation::jail`] →
//! post-jail hooks → `refork-post-jail` → in-jail hooks → [`Isolation::rootfs`] →
//! `refork-as-root` → as-root hooks → [`Isolation::drop_privileges`] → `refork` →
//! as-user hooks. The re-forks ([`Isolation::refork`]) happen at the first start only.

use crate::error::VassalError;
use crate::vlog;
use imperium_config::Config;
use imperium_namespaces::IsolationError;
use imperium_namespaces::caps::{self, CapSet};
use imperium_namespaces::nsflags::{self, NsFlags};
use nix::unistd::{Gid, Uid, User};
use std::path::PathBuf;

/// The instance's isolation options.
#[derive(Debug, Clone, Default)]
pub struct Isolation {
    pub cgroups: Vec<String>,
    pub cgroup_opts: Vec<String>,
    pub cgroup_dir_mode: Option<String>,
    pub unshare: NsFlags,
    pub chroot: Option<PathBuf>,
    pub pivot_root: Option<String>,
    pub cap: CapSet,
    pub no_initgroups: bool,
    pub add_gids: Vec<u32>,
    pub jail: Option<String>,
    pub jail_ip4: Vec<String>,
    pub jail_ip6: Vec<String>,
    pub jail2: Vec<String>,
    pub jail_attach: Option<String>,
    /// `refork-post-jail`, `refork-as-root`, `refork` (and their `re-fork` aliases).
    pub refork_post_jail: bool,
    pub refork_as_root: bool,
    pub refork: bool,
}

/// The three points where uWSGI's `refork*` options fork once more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReforkPoint {
    /// After the jail and the post-jail hooks (`refork-post-jail`; only when jailed).
    PostJail,
    /// After `chroot`/`pivot_root`, before the as-root hooks (`refork-as-root`).
    AsRoot,
    /// After the privilege drop (`refork`).
    AfterDrop,
}

/// This process's pid in the outermost pid namespace /proc shows (the `NSpid` line's
/// first number): what the host and the Emperor see.
fn host_pid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn err(e: IsolationError) -> VassalError {
    match e {
        IsolationError::Option {
            option,
            value,
            message,
        } => VassalError::option(&option, &value, &message),
        IsolationError::Sys { what, source } => VassalError::sys(what, source),
        other => VassalError::Config(other.to_string()),
    }
}

/// Every value of a repeatable option (aliases included), owned.
fn all(c: &Config, name: &str) -> Vec<String> {
    c.get_all(name).into_iter().map(str::to_owned).collect()
}

/// The value of a scalar option (aliases included), `None` when unset or blank.
fn last(c: &Config, name: &str) -> Option<String> {
    c.get_nonblank(name).map(str::to_owned)
}

impl Isolation {
    pub fn from_config(c: &Config) -> Result<Isolation, VassalError> {
        let mut add_gids = Vec::new();
        for g in c.get_all("add-gid") {
            add_gids.push(crate::privileges::parse_gid(g)?.as_raw());
        }
        let jail = last(c, "jail");
        let (jail_ip4, jail_ip6, jail2) = (all(c, "jail-ip4"), all(c, "jail-ip6"), all(c, "jail2"));
        // The jail parameters are checked everywhere, used only on FreeBSD.
        imperium_namespaces::jail::build(jail.as_deref(), &jail_ip4, &jail_ip6, &jail2)
            .map_err(err)?;
        Ok(Isolation {
            cgroups: all(c, "cgroup"),
            cgroup_opts: all(c, "cgroup-opt"),
            cgroup_dir_mode: last(c, "cgroup-dir-mode"),
            unshare: nsflags::parse("unshare", &c.get_all("unshare")).map_err(err)?,
            chroot: last(c, "chroot").map(PathBuf::from),
            pivot_root: last(c, "pivot-root"),
            cap: match c.get_nonblank("cap") {
                Some(v) => caps::parse("cap", v).map_err(err)?,
                None => CapSet::default(),
            },
            no_initgroups: c.flag("no-initgroups"),
            add_gids,
            jail,
            jail_ip4,
            jail_ip6,
            jail2,
            jail_attach: last(c, "jail-attach"),
            refork_post_jail: c.flag("refork-post-jail"),
            refork_as_root: c.flag("refork-as-root"),
            refork: c.flag("refork"),
        })
    }

    fn root() -> bool {
        Uid::effective().is_root()
    }

    /// cgroups, then namespaces (and FreeBSD jails). Root only, except an `unshare`
    /// that creates a user namespace (allowed to anyone the kernel allows it to).
    /// Returns whether the instance is now jailed (namespaces or a jail entered): the
    /// post-jail hooks run only then. After a reload (`reloading`) the namespaces are
    /// already the process's own (they survive the re-exec): `unshare` is not applied
    /// again, as in uWSGI.
    pub fn jail(&self, reloading: bool) -> Result<bool, VassalError> {
        let mut jailed = false;
        if !self.cgroups.is_empty() {
            if Self::root() {
                #[cfg(target_os = "linux")]
                for line in imperium_namespaces::cgroup::vassal::apply(
                    &self.cgroups,
                    &self.cgroup_opts,
                    self.cgroup_dir_mode.as_deref(),
                )
                .map_err(err)?
                {
                    vlog!("{line}");
                }
            } else {
                vlog!(
                    "*** cgroup ignored: this instance is not root (uid {}) ***",
                    Uid::effective()
                );
            }
        }
        if !self.unshare.is_empty() && !reloading {
            if Self::root() || self.unshare.has(nsflags::NEWUSER) {
                #[cfg(target_os = "linux")]
                imperium_namespaces::privs::unshare(self.unshare).map_err(err)?;
                jailed = true;
                vlog!("unshared namespaces: {}", self.unshare.names());
                if self.unshare.has(nsflags::NEWPID) && !self.refork_post_jail {
                    vlog!(
                        "*** unshare = pid: only processes forked from now on are in the new pid namespace: re-forking after the jail so that the master is its pid 1 (refork-post-jail) ***"
                    );
                }
            } else {
                vlog!(
                    "*** unshare ignored: this instance is not root (uid {}); use emperor-use-clone in the Emperor ***",
                    Uid::effective()
                );
            }
        }
        #[cfg(target_os = "freebsd")]
        {
            let params = imperium_namespaces::jail::build(
                self.jail.as_deref(),
                &self.jail_ip4,
                &self.jail_ip6,
                &self.jail2,
            )
            .map_err(err)?;
            if !params.is_empty() {
                let jid = imperium_namespaces::jail::create_and_attach(&params).map_err(err)?;
                jailed = true;
                vlog!("--- running in FreeBSD jail {jid} ---");
            }
            if let Some(j) = &self.jail_attach {
                imperium_namespaces::jail::attach(j).map_err(err)?;
                jailed = true;
                vlog!("--- attached to FreeBSD jail {j} ---");
            }
        }
        #[cfg(not(target_os = "freebsd"))]
        if self.jail.is_some() || !self.jail2.is_empty() || self.jail_attach.is_some() {
            return Err(VassalError::Config(
                "jail, jail2 and jail-attach are FreeBSD features".into(),
            ));
        }
        Ok(jailed)
    }

    /// `refork-post-jail`, `refork-as-root`, `refork`: forks once more at `point` when
    /// asked (`refork-post-jail` only when `jailed`; `unshare = pid` implies it, since
    /// only a child of the unsharing process lives in the new pid namespace, and the
    /// first one becomes its pid 1: without the re-fork that would be the first hook
    /// command or worker, and once it exits no process can be forked there). The child
    /// goes on as the instance (in a new pid namespace: its pid 1, so every worker,
    /// daemon and hook it starts is inside and dies with it); the parent stays behind as
    /// its keeper ([`crate::sys::keep`]) and never returns.
    pub fn refork(&self, point: ReforkPoint, jailed: bool) -> Result<(), VassalError> {
        if !self.wants_refork(point, jailed) {
            return Ok(());
        }
        vlog!("re-fork()ing...");
        match crate::sys::fork().map_err(|e| VassalError::sys("re-fork: fork()", e))? {
            crate::sys::Forked::Parent(child) => crate::sys::keep(child),
            crate::sys::Forked::Child => {
                // Die with the keeper (the Emperor's SIGKILL reaches only it). The parent
                // cannot be checked afterwards (it is outside a new pid namespace, where
                // getppid() is 0); it only dies from SIGKILL before blocking signals.
                #[cfg(target_os = "linux")]
                imperium_namespaces::privs::rearm_deathsig(libc::SIGKILL, 0).map_err(err)?;
                crate::logging::adopt();
                crate::sys::signals::unblock_all()
                    .map_err(|e| VassalError::sys("re-fork: sigprocmask()", e))?;
                let own = std::process::id();
                match host_pid() {
                    Some(host) if host != own => vlog!(
                        "re-forked: the instance goes on in pid {host} (pid {own} in its own pid namespace)"
                    ),
                    _ => vlog!("re-forked: the instance goes on in pid {own}"),
                }
                Ok(())
            }
        }
    }

    /// Whether [`Isolation::refork`] forks at `point`. `jailed` is true only when a
    /// namespace was really unshared (root, or a user namespace), so an ignored
    /// `unshare = pid` implies nothing.
    fn wants_refork(&self, point: ReforkPoint, jailed: bool) -> bool {
        match point {
            ReforkPoint::PostJail => {
                jailed && (self.refork_post_jail || self.unshare.has(nsflags::NEWPID))
            }
            ReforkPoint::AsRoot => self.refork_as_root,
            ReforkPoint::AfterDrop => self.refork,
        }
    }

    /// `chroot`, then `pivot_root`.
    pub fn rootfs(&self) -> Result<(), VassalError> {
        if (self.chroot.is_some() || self.pivot_root.is_some())
            && !Self::root()
            && !self.unshare.has(nsflags::NEWUSER)
        {
            return Err(VassalError::Config(
                "chroot and pivot_root need root".into(),
            ));
        }
        #[cfg(target_os = "linux")]
        {
            if let Some(d) = &self.chroot {
                imperium_namespaces::privs::chroot(d).map_err(err)?;
                vlog!("chroot() to {}", d.display());
            }
            if let Some(p) = &self.pivot_root {
                imperium_namespaces::privs::pivot_root(p).map_err(err)?;
                vlog!("pivot_root() to {p}");
            }
        }
        Ok(())
    }

    /// Drops root for `uid`/`gid` (names or numbers; the gid defaults to the user's),
    /// with initgroups and `add-gid`, keeping `cap`. A non-root instance only gets
    /// NO_NEW_PRIVS: whatever its config says, it cannot gain privileges.
    pub fn drop_privileges(&self, uid: Option<&str>, gid: Option<&str>) -> Result<(), VassalError> {
        if !Self::root() {
            #[cfg(target_os = "linux")]
            imperium_namespaces::privs::no_new_privs().map_err(err)?;
            if uid.is_some_and(|u| crate::privileges::parse_uid(u).ok() != Some(Uid::effective())) {
                vlog!(
                    "*** uid ignored: this instance is not root and runs as uid {} ***",
                    Uid::effective()
                );
            }
            if gid.is_some_and(|g| crate::privileges::parse_gid(g).ok() != Some(Gid::effective())) {
                vlog!(
                    "*** gid ignored: this instance is not root and runs as gid {} ***",
                    Gid::effective()
                );
            }
            if !self.cap.is_empty() {
                vlog!(
                    "*** cap ignored: this instance is not root, it has no capabilities to keep ***"
                );
            }
            return Ok(());
        }
        if uid.is_none() && gid.is_none() {
            vlog!("uWSGI running as root, you can use --uid/--gid/--chroot options");
            vlog!("*** WARNING: you are running uWSGI as root !!! (use the --uid flag) *** ");
            return Ok(());
        }
        let target_uid = uid.map(crate::privileges::parse_uid).transpose()?;
        let user = target_uid.and_then(|u| User::from_uid(u).ok().flatten());
        let target_gid: Option<Gid> = match gid {
            Some(g) => Some(crate::privileges::parse_gid(g)?),
            None => user.as_ref().map(|u| u.gid),
        };
        let g = target_gid.unwrap_or_else(Gid::effective).as_raw();
        let mut groups = vec![g];
        if !self.no_initgroups
            && let Some(u) = &user
        {
            #[cfg(target_os = "linux")]
            groups.extend(imperium_namespaces::sys::grouplist(&u.name, g).unwrap_or_default());
        }
        groups.extend(self.add_gids.iter().copied());
        groups.sort_unstable();
        groups.dedup();
        let u = target_uid.unwrap_or_else(Uid::effective).as_raw();
        #[cfg(target_os = "linux")]
        imperium_namespaces::privs::drop_to(u, g, &groups, self.cap).map_err(err)?;
        vlog!("setgid() to {g}");
        if u != 0 {
            vlog!("setuid() to {u}");
        }
        if !self.cap.is_empty() {
            vlog!("kept capabilities: {}", self.cap.names());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(pairs: &[(&str, &str)]) -> Isolation {
        Isolation::from_config(&Config::from_pairs(pairs)).unwrap()
    }

    #[test]
    fn refork_points() {
        use ReforkPoint::*;
        let none = iso(&[]);
        for p in [PostJail, AsRoot, AfterDrop] {
            assert!(!none.wants_refork(p, true), "{p:?}");
        }
        // Aliases resolve to the same flags.
        let all = iso(&[
            ("re-fork-post-jail", "true"),
            ("refork-as-root", "1"),
            ("re-fork", "yes"),
        ]);
        assert!(all.wants_refork(PostJail, true));
        assert!(!all.wants_refork(PostJail, false), "post-jail needs a jail");
        assert!(all.wants_refork(AsRoot, false));
        assert!(all.wants_refork(AfterDrop, false));
        // unshare = pid implies the post-jail re-fork, once it was really unshared.
        let pid = iso(&[("unshare", "fs,pid")]);
        assert!(pid.wants_refork(PostJail, true));
        assert!(!pid.wants_refork(PostJail, false), "ignored unshare");
        assert!(!pid.wants_refork(AsRoot, true));
        assert!(!iso(&[("unshare", "ipc")]).wants_refork(PostJail, true));
    }
}
