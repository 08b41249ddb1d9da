//! `call`-family hooks: look a C symbol up in the process (`dlsym(RTLD_DEFAULT)`) and call
//! it with one string or integer argument, as uWSGI's `call:`, `callret:`, `callint:` and
//! `callintret:` hook actions do. Only exported C functions of the binary and the libraries
//! it loaded (libc's `putenv`, `chdir`, `sethostname`...) can be reached.

use std::ffi::{CString, c_char, c_int, c_void};

/// A symbol found in the process.
pub struct Symbol(*mut c_void);

/// Looks `name` up; `None` when no loaded object exports it.
pub fn lookup(name: &str) -> Option<Symbol> {
    let c = CString::new(name).ok()?;
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loaded objects' symbol tables; the
    // name is a valid NUL-terminated string that outlives the call.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) };
    (!p.is_null()).then_some(Symbol(p))
}

impl Symbol {
    /// Calls it as `int f(char *)` (a NULL pointer when `arg` is `None`).
    pub fn call_str(&self, arg: Option<&str>) -> Option<c_int> {
        let c = match arg {
            Some(a) => Some(CString::new(a).ok()?),
            None => None,
        };
        // The string is leaked on purpose: functions such as putenv() keep the pointer.
        let ptr: *mut c_char = c.map_or(std::ptr::null_mut(), CString::into_raw);
        // SAFETY: the user names a function taking one pointer argument and returning an
        // int (uWSGI's contract for these hooks); the argument is a valid C string that is
        // never freed.
        let f: extern "C" fn(*mut c_char) -> c_int = unsafe { std::mem::transmute(self.0) };
        Some(f(ptr))
    }

    /// Calls it as `int f(int)`.
    pub fn call_int(&self, arg: c_int) -> c_int {
        // SAFETY: as above, with an int argument (uWSGI's `callint` contract).
        let f: extern "C" fn(c_int) -> c_int = unsafe { std::mem::transmute(self.0) };
        f(arg)
    }
}
