//! The Emperor's per-vassal cgroups: a base the Emperor owns (`emperor-cgroup`), one
//! child per vassal created before the vassal starts (it is cloned straight into it),
//! the Emperor's limits written into each child, and what the stats and the OOM log need.

use super::group::{Group, Usage};
use super::layout::Layout;
use super::translate;
use crate::error::{IsolationError, Result};

/// Limits written into every vassal's group, with v2 names (`memory.max`, `pids.max`,
/// `cpu.max`, `cpu.weight`...), translated on v1 hierarchies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits(pub Vec<(String, String)>);

impl Limits {
    /// Adds `file = value` (a later value for the same file replaces the earlier one).
    pub fn set(&mut self, file: &str, value: String) {
        self.0.retain(|(f, _)| f != file);
        self.0.push((file.to_owned(), value));
    }

    /// `emperor-cgroup-cpu-max`: `50%` (of one CPU), or v2's `quota [period]` in µs.
    pub fn cpu_max(option: &str, v: &str) -> Result<String> {
        let t = v.trim();
        if let Some(p) = t.strip_suffix('%') {
            let pct: f64 = p
                .trim()
                .parse()
                .map_err(|_| IsolationError::option(option, v, "expects N% or 'quota period'"))?;
            if pct <= 0.0 {
                return Err(IsolationError::option(option, v, "must be positive"));
            }
            return Ok(format!("{} 100000", (pct * 1000.0).round() as u64));
        }
        let mut it = t.split_whitespace();
        let q = it.next().unwrap_or("");
        if q != "max" && q.parse::<u64>().is_err() {
            return Err(IsolationError::option(
                option,
                v,
                "expects N% or 'quota period' (microseconds)",
            ));
        }
        Ok(match it.next() {
            Some(p) => format!(
                "{q} {}",
                p.parse::<u64>()
                    .map_err(|_| IsolationError::option(option, v, "bad period"))?
            ),
            None => format!("{q} 100000"),
        })
    }

    /// `emperor-cgroup-opt = file=value` (v2 name).
    pub fn raw(&mut self, v: &str) -> Result<()> {
        let (k, val) = v
            .split_once('=')
            .or_else(|| v.split_once(':'))
            .ok_or_else(|| IsolationError::option("emperor-cgroup-opt", v, "expects file=value"))?;
        let k = k.trim();
        if k.is_empty() || k.contains('/') || k.starts_with("cgroup.") {
            return Err(IsolationError::option(
                "emperor-cgroup-opt",
                v,
                "not a resource setting",
            ));
        }
        self.set(k, val.trim().to_owned());
        Ok(())
    }

    /// One limit by its option name: `memory-max`, `memory-high`, `pids-max`, `cpu-max`,
    /// `cpu-weight` (the `emperor-cgroup-<name>` options), or a v2 file name.
    pub fn apply_named(&mut self, option: &str, name: &str, v: &str) -> Result<()> {
        use super::translate::size;
        match name {
            "memory-max" => self.set("memory.max", size(option, v)?),
            "memory-high" => self.set("memory.high", size(option, v)?),
            "pids-max" => {
                let n = v.trim();
                if n != "max" && n.parse::<u64>().is_err() {
                    return Err(IsolationError::option(option, v, "expects a number or max"));
                }
                self.set("pids.max", n.to_owned());
            }
            "cpu-max" => self.set("cpu.max", Limits::cpu_max(option, v)?),
            "cpu-weight" => match v.trim().parse::<u64>() {
                Ok(w) if (1..=10_000).contains(&w) => self.set("cpu.weight", w.to_string()),
                _ => return Err(IsolationError::option(option, v, "expects 1-10000")),
            },
            file => self.raw(&format!("{file}={v}"))?,
        }
        Ok(())
    }

