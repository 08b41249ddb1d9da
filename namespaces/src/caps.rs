//! POSIX capabilities: the name table (uWSGI's names, lower case, no `CAP_` prefix, plus
//! the newer ones), parsing of `cap` / `emperor-cap` lists (an unknown name or a number
//! above the kernel's last capability is an error, unlike uWSGI which ignores it), and the
//! operations on the current process: keep a set across a uid switch, raise it as ambient
//! so it survives `execve`, and shrink the bounding set.

use crate::error::{IsolationError, Result};

/// Names and kernel numbers, in kernel order.
pub const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

pub const SETGID: u32 = 6;
pub const SETUID: u32 = 7;
pub const SETPCAP: u32 = 8;
pub const SYS_CHROOT: u32 = 18;
pub const SYS_ADMIN: u32 = 21;

/// A set of capabilities as a bit mask (bit n = capability n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn with(self, cap: u32) -> CapSet {
        CapSet(self.0 | (1 << cap))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |c| self.0 & (1u64 << c) != 0)
    }

    /// The names, comma-separated (numbers for capabilities without a name).
    pub fn names(self) -> String {
        self.iter()
            .map(|c| {
                NAMES
                    .get(c as usize)
                    .map_or_else(|| c.to_string(), |n| (*n).to_owned())
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The highest capability number the running kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
}

/// The number of one capability name (`net_bind_service`, `CAP_NET_BIND_SERVICE` or `10`).
pub fn lookup(name: &str, last: u32) -> Option<u32> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("cap_").unwrap_or(&n);
    let num = match n.parse::<u32>() {
        Ok(v) => v,
        Err(_) => NAMES.iter().position(|x| *x == n)? as u32,
    };
    (num <= last && num < 64).then_some(num)
}

/// Parses `cap = a,b,42` for `option`. Every name must be known to this kernel.
pub fn parse(option: &str, value: &str) -> Result<CapSet> {
    parse_with_last(option, value, last_cap())
}

pub fn parse_with_last(option: &str, value: &str, last: u32) -> Result<CapSet> {
    let mut set = CapSet::default();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match lookup(part, last) {
            Some(c) => set = set.with(c),
            None => {
                return Err(IsolationError::option(
                    option,
                    value,
                    format!("unknown capability \"{part}\" (this kernel knows 0..={last})"),
                ));
            }
        }
    }
    Ok(set)
}

/// Reads one `Cap*:` line of `/proc/<pid>/status` (`CapEff`, `CapPrm`, `CapBnd`...).
pub fn read_status(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let v = s
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    u64::from_str_radix(v.trim(), 16).ok()
}

/// Whether this process holds a capability in its effective set.
pub fn have(cap: u32) -> bool {
    read_status("self", "CapEff").is_some_and(|m| CapSet(m).contains(cap))
}

#[cfg(target_os = "linux")]
mod ops {
    use super::*;
    use crate::sys;

    /// Before a switch from root to `uid`: keep `keep` permitted across it (keep-caps),
    /// with the switch itself still possible. Call [`after_setuid`] once switched.
    pub fn before_setuid(keep: CapSet) -> Result<()> {
        sys::set_keepcaps(true).map_err(|e| IsolationError::sys("prctl(PR_SET_KEEPCAPS)", e))?;
        let (_, prm, _) = sys::capget().map_err(|e| IsolationError::sys("capget()", e))?;
        let needed = CapSet(0).with(SETUID).with(SETGID).with(SETPCAP).0 & prm;
        let p = (keep.0 & prm) | needed;
        // The effective set must stay within the new permitted set.
        sys::capset(p, p, keep.0 & prm).map_err(|e| IsolationError::sys("capset()", e))
    }

    /// After the uid switch: effective = permitted = inheritable = ambient = `keep`, so the
    /// set survives `execve` of ordinary binaries (workers, hooks, patched binaries).
    pub fn after_setuid(keep: CapSet) -> Result<()> {
        let (_, prm, _) = sys::capget().map_err(|e| IsolationError::sys("capget()", e))?;
        let k = keep.0 & prm;
        sys::capset(k, k, k).map_err(|e| IsolationError::sys("capset()", e))?;
        sys::set_keepcaps(false).map_err(|e| IsolationError::sys("prctl(PR_SET_KEEPCAPS)", e))?;
        raise_ambient(CapSet(k))
    }

    /// Raises every capability of `set` in the ambient set (they must be permitted).
    pub fn raise_ambient(set: CapSet) -> Result<()> {
        let _ = sys::ambient_clear();
        for c in set.iter() {
            sys::ambient_raise(c).map_err(|e| {
                IsolationError::sys(
                    format!("prctl(PR_CAP_AMBIENT_RAISE, {})", CapSet(1 << c).names()),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Removes from the bounding set every capability not in `keep` (setpcap is kept, as
    /// uWSGI does, so the process can still shrink its own sets).
    pub fn limit_bounding(keep: CapSet) -> Result<()> {
        let keep = keep.with(SETPCAP);
        for c in 0..=last_cap() {
            if !keep.contains(c) && sys::capbset_read(c).unwrap_or(false) {
                sys::capbset_drop(c)
                    .map_err(|e| IsolationError::sys(format!("prctl(PR_CAPBSET_DROP, {c})"), e))?;
            }
        }
        Ok(())
    }

    /// Keeps only `keep` in every set of this process (no uid change): used by an
    /// unprivileged Emperor started with `cap = setgid,setuid`.
    pub fn restrict_to(keep: CapSet) -> Result<()> {
        let (_, prm, _) = sys::capget().map_err(|e| IsolationError::sys("capget()", e))?;
        let k = keep.0 & prm;
        sys::capset(k, k, 0).map_err(|e| IsolationError::sys("capset()", e))
    }
}
#[cfg(target_os = "linux")]
pub use ops::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(NAMES[10], "net_bind_service");
        assert_eq!(NAMES[40], "checkpoint_restore");
        let s = parse_with_last("cap", "net_bind_service, 25 ,CAP_SETUID", 40).unwrap();
        assert_eq!(s.0, (1 << 10) | (1 << 25) | (1 << 7));
        assert_eq!(s.names(), "setuid,net_bind_service,sys_time");
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = parse_with_last("cap", "frobnicate", 40)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown capability \"frobnicate\""), "{e}");
        assert!(parse_with_last("cap", "41", 40).is_err());
        assert!(
            parse_with_last("cap", "bpf", 38).is_err(),
            "a name newer than the kernel"
        );
        assert!(parse_with_last("cap", "", 40).unwrap().is_empty());
    }
}
