//! The Emperor's own hook phases besides `exec-as-*` (which `lifecycle`/`spawn` run):
//! `as-emperor` (`hook-as-emperor`, `mount-as-emperor`, `umount-as-emperor`,
//! `call-as-emperor[1|2|4]`) runs in the Emperor after a vassal is spawned, failures only
//! logged; `as-vassal` (`hook-as-vassal`, `mount-as-vassal`, `umount-as-vassal`,
//! `call-as-vassal[1|3]`) runs in the vassal's process before it execs the vassal binary,
//! and a failure keeps the vassal from starting. The actions are the vassal's (`imperium_vassal::hooks`): one parser, one
//! implementation.
//!
//! The vassal's process between fork and exec may only make async-signal-safe calls, so
//! the `as-vassal` hooks run in a helper: the spawn wrapper script (see
//! `spawn::wrap_with_hooks`) runs this binary with [`HELPER_ENV`] set, in the vassal's
//! process tree and namespaces, before the exec.

use crate::settings::Settings;

/// Set to `<kind>\t<value>` (kind: `hook`, `mount`, `umount`; or `call0`, `call1`, `call3`
/// with `<function>\t<name>\t<uid>\t<gid>`), it makes the binary run one `as-vassal` hook
/// and exit (0 on success).
pub const HELPER_ENV: &str = "IMPERIUM_AS_VASSAL_HOOK";

/// The `as-vassal` hooks of `s` for vassal `name` (run as `uid`/`gid`), as `(kind, value)`
/// for [`helper_main`], in uWSGI's order (the spawn wrapper runs `exec-as-vassal` between
/// the unmounts and the calls).
pub fn as_vassal(s: &Settings, name: &str, uid: u32, gid: u32) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    v.extend(s.hook_as_vassal.iter().map(|h| ("hook", h.clone())));
    v.extend(s.mount_as_vassal.iter().map(|h| ("mount", h.clone())));
    v.extend(s.umount_as_vassal.iter().map(|h| ("umount", h.clone())));
    let call = |f: &String| format!("{f}\t{name}\t{uid}\t{gid}");
    v.extend(s.call_as_vassal.iter().map(|f| ("call0", call(f))));
    v.extend(s.call_as_vassal1.iter().map(|f| ("call1", call(f))));
    v.extend(s.call_as_vassal3.iter().map(|f| ("call3", call(f))));
    v
}

/// The helper's main: runs the hook `spec` (`<kind>\t<value>`) and returns the exit code.
pub fn helper_main(spec: &str) -> i32 {
    use imperium_vassal::hooks;
    let (kind, value) = spec.split_once('\t').unwrap_or(("hook", spec));
    let r = match kind {
        "mount" => {
            log!("mounting \"{value}\" (as-vassal)...");
            hooks::mount(value)
        }
        "umount" => {
            log!("un-mounting \"{value}\" (as-vassal)...");
            hooks::umount(value)
        }
        "call0" | "call1" | "call3" => return call_as_vassal(kind, value),
        _ => hooks::run_line(None, value, "as-vassal"),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            log!("{e}");
            1
        }
    }
}

/// `call-as-vassal`, `-1` (name), `-3` (name, uid, gid): `value` is
/// `<function>\t<name>\t<uid>\t<gid>`; a function that is not found fails the spawn.
fn call_as_vassal(kind: &str, value: &str) -> i32 {
    let mut it = value.split('\t');
    let (f, name) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
    let uid: u32 = it.next().and_then(|u| u.parse().ok()).unwrap_or(0);
    let gid: u32 = it.next().and_then(|g| g.parse().ok()).unwrap_or(0);
    let Some(sym) = lookup(f) else {
        log!("unable to call function \"{f}\"");
        return 1;
    };
    let cname = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: the configuration names a C function with this signature (uWSGI's contract
    // for call-as-vassal*); the arguments live across the call.
    unsafe {
        match kind {
            "call0" => std::mem::transmute::<*mut libc::c_void, extern "C" fn()>(sym)(),
            "call1" => {
                std::mem::transmute::<*mut libc::c_void, extern "C" fn(*const libc::c_char)>(sym)(
                    cname.as_ptr(),
                )
            }
            _ => std::mem::transmute::<
                *mut libc::c_void,
                extern "C" fn(*const libc::c_char, libc::uid_t, libc::gid_t),
            >(sym)(cname.as_ptr(), uid, gid),
        }
    }
    0
}

/// The `as-emperor` phase for a vassal just spawned, in uWSGI's order (hooks, mounts,
/// unmounts; `exec-as-emperor` is the caller's; then the `call-as-emperor` functions).
pub fn as_emperor(s: &Settings, name: &str, pid: i32, uid: u32, gid: u32) {
    use imperium_vassal::hooks;
    for line in &s.hook_as_emperor {
        if let Err(e) = hooks::run_line(None, line, "as-emperor") {
            log!("{e}");
        }
    }
    for v in &s.mount_as_emperor {
        log!(
            "mounting \"{v}\" (as-emperor for vassal \"{name}\" pid: {pid} uid: {uid} gid: {gid})..."
        );
        if hooks::mount(v).is_err() {
            log!("unable to mount {v}");
        }
    }
    for v in &s.umount_as_emperor {
        log!(
            "un-mounting \"{v}\" (as-emperor for vassal \"{name}\" pid: {pid} uid: {uid} gid: {gid})..."
        );
        if hooks::umount(v).is_err() {
            log!("unable to umount {v}");
        }
    }
}

/// `call-as-emperor`, `-1` (name), `-2` (name, pid), `-4` (name, pid, uid, gid): functions
/// found with `dlsym(RTLD_DEFAULT)` in the Emperor's process (a library it loaded).
pub fn as_emperor_calls(s: &Settings, name: &str, pid: i32, uid: u32, gid: u32) {
    let cname = std::ffi::CString::new(name).unwrap_or_default();
    let groups: [(&[String], u8); 4] = [
        (&s.call_as_emperor, 0),
        (&s.call_as_emperor1, 1),
        (&s.call_as_emperor2, 2),
        (&s.call_as_emperor4, 4),
    ];
    for (names, arity) in groups {
        for f in names {
            let Some(sym) = lookup(f) else {
                log!("unable to call function \"{f}\"");
                continue;
            };
            // SAFETY: the configuration names a C function with this signature (uWSGI's
            // contract for call-as-emperor*); the arguments live across the call.
            unsafe {
                match arity {
                    0 => std::mem::transmute::<*mut libc::c_void, extern "C" fn()>(sym)(),
                    1 => {
                        std::mem::transmute::<*mut libc::c_void, extern "C" fn(*const libc::c_char)>(
                            sym,
                        )(cname.as_ptr())
                    }
                    2 => std::mem::transmute::<
                        *mut libc::c_void,
                        extern "C" fn(*const libc::c_char, libc::pid_t),
                    >(sym)(cname.as_ptr(), pid),
                    _ => std::mem::transmute::<
                        *mut libc::c_void,
                        extern "C" fn(*const libc::c_char, libc::pid_t, libc::uid_t, libc::gid_t),
                    >(sym)(cname.as_ptr(), pid, uid, gid),
                }
            }
        }
    }
}

/// `dlsym(RTLD_DEFAULT, name)`.
fn lookup(name: &str) -> Option<*mut libc::c_void> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: RTLD_DEFAULT searches the loaded objects; `c` is a valid C string.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) };
    (!p.is_null()).then_some(p)
}
