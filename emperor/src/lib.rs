//! The Emperor: the vassal registry and its state machine, spawning, throttling and
//! backoff, heartbeats and curses, the stats and command sockets, broodlord and Ragnarok.
//!
//! Not built yet: the Emperor is the subject of its own issue. The binary reports
//! `--emperor` as recognised-but-unimplemented until this crate lands.
