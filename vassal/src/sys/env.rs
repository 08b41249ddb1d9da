//! Changing the process environment (`env`, `unenv`, `UWSGI_RELOADS`, the reload socket
//! map). `std::env::set_var` is unsafe because another thread could read the environment
//! at the same time; the instance changes it only while it is single-threaded.

/// Sets `key` to `value`.
pub fn set(key: &str, value: &str) {
    debug_assert_eq!(super::thread_count(), Some(1));
    // SAFETY: the process is single-threaded (the master never starts threads), so no
    // other thread can read or write the environment concurrently.
    unsafe { std::env::set_var(key, value) }
}

/// Removes `key`.
pub fn remove(key: &str) {
    debug_assert_eq!(super::thread_count(), Some(1));
    // SAFETY: as in `set`: single-threaded.
    unsafe { std::env::remove_var(key) }
}
