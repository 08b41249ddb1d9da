//! Differential test: `imperium --show-config` must print the same block as the real
//! uWSGI 2.0.31 for every case of `tests/corpus/show-config/` (format: that directory's
//! README.md). Each case is copied to `target/tmp/show-config/<case>/`, both binaries run
//! there with the same arguments, environment and stdin, each is killed once it has printed
//! `;end of configuration` (uWSGI goes on starting up), and the blocks are compared line by
//! line. Cases with a `compat` file compare imperium with `imperium.expected` instead (a
//! deliberate difference documented in docs/compat.md); uWSGI still runs, for context.
//! Every failing case is reported, then the test fails once.
//!
//! The oracle is `$IMPERIUM_UWSGI`, else `target/venv/bin/uwsgi`; `scripts/test.sh` builds
//! it. Without it the test fails (it never skips).
//!
//! Run only the cases whose name contains a substring:
//!
//! ```text
//! SHOW_CONFIG_CASE=ini-section cargo test --test show_config_diff -- --nocapture
//! ```
//!
//! `SHOW_CONFIG_BINARY=/path/to/uwsgi` runs another binary in imperium's place: with uWSGI
//! itself every case except the `compat` ones must pass, which checks the corpus.

mod common;

use common::{Ending, MarkerRun, Spec};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const BEGIN: &str = ";uWSGI instance configuration";
const END: &str = ";end of configuration";
/// Files of a case directory that describe the case; they are not copied to the run dir.
const META: &[&str] = &["args", "env", "stdin", "compat", "imperium.expected"];
/// Per run (uWSGI or imperium) time limit.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The corpus must not silently shrink.
const MIN_CASES: usize = 70;

struct Case {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<PathBuf>,
    /// `Some((reason, expected block))` for a deliberate difference.
    compat: Option<(String, Vec<String>)>,
}

fn corpus_dir() -> PathBuf {
    common::repo_root().join("tests/corpus/show-config")
}

/// Lines of a text file, without the final empty line a trailing newline makes.
fn file_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    Ok(lines)
}

/// The block from BEGIN to END inclusive, if both are there.
fn extract_block(lines: &[String]) -> Option<Vec<String>> {
    let start = lines.iter().position(|l| l == BEGIN)?;
    let len = lines[start..].iter().position(|l| l == END)?;
    Some(lines[start..=start + len].to_vec())
}

fn compat_headings() -> Vec<String> {
    let path = common::repo_root().join("docs/compat.md");
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim().to_string())
        .collect()
}

fn load_case(dir: &Path, headings: &[String], subst: &[(&str, String)]) -> Result<Case, String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let args = file_lines(&dir.join("args"))?;
    if args.first().map(String::as_str) != Some("--show-config") {
        return Err("`args` must start with --show-config".into());
    }
    let mut env = Vec::new();
    if dir.join("env").exists() {
        for line in file_lines(&dir.join("env"))? {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or(format!("`env` line without `=`: {line:?}"))?;
            env.push((k.to_string(), v.to_string()));
        }
    }
    let stdin = Some(dir.join("stdin")).filter(|p| p.exists());
    let compat = if dir.join("compat").exists() {
        let text =
            fs::read_to_string(dir.join("compat")).map_err(|e| format!("read compat: {e}"))?;
        let see = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("see:")
                    .map(|h| h.trim().trim_start_matches('#').trim())
            })
            .ok_or("`compat` lacks a `see: <docs/compat.md heading>` line")?;
        if !headings.iter().any(|h| h == see) {
            return Err(format!(
                "`compat` refers to {see:?}, which is not a heading of docs/compat.md"
            ));
        }
        let mut expected = fs::read_to_string(dir.join("imperium.expected"))
            .map_err(|e| format!("a compat case needs imperium.expected: {e}"))?;
        for (from, to) in subst {
            expected = expected.replace(from, to);
        }
        let lines: Vec<String> = expected.lines().map(str::to_string).collect();
        let block = extract_block(&lines).ok_or("imperium.expected holds no complete block")?;
        Some((text.lines().next().unwrap_or("").to_string(), block))
    } else {
        None
    };
    Ok(Case {
        name,
        dir: dir.to_path_buf(),
        args,
        env,
        stdin,
        compat,
    })
}

