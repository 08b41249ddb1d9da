//! Which cgroup hierarchies are mounted: the v2 unified tree (alone, or beside v1
//! controller hierarchies on "hybrid" hosts) and each v1 hierarchy with its controllers,
//! read from `/proc/self/mountinfo`; and where this process sits in each
//! (`/proc/self/cgroup`).

use std::path::{Path, PathBuf};

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
}

/// The cgroup hierarchies of this host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// The cgroup2 mount, if any (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
    pub unified: Option<PathBuf>,
    pub v1: Vec<V1Hierarchy>,
}

/// The resource controllers imperium uses.
pub const CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];

impl Layout {
    /// Reads the mounts of this process.
    pub fn detect() -> Layout {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|s| Layout::parse(&s))
            .unwrap_or_default()
    }

    /// Parses mountinfo text.
    pub fn parse(mountinfo: &str) -> Layout {
        let mut l = Layout::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount = left.split(' ').nth(4).map(unescape);
            let mut r = right.split(' ');
            let (Some(fstype), _, Some(opts), Some(mount)) = (r.next(), r.next(), r.next(), mount)
            else {
                continue;
            };
            match fstype {
                "cgroup2" if l.unified.is_none() => l.unified = Some(PathBuf::from(mount)),
                "cgroup" => {
                    let controllers: Vec<String> = opts
                        .split(',')
                        .filter(|o| {
                            CONTROLLERS.contains(o)
                                || [
                                    "cpuset",
                                    "blkio",
                                    "devices",
                                    "freezer",
                                    "hugetlb",
                                    "net_cls",
                                    "net_prio",
                                    "perf_event",
                                    "rdma",
                                    "misc",
                                ]
                                .contains(o)
                        })
                        .map(str::to_owned)
                        .collect();
                    if !controllers.is_empty() {
                        l.v1.push(V1Hierarchy {
                            controllers,
                            mount: PathBuf::from(mount),
                        });
                    }
                }
                _ => {}
            }
        }
        l
    }

    /// The v1 hierarchy carrying a controller.
    pub fn v1_for(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The controllers available in the unified tree's root.
    pub fn v2_controllers(&self) -> Vec<String> {
        self.unified
            .as_ref()
            .and_then(|u| std::fs::read_to_string(u.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A short description for the log ("cgroup v2", "hybrid: v2 + v1 memory,pids,...").
    pub fn describe(&self) -> String {
        let v1: Vec<String> = self.v1.iter().flat_map(|h| h.controllers.clone()).collect();
        match (&self.unified, v1.is_empty()) {
            (Some(u), true) => format!("cgroup v2 at {}", u.display()),
            (Some(u), false) => format!(
                "hybrid cgroups: v2 at {}, v1 controllers {}",
                u.display(),
                v1.join(",")
            ),
            (None, false) => format!("cgroup v1 controllers {}", v1.join(",")),
            (None, true) => "no cgroup hierarchy mounted".to_owned(),
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Where this process sits: `("", path)` for v2 and `(controllers, path)` for v1 lines.
pub fn own_cgroups() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .map(|s| parse_proc_cgroup(&s))
        .unwrap_or_default()
}

pub fn parse_proc_cgroup(s: &str) -> Vec<(String, String)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            Some((ctrl.to_owned(), path.to_owned()))
        })
        .collect()
}

/// The cgroup path of this process in the v2 tree (`0::/x`) or in the v1 hierarchy with
/// `controller`.
pub fn own_path(controller: Option<&str>) -> Option<String> {
    own_cgroups()
        .into_iter()
        .find(|(c, _)| match controller {
            None => c.is_empty(),
            Some(want) => c.split(',').any(|x| x == want),
        })
        .map(|(_, p)| p)
}

/// `/sys/fs/cgroup/...` path of cgroup `rel` (a path from the hierarchy root) in `mount`.
pub fn join(mount: &Path, rel: &str) -> PathBuf {
    mount.join(rel.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout() {
        let l = Layout::parse(HYBRID);
        assert_eq!(
            l.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(l.v1.len(), 4, "name=systemd is not a controller: {l:?}");
        assert_eq!(
            l.v1_for("memory").unwrap().mount,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert!(l.v1_for("freezer").is_none());
        assert!(l.describe().starts_with("hybrid cgroups"));
    }

    #[test]
    fn unified_only_and_combined_v1() {
        let l = Layout::parse(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(l.describe(), "cgroup v2 at /sys/fs/cgroup");
        let l = Layout::parse("24 23 0:21 / /cgroup rw - cgroup none rw,cpu,cpuacct,memory\n");
        assert_eq!(
            l.v1_for("cpuacct").unwrap().controllers,
            ["cpu", "cpuacct", "memory"]
        );
    }

    #[test]
    fn proc_cgroup_lines() {
        let v = parse_proc_cgroup("4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(v[0], ("memory".to_owned(), "/process_api/x".to_owned()));
        assert_eq!(v[2], (String::new(), "/user.slice".to_owned()));
    }
}
