//! cgroups, v2 first and v1 compatible: the host layout ([`layout`]), one group over every
//! hierarchy ([`group`]), setting names across versions ([`translate`]), the vassal's own
//! `cgroup`/`cgroup-opt` options ([`vassal`]) and the Emperor's per-vassal groups
//! ([`emperor`]).

pub mod emperor;
pub mod group;
pub mod layout;
pub mod translate;
pub mod vassal;

pub use emperor::{EmperorCgroups, Limits};
pub use group::{Group, Usage};
pub use layout::Layout;

/// `CGROUP2_SUPER_MAGIC`.
pub const CGROUP2_MAGIC: i64 = 0x6367_7270;
/// `CGROUP_SUPER_MAGIC` (v1).
pub const CGROUP1_MAGIC: i64 = 0x27e0eb;
