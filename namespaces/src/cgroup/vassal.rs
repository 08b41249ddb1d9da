//! The vassal's own `cgroup` / `cgroup-opt` / `cgroup-dir-mode` options, as uWSGI
//! documents them, on both layouts: each `cgroup` directory is created (or chmod-ed),
//! the process moves into it (`cgroup.procs`, on v1 too, which moves the whole process
//! rather than one thread as `tasks` does), and each `cgroup-opt` is written: as is on
//! v1, translated (`cpu.shares` → `cpu.weight`...) on v2. Unlike uWSGI, a setting whose
//! file does not exist is an error, not silently skipped.

use super::translate;
use super::{CGROUP1_MAGIC, CGROUP2_MAGIC};
use crate::error::{IsolationError, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

fn write(p: &Path, v: &str) -> std::io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(p)?
        .write_all(v.as_bytes())
}

/// Whether `dir` (or, when it does not exist yet, its parent) is on a cgroup v2 mount.
fn is_v2(dir: &Path) -> Result<bool> {
    let probe = if dir.exists() {
        dir
    } else {
        dir.parent().unwrap_or(dir)
    };
    let magic = crate::sys::fs_magic(probe)
        .map_err(|e| IsolationError::sys(format!("statfs {}", probe.display()), e))?;
    match magic {
        CGROUP2_MAGIC => Ok(true),
        CGROUP1_MAGIC => Ok(false),
        _ => Err(IsolationError::option(
            "cgroup",
            &dir.to_string_lossy(),
            "not inside a mounted cgroup hierarchy",
        )),
    }
}

/// Applies `cgroup`, `cgroup-opt` and `cgroup-dir-mode` to the calling process. Returns a
/// log line per action.
pub fn apply(dirs: &[String], opts: &[String], mode: Option<&str>) -> Result<Vec<String>> {
    let mode = match mode {
        Some(m) => u32::from_str_radix(m.trim(), 8)
            .map_err(|_| IsolationError::option("cgroup-dir-mode", m, "not an octal mode"))?,
        None => 0o700,
    };
    let mut log = Vec::new();
    let me = std::process::id().to_string();
    if dirs.is_empty() {
        return Ok(log);
    }
    let mut applied = vec![false; opts.len()];
    for d in dirs {
        let dir = Path::new(d);
        let v2 = is_v2(dir)?;
        if dir.is_dir() {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))
                .map_err(|e| IsolationError::sys(format!("chmod {d}"), e))?;
        } else {
            fs::DirBuilder::new()
                .mode(mode)
                .create(dir)
                .map_err(|e| IsolationError::sys(format!("mkdir {d}"), e))?;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode));
        }
        write(&dir.join("cgroup.procs"), &me)
            .map_err(|e| IsolationError::sys(format!("joining cgroup {d}"), e))?;
        log.push(format!(
            "joined cgroup {d} ({})",
            if v2 { "v2" } else { "v1" }
        ));
        for (i, o) in opts.iter().enumerate() {
            let (k, v) = o
                .split_once('=')
                .or_else(|| o.split_once(':'))
                .ok_or_else(|| IsolationError::option("cgroup-opt", o, "expects name=value"))?;
            let (file, value) = if v2 {
                let knob = translate::v1_to_v2(k.trim(), v)?;
                let p = dir.join(&knob.file);
                if !p.exists()
                    && let Some(parent) = dir.parent()
                {
                    // Enable the controller for children of the parent, then retry.
                    let _ = write(
                        &parent.join("cgroup.subtree_control"),
                        &format!("+{}", knob.controller),
                    );
                }
                (knob.file, knob.value)
            } else {
                (k.trim().to_owned(), v.trim().to_owned())
            };
            let p = dir.join(&file);
            if !p.exists() {
                // On v1 each directory is one hierarchy: the setting lives in another one.
                continue;
            }
            write(&p, &format!("{value}\n")).map_err(|e| {
                IsolationError::sys(format!("writing {value} to {}", p.display()), e)
            })?;
            applied[i] = true;
            log.push(format!("set {file} to {value} in {d}"));
        }
    }
    if let Some(i) = applied.iter().position(|a| !a) {
        return Err(IsolationError::option(
            "cgroup-opt",
            &opts[i],
            "no cgroup directory has this setting (controller not mounted or not enabled)",
        ));
    }
    Ok(log)
}
