//! Imperial monitors (dir, glob, pg, mongodb, amqp, zmq), all yielding one stream of
//! events for the Emperor: touch(name, config, owner, mtime) and destroy(name).
//!
//! Not built yet: the monitors arrive with the Emperor issue and the monitors issue.
