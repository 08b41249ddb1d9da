//! Setting names across cgroup versions: uWSGI's `cgroup-opt` keys are v1 names
//! (`cpu.shares`, `memory.limit_in_bytes`...), written as they are on v1 and translated
//! on v2; the Emperor's limits are v2 names, translated to v1 on v1 hierarchies. Sizes
//! accept K/M/G suffixes.

use crate::error::{IsolationError, Result};

/// One setting to write: the controller it belongs to, the file and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knob {
    pub controller: String,
    pub file: String,
    pub value: String,
}

fn knob(controller: &str, file: &str, value: impl Into<String>) -> Knob {
    Knob {
        controller: controller.to_owned(),
        file: file.to_owned(),
        value: value.into(),
    }
}

/// `64M` → 67108864; `max` stays `max`.
pub fn size(option: &str, v: &str) -> Result<String> {
    let t = v.trim();
    if t == "max" || t == "-1" {
        return Ok("max".into());
    }
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map(|n| n.to_string())
        .ok_or_else(|| IsolationError::option(option, v, "expects a size (bytes, or with K/M/G)"))
}

/// `cpu.shares` (v1, 2..262144) → `cpu.weight` (v2, 1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// `cpu.weight` → `cpu.shares`.
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.clamp(1, 10_000) - 1) * 262_142 / 9999
}

/// The controller a setting file belongs to (`memory.max` → `memory`).
pub fn controller_of(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// A `cgroup-opt` (v1 name) as it must be written on a v2 tree.
pub fn v1_to_v2(key: &str, value: &str) -> Result<Knob> {
    let bad =
        |m: &str| IsolationError::option("cgroup-opt", &format!("{key}={value}"), m.to_owned());
    let num = || {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| bad("expects a number"))
    };
    Ok(match key {
        "cpu.shares" => knob("cpu", "cpu.weight", shares_to_weight(num()?).to_string()),
        "memory.limit_in_bytes" => knob("memory", "memory.max", size("cgroup-opt", value)?),
        "memory.soft_limit_in_bytes" => knob("memory", "memory.low", size("cgroup-opt", value)?),
        "memory.memsw.limit_in_bytes" => {
            knob("memory", "memory.swap.max", size("cgroup-opt", value)?)
        }
        "blkio.weight" => knob("io", "io.weight", value.trim()),
        "cpu.cfs_quota_us" => knob(
            "cpu",
            "cpu.max",
            if value.trim() == "-1" {
                "max".to_owned()
            } else {
                value.trim().to_owned()
            },
        ),
        k if k.starts_with("cpuset.") || k.starts_with("pids.") => {
            knob(controller_of(k), k, value.trim())
        }
        // Already a v2 name (memory.max, cpu.weight, io.max...): written as is.
        k if [
            "memory.max",
            "memory.high",
            "memory.low",
            "memory.min",
            "memory.swap.max",
            "cpu.weight",
            "cpu.max",
            "io.weight",
            "io.max",
        ]
        .contains(&k) =>
        {
            knob(controller_of(k), k, value.trim())
        }
        _ => return Err(bad("no cgroup v2 equivalent is known for this setting")),
    })
}

/// An Emperor limit (v2 name) as it must be written on a v1 hierarchy.
pub fn v2_to_v1(file: &str, value: &str) -> Result<Vec<Knob>> {
    let bad = |m: &str| {
        IsolationError::option(
            "emperor-cgroup-opt",
            &format!("{file}={value}"),
            m.to_owned(),
        )
    };
    Ok(match file {
        "memory.max" => vec![knob(
            "memory",
            "memory.limit_in_bytes",
            if value == "max" {
                "-1".to_owned()
            } else {
                value.to_owned()
            },
        )],
        "memory.high" | "memory.low" => vec![knob(
            "memory",
            "memory.soft_limit_in_bytes",
            if value == "max" {
                "-1".to_owned()
            } else {
                value.to_owned()
            },
        )],
        "pids.max" => vec![knob("pids", "pids.max", value)],
        "cpu.weight" => vec![knob(
            "cpu",
            "cpu.shares",
            weight_to_shares(value.trim().parse().map_err(|_| bad("expects a number"))?)
                .to_string(),
        )],
        "cpu.max" => {
            let mut it = value.split_whitespace();
            let quota = it.next().unwrap_or("max");
            let period = it.next().unwrap_or("100000");
            vec![
                knob("cpu", "cpu.cfs_period_us", period),
                knob(
                    "cpu",
                    "cpu.cfs_quota_us",
                    if quota == "max" { "-1" } else { quota },
                ),
            ]
        }
        f if f.starts_with("memory.")
            || f.starts_with("pids.")
            || f.starts_with("cpu.")
            || f.starts_with("cpuset.") =>
        {
            vec![knob(controller_of(f), f, value)]
        }
        _ => return Err(bad("no cgroup v1 equivalent is known for this setting")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("x", "64M").unwrap(), "67108864");
        assert_eq!(size("x", "1g").unwrap(), "1073741824");
        assert_eq!(size("x", "4096").unwrap(), "4096");
        assert_eq!(size("x", "max").unwrap(), "max");
        assert!(size("x", "lots").is_err());
    }

    #[test]
    fn v1_keys_on_v2() {
        assert_eq!(
            v1_to_v2("cpu.shares", "512").unwrap(),
            knob("cpu", "cpu.weight", "20")
        );
        assert_eq!(v1_to_v2("cpu.shares", "1024").unwrap().value, "39");
        assert_eq!(
            v1_to_v2("memory.limit_in_bytes", "67108864").unwrap(),
            knob("memory", "memory.max", "67108864")
        );
        assert_eq!(
            v1_to_v2("pids.max", "10").unwrap(),
            knob("pids", "pids.max", "10")
        );
        assert_eq!(v1_to_v2("memory.max", "1M").unwrap().value, "1M");
        assert!(v1_to_v2("bogus.knob", "1").is_err());
    }

    #[test]
    fn v2_limits_on_v1() {
        assert_eq!(
            v2_to_v1("memory.max", "67108864").unwrap(),
            [knob("memory", "memory.limit_in_bytes", "67108864")]
        );
        assert_eq!(v2_to_v1("cpu.weight", "100").unwrap()[0].value, "2597");
        assert_eq!(
            v2_to_v1("cpu.max", "50000 100000").unwrap()[1],
            knob("cpu", "cpu.cfs_quota_us", "50000")
        );
        assert!(v2_to_v1("io.max", "x").is_err());
    }
}
