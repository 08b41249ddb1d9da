//! The vassal: one uWSGI-compatible instance (master, workers, sockets, the uwsgi and HTTP
//! protocols, reloads, the Emperor client, stats, the master FIFO, logging and hooks).
//!
//! Not built yet: the vassal is the subject of its own issue.
