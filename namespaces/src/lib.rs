//! Isolation: Linux namespaces, cgroups (v2 first, v1 compatible), capabilities,
//! chroot/pivot_root, privilege drops and FreeBSD jails.
//!
//! Not built yet: the subject of the isolation issue.
