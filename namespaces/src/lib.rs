//! Isolation for vassals, used by the Emperor and by the vassal itself:
//!
//! - [`tyrant`]: opening a tenant's config once and deciding who its vassal runs as;
//! - [`child`]: creating a vassal with `clone3` (namespaces, `CLONE_INTO_CGROUP`), the
//!   tyrant credential drop, bounding set, NO_NEW_PRIVS and death signal before `execve`;
//! - [`cgroup`]: v2 first, v1 compatible; the Emperor's per-vassal groups and the
//!   vassal's own `cgroup`/`cgroup-opt`;
//! - [`caps`]: capability names and sets; [`nsflags`]: namespace names;
//! - [`privs`]: `unshare`, `chroot`, `pivot_root`, the vassal's privilege drop;
//! - [`jail`]: FreeBSD jail parameters (`jail_set(2)`).
//!
//! `unsafe` lives in [`sys`] (system call wrappers) and [`child`] (the clone path).

pub mod caps;
pub mod error;
pub mod jail;
pub mod nsflags;
pub mod tyrant;

#[cfg(target_os = "linux")]
pub mod cgroup;
#[cfg(target_os = "linux")]
pub mod child;
#[cfg(target_os = "linux")]
pub mod privs;
#[cfg(target_os = "linux")]
pub mod sys;

pub use error::{IsolationError, Result};
