//! The shared-memory scoreboard mapping: one anonymous `MAP_SHARED` region created by the
//! master before it forks, so the master and every worker see the same slots.

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use std::num::NonZeroUsize;

/// Types that may live in the shared mapping.
///
/// # Safety
/// Implementors are `repr(C)`, made only of atomics (or arrays of them), need at most
/// page alignment, and all-zero bits are a valid value of them.
pub unsafe trait ShmSafe {}

/// Maps `n` zeroed slots shared with every child forked afterwards. The mapping is never
/// unmapped: it lives as long as the process (an exec replaces it).
pub fn map_slots<Slot: ShmSafe>(n: usize) -> nix::Result<&'static [Slot]> {
    let n = n.max(1);
    let bytes = NonZeroUsize::new(n * std::mem::size_of::<Slot>()).ok_or(nix::Error::EINVAL)?;
    // SAFETY: a fresh anonymous mapping aliases nothing; the kernel zero-fills it.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            bytes,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }?;
    // SAFETY: the region is page-aligned (enough for `Slot`), `n * size_of::<Slot>()` bytes
    // long, zero-filled, and `Slot: ShmSafe` is made only of atomics, for which all-zero
    // bits are a valid value. Atomics make the shared, cross-process mutation sound; the mapping is
    // never unmapped, so the `'static` lifetime holds.
    Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<Slot>(), n) })
}
