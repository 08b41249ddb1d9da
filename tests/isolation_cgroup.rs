//! Per-vassal cgroups under an Emperor-owned base (`emperor-cgroup*`) through the real
//! binary, on whatever layout this host mounts (the test machine is hybrid: v1
//! memory/pids/cpu hierarchies beside the v2 tree, so both are exercised): each vassal
//! is in its own group from its first instruction, the limits are written, a daemon
//! that double-forked out of its process group dies with the vassal, a fork bomb is
//! held by pids.max while the Emperor and other vassals keep working, a memory hog is
//! OOM-killed inside its group, logged and respawned, and the stats show usage.

#[path = "support/harness.rs"]
mod harness;
mod isolation_support;

use harness::*;
use imperium_namespaces::cgroup::{Group, Layout, layout};
use std::fs;

struct Base {
    spec: String,
    group: Group,
}

impl Base {
    fn new(tag: &str) -> Base {
        let spec = format!("imperium-test-{tag}-{}", std::process::id());
        let group = Group::resolve(&Layout::detect(), &spec);
        Base { spec, group }
    }

    fn vassal(&self, name: &str) -> Group {
        self.group.child(name)
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        // Vassals of a killed Emperor may still be dying: kill them and retry the rmdir.
        let names: Vec<String> = self
            .group
            .dirs()
            .flat_map(|d| fs::read_dir(d).into_iter().flatten().flatten())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for n in names {
            let g = self.group.child(&n);
            for _ in 0..500 {
                g.kill();
                if g.remove() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        self.group.remove();
    }
}

fn probe(s: &Scratch, n: usize) -> Event {
    wait_until("a probe start", || starts(s).len() >= n);
    starts(s)[n - 1].clone()
}

fn in_group(g: &Group, pid: i32) -> bool {
    g.dirs().all(|d| {
        fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.trim() == pid.to_string())
    })
}

#[test]
fn each_vassal_in_its_own_group_with_limits_and_usage_in_stats() {
    let base = Base::new("limits");
    let s = Scratch::new("cg-limits");
    s.vassal("a.ini", "");
    let stats = s.path("stats.sock");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-cgroup",
                &base.spec,
                "--emperor-cgroup-memory-max",
                "96M",
                "--emperor-cgroup-pids-max",
                "40",
                "--emperor-cgroup-cpu-weight",
                "50",
                "--emperor-stats",
                &stats.to_string_lossy(),
            ],
        ),
    );
    let pid = probe(&s, 1).pid;
    let g = base.vassal("a.ini");
    assert!(
        in_group(&g, pid),
        "probe {pid} not in {g:?}\n{}",
        e.stderr()
    );
    // /proc/<pid>/cgroup names the vassal group in every hierarchy.
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for (_, path) in layout::parse_proc_cgroup(&own) {
        if !path.ends_with("/a.ini") {
            continue;
        }
        assert!(path.contains(&base.spec), "{path}");
    }
    let layout = Layout::detect();
    let v2 = layout.v2_controllers();
    let read = |ctrl: &str, v2file: &str, v1file: &str| -> String {
        if v2.iter().any(|c| c == ctrl) {
            fs::read_to_string(g.v2.as_ref().unwrap().join(v2file)).unwrap()
        } else {
            let d =
                g.v1.iter()
                    .find(|(c, _)| c.iter().any(|x| x == ctrl))
                    .map(|(_, d)| d.clone())
                    .expect("controller mounted");
            fs::read_to_string(d.join(v1file)).unwrap()
        }
    };
    assert_eq!(
        read("memory", "memory.max", "memory.limit_in_bytes").trim(),
        (96u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max", "pids.max").trim(), "40");
    let cpu = read("cpu", "cpu.weight", "cpu.shares");
    let shares = imperium_namespaces::cgroup::translate::weight_to_shares(50).to_string();
    assert!(
        cpu.trim() == "50" || cpu.trim() == shares,
        "cpu weight 50 (v2) or its shares (v1): {cpu}"
    );
    e.wait_log("per-vassal cgroups under");
    let v = vassal_stats(&stats, "a.ini");
    let cg = &v["cgroup"];
    assert!(cg["memory_current"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(cg["pids_current"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert!(cg["cpu_usage_usec"].is_u64(), "{v}");
    assert_eq!(cg["oom_kills"].as_u64(), Some(0), "{v}");
}

#[test]
fn a_double_forked_daemon_dies_with_its_vassal() {
    let base = Base::new("daemon");
    let s = Scratch::new("cg-daemon");
    let cfg = s.vassal("a.ini", "orphan");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(&s, &["--emperor-cgroup", &base.spec]),
    );
    wait_until("the orphans", || {
        s.events().iter().any(|ev| ev.event == "orphans")
    });
    let ev = s
        .events()
        .into_iter()
        .find(|ev| ev.event == "orphans")
        .unwrap();
    let daemon: i32 = ev.get("daemon").parse().unwrap();
    assert!(alive(daemon));
    assert!(
        in_group(&base.vassal("a.ini"), daemon),
        "the daemon stays in the vassal's group"
    );
    fs::remove_file(&cfg).unwrap();
    wait_until("the double-forked daemon killed", || !alive(daemon));
    wait_until("the vassal's group removed", || {
        !base.vassal("a.ini").dirs().any(|d| d.exists())
    });
    assert!(alive(e.pid()));
}

#[test]
fn a_fork_bomb_is_held_by_pids_max_and_the_emperor_keeps_serving() {
    let base = Base::new("bomb");
    let s = Scratch::new("cg-bomb");
    let bomb = s.vassal("bomb.ini", "forkbomb:5000");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-cgroup",
                &base.spec,
                "--emperor-cgroup-pids-max",
                "16",
            ],
        ),
    );
    wait_until("the fork bomb stopped", || {
        s.events().iter().any(|ev| ev.event == "forkbomb")
    });
    let ev = s
        .events()
        .into_iter()
        .find(|ev| ev.event == "forkbomb")
        .unwrap();
    let forked: usize = ev.get("forked").parse().unwrap();
    assert!(forked < 16, "pids.max let {forked} forks through");
    assert!(!ev.get("error").is_empty());
    // The Emperor still starts other vassals.
    s.vassal("good.ini", "");
    wait_until("another vassal started", || {
        starts(&s)
            .iter()
            .any(|st| st.get("argv").contains("good.ini"))
    });
    assert!(alive(e.pid()));
    // Stopping the bomb kills every process of it.
    let pids = base.vassal("bomb.ini").pids();
    assert!(pids.len() > 1);
    fs::remove_file(&bomb).unwrap();
    wait_until("every bomb process gone", || {
        pids.iter().all(|p| !alive(*p))
    });
}

#[test]
fn a_memory_hog_is_oom_killed_in_its_group_logged_and_respawned() {
    let base = Base::new("oom");
    let s = Scratch::new("cg-oom");
    s.vassal("hog.ini", "hog:256");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-cgroup",
                &base.spec,
                "--emperor-cgroup-memory-max",
                "64M",
                "--emperor-throttle",
                "100",
            ],
        ),
    );
    e.wait_log("killed by the OOM killer in its cgroup");
    wait_until("a respawn", || starts(&s).len() >= 2);
    assert!(
        !s.events().iter().any(|ev| ev.event == "hogged"),
        "the hog got its memory"
    );
    assert!(alive(e.pid()), "the Emperor itself is not touched");
}

