//! Binary patching: `privileged-binary-patch` / `unprivileged-binary-patch` replace the
//! instance with another program (same argv, its own `argv[0]`), before or after the
//! privileges are dropped; the `-arg` forms run a whole command line through the shell.
//! The process keeps its pid and its descriptors, so the replacement is still the
//! Emperor's vassal (it inherits `UWSGI_EMPEROR_FD`): any program can be a vassal.

use crate::vlog;
use imperium_config::Config;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;

/// Whether the patch comes before or after the privilege drop.
#[derive(Debug, Clone, Copy)]
pub enum When {
    Privileged,
    Unprivileged,
}

impl When {
    fn prefix(self) -> &'static str {
        match self {
            When::Privileged => "privileged",
            When::Unprivileged => "unprivileged",
        }
    }
}

/// Applies the patch configured for `when`, if any: never returns when one is set (the
/// process becomes the new program, or exits 1 when it cannot).
pub fn apply(config: &Config, when: When, argv: &[OsString]) {
    let p = when.prefix();
    if let Some(prog) = config
        .get(&format!("{p}-binary-patch"))
        .filter(|v| !v.trim().is_empty())
    {
        vlog!("*** {p} binary patch: executing {prog} ***");
        let err = std::process::Command::new(prog)
            .arg0(prog)
            .args(argv.iter().skip(1))
            .exec();
        vlog!("execvp(): {prog}: {err}");
        std::process::exit(1);
    }
    if let Some(cmd) = config
        .get(&format!("{p}-binary-patch-arg"))
        .filter(|v| !v.trim().is_empty())
    {
        vlog!("*** {p} binary patch: executing \"{cmd}\" ***");
        let sh = config.get("binsh").unwrap_or("/bin/sh");
        let err = std::process::Command::new(sh).arg("-c").arg(cmd).exec();
        vlog!("execvp(): {sh}: {err}");
        std::process::exit(1);
    }
}
