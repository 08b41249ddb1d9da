//! Changing the process environment (`env`, `unenv`, `UWSGI_RELOADS`, the reload socket
//! map). `std::env::set_var` is unsafe because another thread could read the environment
//! at the same time; the instance changes it only while it is single-threaded, or while
//! its only other thread is the `threaded-logger` thread, which never reads the
//! environment (it polls, reads and writes descriptors).

fn single_threaded() -> bool {
    super::thread_count() == Some(1)
        || (crate::logging::threaded() && super::thread_count() == Some(2))
}

/// Sets `key` to `value`.
pub fn set(key: &str, value: &str) {
    debug_assert!(single_threaded());
    // SAFETY: the process is single-threaded (the master starts no threads but the
    // logger thread, which never touches the environment), so no other thread can read
    // or write the environment concurrently.
    unsafe { std::env::set_var(key, value) }
}

/// Removes `key`.
pub fn remove(key: &str) {
    debug_assert!(single_threaded());
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(key) }
}
