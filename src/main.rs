//! The `imperium` binary. One executable plays every role, like uWSGI: it loads the
//! configuration exactly as uWSGI would, handles the one-shot actions (`--help`,
//! `--version`, `--get`, `--show-config`), then runs the Emperor when `emperor` is set, or
//! the vassal instance otherwise. Invoked through a symlink named `uwsgi` it behaves the
//! same, so existing unit files and scripts keep working.

use imperium_config::{Action, Config, Invocation, show};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A monitor helper process (pg, amqp, zmq, mongodb), started by the Emperor: its role
    // is decided before anything else is read (see monitors/src/helper/mod.rs).
    if let Ok(arg) = std::env::var(imperium_monitors::remote::ROLE_ENV) {
        return ExitCode::from(imperium_monitors::helper::main(&arg).clamp(0, 255) as u8);
    }
    // An `as-vassal` hook helper, run by the Emperor's spawn wrapper in the vassal's
    // process before it execs the vassal (see emperor/src/hooks.rs).
    if let Ok(spec) = std::env::var(imperium_emperor::hooks::HELPER_ENV) {
        return ExitCode::from(imperium_emperor::hooks::helper_main(&spec).clamp(0, 255) as u8);
    }
    let inv = Invocation::from_process();
    let code = run(&inv);
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// How many times `fallback-config` may chain before imperium gives up (a fallback file
/// that names itself, or two that name each other, would loop forever in uWSGI).
const MAX_FALLBACKS: u32 = 8;
const FALLBACK_DEPTH_VAR: &str = "IMPERIUM_FALLBACK_DEPTH";

/// `fallback-config`: when the instance ends with status 1, it re-executes itself with the
/// fallback file as its only argument (same pid, descriptors kept), as uWSGI does.
fn fallback(inv: &Invocation, config: &Config, code: i32) -> i32 {
    use std::os::unix::process::CommandExt;
    let Some(file) = config.get("fallback-config").filter(|_| code == 1) else {
        return code;
    };
    let depth: u32 = std::env::var(FALLBACK_DEPTH_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let pid = std::process::id();
    eprintln!(
        "!!! {} (pid: {pid}) exited with status {code} !!!",
        inv.binary
    );
    if depth >= MAX_FALLBACKS {
        eprintln!(
            "!!! not falling back to {file}: {MAX_FALLBACKS} fallbacks in a row already (a loop?) !!!"
        );
        return code;
    }
    eprintln!("!!! Fallback config to {file} !!!");
    let err = std::process::Command::new(&inv.binary)
        .arg(file)
        .env(FALLBACK_DEPTH_VAR, (depth + 1).to_string())
        .exec();
    eprintln!(
        "imperium: cannot execute {} for the fallback config: {err}",
        inv.binary
    );
    code
}

fn run(inv: &Invocation) -> i32 {
    let loaded = match imperium_config::load(inv) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("imperium: configuration error: {e}");
            return 1;
        }
    };
    for line in &loaded.log {
        eprintln!("{line}");
    }
    // Nothing acts (not even `print`) until every typed value is known to be valid.
    if loaded.action.is_none()
        && let Err(e) = loaded.config.validate()
    {
        eprintln!("imperium: configuration error: {e}");
        return fallback(inv, &loaded.config, 1);
    }
    {
        let mut out = std::io::stdout().lock();
        for line in &loaded.stdout {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
    match loaded.action {
        Some(Action::Help) => {
            print!("{}", show::help(&inv.binary));
            return 0;
        }
        Some(Action::Version) => {
            println!("{}", imperium_config::VERSION);
            return 0;
        }
        Some(Action::Exit(code)) => return code,
        None => {}
    }
    let config = loaded.config;
    // As in uWSGI, `--get` answers and exits before anything else is printed.
    let gets = config.get_all("get");
    if !gets.is_empty() {
        for name in gets {
            if let Some(v) = first_exported(&config, name) {
                println!("{v}");
            }
        }
        return 0;
    }
    if config.flag("show-config") {
        eprint!("{}", show::show_config(&config));
    }
    for name in config.unimplemented() {
        eprintln!(
            "*** option '{name}' is recognised but not implemented yet: it has no effect ***"
        );
    }
    let code = if config.is_set("emperor") {
        imperium_emperor::run(&config)
    } else {
        imperium_vassal::run(&config)
    };
    fallback(inv, &config, code)
}

/// `--get name`: the first exported value of exactly that key, as uWSGI looks it up.
fn first_exported<'a>(config: &'a Config, name: &str) -> Option<&'a str> {
    config
        .entries()
        .iter()
        .find(|e| e.key == name && e.origin != imperium_config::Origin::Internal)
        .map(|e| e.value.as_str())
}