fn run(program: &Path, case: &Case, cwd: &Path) -> MarkerRun {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), common::TEST_PATH.into());
    env.insert("HOME".into(), "/root".into());
    for (k, v) in &case.env {
        env.insert(k.clone(), v.clone());
    }
    let env: Vec<(String, String)> = env.into_iter().collect();
    let spec = Spec {
        program,
        args: &case.args,
        cwd,
        env: &env,
        stdin: case.stdin.as_deref(),
    };
    common::run_until_marker(&spec, END, TIMEOUT)
}

/// Shows a line so that trailing blanks and control characters are visible.
fn show(line: &str) -> String {
    if line.ends_with([' ', '\t']) || line.chars().any(char::is_control) {
        format!("{line:?}")
    } else {
        line.to_string()
    }
}

/// A line diff (longest common subsequence) of `a` (expected) and `b` (actual), with the
/// line numbers of both sides.
fn diff(a: &[String], b: &[String], a_name: &str, b_name: &str) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let first = (0..n.max(m)).find(|&k| a.get(k) != b.get(k)).unwrap_or(0);
    let _ = writeln!(
        out,
        "    first difference at line {}: {} has {}, {} has {}",
        first + 1,
        a_name,
        a.get(first)
            .map_or("nothing (block ended)".to_string(), |l| format!(
                "`{}`",
                show(l)
            )),
        b_name,
        b.get(first)
            .map_or("nothing (block ended)".to_string(), |l| format!(
                "`{}`",
                show(l)
            )),
    );
    let _ = writeln!(out, "    --- {a_name}\n    +++ {b_name}");
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            let _ = writeln!(out, "      {:>3} {:>3} | {}", i + 1, j + 1, show(&a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "    +     {:>3} | {}", j + 1, show(&b[j]));
            j += 1;
        } else {
            let _ = writeln!(out, "    - {:>3}     | {}", i + 1, show(&a[i]));
            i += 1;
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    | {l}\n")).collect()
}

fn describe_missing(who: &str, r: &MarkerRun) -> String {
    format!(
        "  {who} printed no complete block: it {}; its stderr:\n{}",
        r.ending_text(),
        indent(&r.stderr_text())
    )
}

/// Runs one case; `Err` holds the report.
fn check(case: &Case, uwsgi: &Path, imperium: &Path) -> Result<(), String> {
    let work = common::scratch_dir(&["show-config", &case.name]);
    common::copy_tree(&case.dir, &work, META)
        .map_err(|e| format!("  copying the case failed: {e}"))?;
    let head = format!("  args: {:?}\n  run dir: {}\n", case.args, work.display());

    let u = run(uwsgi, case, &work);
    let u_block = extract_block(&u.lines);
    let i = run(imperium, case, &work);
    let i_block = extract_block(&i.lines);

    if let Some((reason, expected)) = &case.compat {
        let context = match &u_block {
            Some(b) => format!(
                "  (compat: {reason})\n  uWSGI's own block, for context:\n{}",
                indent(&b.join("\n"))
            ),
            None => format!("  (compat: {reason})\n{}", describe_missing("uWSGI", &u)),
        };
        return match i_block {
            None => Err(format!(
                "{head}{}{context}",
                describe_missing("imperium", &i)
            )),
            Some(b) if &b == expected => Ok(()),
            Some(b) => Err(format!(
                "{head}{}{context}",
                diff(expected, &b, "imperium.expected", "imperium")
            )),
        };
    }

    let Some(u_block) = u_block else {
        return Err(format!(
            "{head}  (a corpus problem: uWSGI must print the block)\n{}",
            describe_missing("uWSGI", &u)
        ));
    };
    match i_block {
        None => Err(format!(
            "{head}{}  uWSGI's block:\n{}",
            describe_missing("imperium", &i),
            indent(&u_block.join("\n"))
        )),
        Some(b) if b == u_block => Ok(()),
        Some(b) => {
            let mut msg = format!("{head}{}", diff(&u_block, &b, "uWSGI 2.0.31", "imperium"));
            if i.ending != Ending::Marker {
                let _ = writeln!(msg, "  (imperium {})", i.ending_text());
            }
            Err(msg)
        }
    }
}

