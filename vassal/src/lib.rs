//! The vassal: one uWSGI-compatible instance (master, workers, sockets, the uwsgi and HTTP
//! protocols, reloads, the Emperor client, stats, the master FIFO, logging and hooks).

/// Runs the instance with its resolved configuration; returns the process exit code.
pub fn run(_config: &imperium_config::Config) -> i32 {
    eprintln!("imperium: the vassal server (application instance) is not implemented yet; run an Emperor with --emperor");
    1
}