    /// A per-vassal limits file (`name = value` lines, `#` comments), layered over `self`.
    pub fn with_file(&self, what: &str, text: &str) -> Result<Limits> {
        let mut out = self.clone();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| IsolationError::option(what, line, "expects name = value"))?;
            out.apply_named(what, k.trim(), v.trim())?;
        }
        Ok(out)
    }

    /// Checks every limit can be written somewhere on this host (v2 file or v1 translation).
    pub fn check(&self, layout: &Layout, v2_enabled: &[String]) -> Result<()> {
        for (f, v) in &self.0 {
            let ctrl = translate::controller_of(f);
            if v2_enabled.iter().any(|c| c == ctrl) {
                continue;
            }
            let knobs = translate::v2_to_v1(f, v)?;
            for k in knobs {
                if layout.v1_for(&k.controller).is_none() {
                    return Err(IsolationError::Unsupported(format!(
                        "emperor cgroup limit {f}: the {ctrl} controller is not available on this host ({})",
                        layout.describe()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The Emperor's cgroup base and the limits of its vassals.
#[derive(Debug, Clone)]
pub struct EmperorCgroups {
    pub layout: Layout,
    pub base: Group,
    pub limits: Limits,
    /// Controllers enabled for vassals in the v2 tree.
    pub v2_controllers: Vec<String>,
    /// Controllers that could not be enabled in the v2 tree (logged at start-up).
    pub notes: Vec<String>,
}

impl EmperorCgroups {
    /// Creates (or adopts) the base `spec` and checks the limits.
    pub fn new(spec: &str, limits: Limits) -> Result<EmperorCgroups> {
        let layout = Layout::detect();
        if layout.unified.is_none() && layout.v1.is_empty() {
            return Err(IsolationError::Unsupported(
                "emperor-cgroup: no cgroup hierarchy is mounted".into(),
            ));
        }
        let base = Group::resolve(&layout, spec);
        base.create(0o755)?;
        let mut notes = Vec::new();
        let mut v2_controllers = Vec::new();
        if let (Some(root), Some(_)) = (&layout.unified, &base.v2) {
            let wanted: Vec<&str> = ["memory", "pids", "cpu"]
                .into_iter()
                .filter(|c| layout.v1_for(c).is_none())
                .collect();
            notes = base.enable_for_children(root, &wanted);
            let enabled = base
                .v2
                .as_ref()
                .and_then(|d| std::fs::read_to_string(d.join("cgroup.subtree_control")).ok())
                .unwrap_or_default();
            v2_controllers = enabled.split_whitespace().map(str::to_owned).collect();
        }
        limits.check(&layout, &v2_controllers)?;
        Ok(EmperorCgroups {
            layout,
            base,
            limits,
            v2_controllers,
            notes,
        })
    }

    /// The group of one vassal.
    pub fn group_of(&self, vassal: &str) -> Group {
        self.base.child(vassal)
    }

    /// Makes a vassal's group ready for a new process: leftovers of an earlier run are
    /// killed, the directories exist, the limits are written. The flag says whether the
    /// v2 directory is new: only then may the child be cloned straight into it (see
    /// [`Group::kill`] on why a group that was ever killed is joined through
    /// `cgroup.procs` instead).
    pub fn prepare(&self, vassal: &str, limits: &Limits) -> Result<(Group, bool)> {
        let g = self.group_of(vassal);
        let existed = g.v2.as_ref().is_some_and(|d| d.exists());
        if g.dirs().any(|d| d.exists()) && g.populated() {
            g.kill();
        }
        g.create(0o755)?;
        for (f, v) in &limits.0 {
            g.set(f, v)?;
        }
        Ok((g, !existed))
    }

    /// Resource use of a vassal's group.
    pub fn usage(&self, vassal: &str) -> Usage {
        self.group_of(vassal).usage()
    }

    /// Kills whatever is left in a vassal's group (returns how many pids there were).
    pub fn kill(&self, vassal: &str) -> usize {
        let g = self.group_of(vassal);
        if !g.dirs().any(|d| d.exists()) {
            return 0;
        }
        g.kill()
    }

    /// Removes a vassal's group once it is empty.
    pub fn remove(&self, vassal: &str) -> bool {
        self.group_of(vassal).remove()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_forms() {
        assert_eq!(Limits::cpu_max("x", "50%").unwrap(), "50000 100000");
        assert_eq!(Limits::cpu_max("x", "20000 50000").unwrap(), "20000 50000");
        assert_eq!(Limits::cpu_max("x", "max").unwrap(), "max 100000");
        assert!(Limits::cpu_max("x", "fast").is_err());
    }

    #[test]
    fn per_vassal_files_layer_over_the_defaults() {
        let mut base = Limits::default();
        base.apply_named("x", "memory-max", "64M").unwrap();
        base.apply_named("x", "pids-max", "20").unwrap();
        let l = base
            .with_file(
                "a.limits",
                "# tenant a\nmemory-max = 128M\ncpu-max = 50%\nio.weight = 10\n",
            )
            .unwrap();
        assert_eq!(
            l.0,
            [
                ("pids.max".to_owned(), "20".to_owned()),
                ("memory.max".to_owned(), "134217728".to_owned()),
                ("cpu.max".to_owned(), "50000 100000".to_owned()),
                ("io.weight".to_owned(), "10".to_owned())
            ]
        );
        assert!(base.with_file("a.limits", "pids-max = lots").is_err());
        assert!(base.with_file("a.limits", "cgroup.procs = 1").is_err());
    }

    #[test]
    fn raw_options() {
        let mut l = Limits::default();
        l.raw("memory.max=1M").unwrap();
        l.raw("memory.max=2M").unwrap();
        assert_eq!(l.0, [("memory.max".to_owned(), "2M".to_owned())]);
        assert!(l.raw("cgroup.procs=1").is_err());
        assert!(l.raw("../x=1").is_err());
    }
}
