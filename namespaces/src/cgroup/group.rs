//! One cgroup spread over the mounted hierarchies: its directory in the v2 tree and in
//! each v1 hierarchy that carries a controller imperium uses. Creating it, writing
//! settings where the controller lives (v2 first, v1 translated), putting processes in
//! it, reading its usage, noticing OOM kills, and killing everything in it.

use super::layout::{self, CONTROLLERS, Layout};
use super::translate;
use crate::error::{IsolationError, Result};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A cgroup in every relevant hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// Its directory in the v2 tree.
    pub v2: Option<PathBuf>,
    /// Its directory in each v1 hierarchy: (controllers of that hierarchy, directory).
    pub v1: Vec<(Vec<String>, PathBuf)>,
}

/// What a cgroup uses right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub pids: Option<u64>,
    /// Processes the kernel OOM-killed in it since it was created.
    pub oom_kills: Option<u64>,
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`memory.events`, `cpu.stat`, `memory.oom_control`).
fn keyed(p: &Path, key: &str) -> Option<u64> {
    let s = fs::read_to_string(p).ok()?;
    s.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn write_file(p: &Path, value: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(p)?;
    f.write_all(value.as_bytes())
}

impl Group {
    /// The group named by `spec` in every hierarchy: an absolute spec is a path from each
    /// hierarchy's root, a relative one is below this process's own cgroup there (what a
    /// systemd unit with `Delegate=yes` owns).
    pub fn resolve(layout: &Layout, spec: &str) -> Group {
        let own = layout::own_cgroups();
        let place = |mount: &Path, own_path: Option<&str>| -> PathBuf {
            if spec.starts_with('/') {
                layout::join(mount, spec)
            } else {
                layout::join(mount, own_path.unwrap_or("/")).join(spec)
            }
        };
        let v2 = layout.unified.as_ref().map(|u| {
            place(
                u,
                own.iter()
                    .find(|(c, _)| c.is_empty())
                    .map(|(_, p)| p.as_str()),
            )
        });
        let mut v1 = Vec::new();
        for h in &layout.v1 {
            if !h
                .controllers
                .iter()
                .any(|c| CONTROLLERS.contains(&c.as_str()))
            {
                continue;
            }
            let own_path = own
                .iter()
                .find(|(c, _)| c.split(',').any(|x| h.controllers.iter().any(|hc| hc == x)))
                .map(|(_, p)| p.as_str());
            v1.push((h.controllers.clone(), place(&h.mount, own_path)));
        }
        Group { v2, v1 }
    }

    /// The child group `name` (a single path component; `/` is replaced).
    pub fn child(&self, name: &str) -> Group {
        let comp: String = name
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c })
            .collect();
        let comp = if comp == "." || comp == ".." {
            format!("_{comp}")
        } else {
            comp
        };
        Group {
            v2: self.v2.as_ref().map(|d| d.join(&comp)),
            v1: self
                .v1
                .iter()
                .map(|(c, d)| (c.clone(), d.join(&comp)))
                .collect(),
        }
    }

    /// Every directory of the group.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.v2
            .iter()
            .map(PathBuf::as_path)
            .chain(self.v1.iter().map(|(_, d)| d.as_path()))
    }

    /// Creates the directories (and missing parents) with `mode`; existing ones are kept.
    pub fn create(&self, mode: u32) -> Result<()> {
        for d in self.dirs() {
            if d.is_dir() {
                continue;
            }
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(d)
                .map_err(|e| IsolationError::sys(format!("mkdir {}", d.display()), e))?;
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(mode));
        }
        Ok(())
    }

    /// On the v2 tree, enables `controllers` for the children of every directory from the
    /// hierarchy root down to this group. Returns what could not be enabled (a controller
    /// bound to a v1 hierarchy, or a parent with processes of its own).
    pub fn enable_for_children(&self, unified_root: &Path, controllers: &[&str]) -> Vec<String> {
        let mut missing = Vec::new();
        let Some(dir) = &self.v2 else { return missing };
        let Ok(rel) = dir.strip_prefix(unified_root) else {
            return missing;
        };
        let mut cur = unified_root.to_path_buf();
        let mut chain = vec![cur.clone()];
        for c in rel.components() {
            cur.push(c);
            chain.push(cur.clone());
        }
        for d in chain {
            let available = fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
            for c in controllers {
                if !available.split_whitespace().any(|a| a == *c) {
                    if !missing
                        .iter()
                        .any(|m: &String| m.starts_with(&format!("{c} ")))
                    {
                        missing.push(format!("{c} (not available in {})", d.display()));
                    }
                    continue;
                }
                if let Err(e) = write_file(&d.join("cgroup.subtree_control"), &format!("+{c}")) {
                    missing.push(format!("{c} (cannot enable in {}: {e})", d.display()));
                }
            }
        }
        missing
    }

    /// Writes limits given with v2 names: to the v2 file when that controller is enabled
    /// there, else translated into the v1 hierarchy that carries the controller.
    pub fn set(&self, file: &str, value: &str) -> Result<()> {
        if let Some(d) = &self.v2 {
            let p = d.join(file);
            if p.exists() {
                return write_file(&p, value).map_err(|e| {
                    IsolationError::sys(format!("writing {value} to {}", p.display()), e)
                });
            }
        }
        let knobs = translate::v2_to_v1(file, value)?;
        for k in knobs {
            let Some((_, d)) = self
                .v1
                .iter()
                .find(|(c, _)| c.iter().any(|x| *x == k.controller))
            else {
                return Err(IsolationError::Unsupported(format!(
                    "cgroup setting {file}: the {} controller is neither enabled in the v2 tree nor mounted as v1",
                    k.controller
                )));
            };
            let p = d.join(&k.file);
            write_file(&p, &k.value).map_err(|e| {
                IsolationError::sys(format!("writing {} to {}", k.value, p.display()), e)
            })?;
        }
        Ok(())
    }

    /// Opens the v2 directory (for `CLONE_INTO_CGROUP`).
    pub fn open_v2_dir(&self) -> Option<OwnedFd> {
        let d = self.v2.as_ref()?;
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(d)
            .ok()
            .map(OwnedFd::from)
    }

    /// Opens every `cgroup.procs` for writing (v2 first), so a new child can put itself
    /// in the group with one `write("0")` before it execs.
    pub fn open_procs(&self) -> Result<Vec<OwnedFd>> {
        self.dirs()
            .map(|d| {
                let p = d.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&p)
                    .map(OwnedFd::from)
                    .map_err(|e| IsolationError::sys(format!("open {}", p.display()), e))
            })
            .collect()
    }

    /// Moves a process into the group in every hierarchy (`0` is the caller).
    pub fn join(&self, pid: u32) -> Result<()> {
        for d in self.dirs() {
            let p = d.join("cgroup.procs");
            write_file(&p, &pid.to_string())
                .map_err(|e| IsolationError::sys(format!("writing {pid} to {}", p.display()), e))?;
        }
        Ok(())
    }

    /// Pids in the group (from the v2 tree if any, else the first v1 hierarchy).
    pub fn pids(&self) -> Vec<i32> {
        let Some(d) = self.dirs().next() else {
            return Vec::new();
        };
        fs::read_to_string(d.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Whether any process is left (v2 `cgroup.events populated`, else the pid list).
    pub fn populated(&self) -> bool {
        if let Some(d) = &self.v2
            && let Some(v) = keyed(&d.join("cgroup.events"), "populated")
        {
            return v != 0;
        }
        self.dirs()
            .any(|d| fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|s| !s.trim().is_empty()))
    }

    /// Kills every process in the group: `cgroup.kill` on v2 (Linux 5.14+), which also
    /// catches processes forking while they are being killed; otherwise SIGKILL each pid
    /// until the list is empty (bounded). Returns the number of pids seen.
    ///
    /// Kernel note (seen on 6.18): once a group has been killed through `cgroup.kill`, a
    /// child created with `clone3(CLONE_INTO_CGROUP)` into it is killed at birth (the
    /// kill sequence is compared against the parent's group). Callers join such a group
    /// through `cgroup.procs` instead.
    pub fn kill(&self) -> usize {
        let seen = self.pids().len();
        if let Some(d) = &self.v2
            && write_file(&d.join("cgroup.kill"), "1").is_ok()
        {
            return seen;
        }
        for _ in 0..50 {
            let pids: Vec<i32> = self
                .dirs()
                .flat_map(|d| {
                    fs::read_to_string(d.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.trim().parse().ok())
                        .collect::<Vec<i32>>()
                })
                .collect();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                if p > 1 {
                    // SAFETY: kill(2) with integers only.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        seen
    }

    /// Removes the directories (they must be empty of processes).
    pub fn remove(&self) -> bool {
        let mut ok = true;
        for d in self.dirs() {
            if d.exists() && fs::remove_dir(d).is_err() {
                ok = false;
            }
        }
        ok
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, d)| d.as_path())
    }

    /// Memory, CPU, pids and OOM kills, from wherever each controller lives.
    pub fn usage(&self) -> Usage {
        let v2 = self.v2.as_deref();
        let from_v2 = |f: &str| v2.and_then(|d| read_u64(&d.join(f)));
        Usage {
            memory_bytes: from_v2("memory.current").or_else(|| {
                self.v1_dir("memory")
                    .and_then(|d| read_u64(&d.join("memory.usage_in_bytes")))
            }),
            cpu_usec: v2
                .and_then(|d| keyed(&d.join("cpu.stat"), "usage_usec"))
                .or_else(|| {
                    self.v1_dir("cpuacct")
                        .and_then(|d| read_u64(&d.join("cpuacct.usage")))
                        .map(|ns| ns / 1000)
                }),
            pids: from_v2("pids.current").or_else(|| {
                self.v1_dir("pids")
                    .and_then(|d| read_u64(&d.join("pids.current")))
            }),
            oom_kills: v2
                .and_then(|d| keyed(&d.join("memory.events"), "oom_kill"))
                .or_else(|| {
                    self.v1_dir("memory")
                        .and_then(|d| keyed(&d.join("memory.oom_control"), "oom_kill"))
                }),
        }
    }
}
