//! The reload: once every worker is gone, the master re-executes its own binary with its
//! original argv, in its original directory, keeping the listening sockets (listed in
//! `IMPERIUM_SOCKETS`) and the Emperor descriptors open across exec. Same pid, no socket
//! ever closed, so a client connecting meanwhile waits in the backlog and is served by the
//! next generation of workers. `UWSGI_RELOADS` counts the reloads.

use crate::emperor;
use crate::master::Master;
use crate::sockets;
use crate::vlog;
use std::os::unix::process::CommandExt;

/// Re-executes the master; never returns (exits 1 if exec fails).
pub fn exec(master: &Master<'_>) -> ! {
    if master.settings.exit_on_reload {
        master.shutdown_cleanup();
        vlog!("uWSGI: GAME OVER (insert coin)");
        std::process::exit(0);
    }
    vlog!("binary reloading uWSGI...");
    if let Some(n) = &master.notifier {
        let _ = n.reloading("uWSGI is reloading");
    }
    if let Some(e) = &master.emperor
        && e.config_fd.is_some()
    {
        e.notify(emperor::CONFIG_AGAIN, "uwsgi_reload()");
    }
    let plan = &master.reload;
    vlog!("chdir() to {}", plan.cwd.display());
    if let Err(e) = std::env::set_current_dir(&plan.cwd) {
        vlog!("uwsgi_reload()/chdir(): {e}");
    }
    sockets::keep_across_exec(&master.listeners);
    let mut cmd = std::process::Command::new(&plan.binary);
    if let Some(arg0) = plan.argv.first() {
        cmd.arg0(arg0);
    }
    cmd.args(plan.argv.iter().skip(1));
    cmd.env("UWSGI_RELOADS", (plan.reloads + 1).to_string());
    cmd.env(
        sockets::INHERIT_VAR,
        sockets::inherit_value(&master.listeners),
    );
    let err = cmd.exec();
    vlog!("unable to re-execute {}: {err}", plan.binary.display());
    std::process::exit(1)
}

/// FIFO `f`, in the forked copy: execute the binary as a new master keeping the sockets,
/// without the Emperor's descriptors (the copy is nobody's vassal); never returns.
pub fn exec_copy(master: &Master<'_>) -> ! {
    let plan = &master.reload;
    let _ = std::env::set_current_dir(&plan.cwd);
    sockets::keep_across_exec(&master.listeners);
    let mut cmd = std::process::Command::new(&plan.binary);
    if let Some(arg0) = plan.argv.first() {
        cmd.arg0(arg0);
    }
    cmd.args(plan.argv.iter().skip(1));
    cmd.env("UWSGI_RELOADS", "0");
    cmd.env_remove("UWSGI_EMPEROR_FD")
        .env_remove("UWSGI_EMPEROR_FD_CONFIG")
        .env_remove("NOTIFY_SOCKET");
    cmd.env(
        sockets::INHERIT_VAR,
        sockets::inherit_value(&master.listeners),
    );
    let err = cmd.exec();
    vlog!(
        "unable to execute a master copy {}: {err}",
        plan.binary.display()
    );
    std::process::exit(1)
}