/// uWSGI goes on past the block and may bind the corpus's UNIX sockets before it is
/// killed; remove those (all named /tmp/imperium-showcfg-*).
fn remove_stale_sockets() {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let is_ours = e
            .file_name()
            .to_string_lossy()
            .starts_with("imperium-showcfg-");
        if is_ours && e.file_type().is_ok_and(|t| t.is_socket()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// `imperium --version`'s first line, for `{VERSION}` in imperium.expected.
fn imperium_version(bin: &Path) -> String {
    match std::process::Command::new(bin)
        .arg("--version")
        .env_clear()
        .env("PATH", common::TEST_PATH)
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Ok(o) => format!(
            "<imperium --version failed: {}>",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("<imperium --version failed: {e}>"),
    }
}

#[test]
fn show_config_matches_uwsgi() {
    let uwsgi = common::uwsgi_bin();
    // SHOW_CONFIG_BINARY replaces the binary under test (e.g. with uWSGI itself, to check
    // that the corpus is deterministic).
    let imperium = std::env::var_os("SHOW_CONFIG_BINARY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(common::imperium_bin);
    let binary = fs::canonicalize(&imperium).unwrap_or_else(|_| imperium.clone());
    let subst = [
        ("{VERSION}", imperium_version(&imperium)),
        ("{BINARY}", binary.to_string_lossy().into_owned()),
    ];
    let filter = std::env::var("SHOW_CONFIG_CASE")
        .ok()
        .filter(|f| !f.is_empty());
    let headings = compat_headings();

    let mut dirs: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .expect("read tests/corpus/show-config")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    if filter.is_none() {
        assert!(
            dirs.len() >= MIN_CASES,
            "the corpus has {} cases, expected at least {MIN_CASES}",
            dirs.len()
        );
    }

    let mut failures: Vec<(String, String)> = Vec::new();
    let mut cases = Vec::new();
    for d in &dirs {
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        match load_case(d, &headings, &subst) {
            Ok(c) => cases.push(c),
            Err(e) => failures.push((name, format!("  bad corpus case: {e}\n"))),
        }
    }
    if let Some(f) = &filter {
        assert!(
            !cases.is_empty() || !failures.is_empty(),
            "SHOW_CONFIG_CASE={f:?} matches no case"
        );
    }

    // A few cases at a time; each case runs uWSGI then imperium in its own directory.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<(), String>)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(k) else { break };
                    let r = check(case, &uwsgi, &imperium);
                    results.lock().unwrap().push((k, r));
                }
            });
        }
    });
    remove_stale_sockets();
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(k, _)| *k);
    let total = cases.len() + failures.len();
    for (k, r) in results {
        if let Err(msg) = r {
            failures.push((cases[k].name.clone(), msg));
        }
    }
    failures.sort();

    println!(
        "show-config: {total} cases, {} passed, {} failed (uWSGI: {})",
        total - failures.len(),
        failures.len(),
        uwsgi.display()
    );
    if failures.is_empty() {
        return;
    }
    let mut report = String::new();
    for (name, msg) in &failures {
        let _ = writeln!(report, "\n=== {name}\n{msg}");
    }
    eprintln!("{report}");
    let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    panic!(
        "{} of {total} show-config cases differ from uWSGI (details above): {}",
        failures.len(),
        names.join(", ")
    );
}