#[test]
fn per_vassal_limits_from_a_trusted_file() {
    let base = Base::new("pervassal");
    let s = Scratch::new("cg-pervassal");
    let limits = s.path("limits");
    fs::create_dir_all(&limits).unwrap();
    fs::write(
        limits.join("b.ini.limits"),
        "# set by the platform, not by the tenant\npids-max = 7\n",
    )
    .unwrap();
    fs::write(limits.join("c.ini.limits"), "pids-max = 1000\n").unwrap();
    isolation_support::chmod(&limits.join("c.ini.limits"), 0o666);
    s.vassal("a.ini", "");
    s.vassal("b.ini", "");
    s.vassal("c.ini", "");
    let e = Emperor::start(
        &s,
        &Emperor::probe_args(
            &s,
            &[
                "--emperor-cgroup",
                &base.spec,
                "--emperor-cgroup-pids-max",
                "40",
                "--emperor-cgroup-limits-dir",
                &limits.to_string_lossy(),
            ],
        ),
    );
    wait_until("two probes", || starts(&s).len() >= 2);
    let pids_max = |name: &str| {
        let g = base.vassal(name);
        let d =
            g.v1.iter()
                .find(|(c, _)| c.iter().any(|x| x == "pids"))
                .map(|(_, d)| d.clone())
                .or(g.v2.clone())
                .unwrap();
        fs::read_to_string(d.join("pids.max"))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(pids_max("a.ini"), "40");
    assert_eq!(pids_max("b.ini"), "7");
    // A limits file others can write is not trusted: that vassal does not start.
    e.wait_log("c.ini.limits: not a regular file owned by root");
    assert!(!starts(&s).iter().any(|st| st.get("argv").contains("c.ini")));
}
