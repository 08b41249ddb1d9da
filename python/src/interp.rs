//! The interpreter's life in the vassal: PEP 587 initialisation (home or PEP 405 venv,
//! optimisation, site), the GIL hand-off after init (the master and the workers' threads
//! run Rust code without the GIL), and CPython's own fork protocol around every fork
//! (`PyOS_BeforeFork`, `PyOS_AfterFork_Parent`, `PyOS_AfterFork_Child`). The CPython C
//! API calls that PyO3 has no safe form for live here.

use crate::options::PyOptions;
use crate::plog;
use pyo3::ffi;
use std::ffi::{CStr, CString};
use std::path::Path;
use std::sync::Mutex;

/// Why the interpreter could not start.
#[derive(Debug)]
pub struct InitError(pub String);

fn status_error(status: &ffi::PyStatus, what: &str) -> InitError {
    let msg = if status.err_msg.is_null() {
        String::new()
    } else {
        // SAFETY: a PyStatus error message is a static NUL-terminated C string.
        unsafe { CStr::from_ptr(status.err_msg) }
            .to_string_lossy()
            .into_owned()
    };
    InitError(format!("{what}: {msg}"))
}

/// Sets one string field of a PyConfig from a path/text.
///
/// # Safety
/// `config` must be an initialised PyConfig and `field` one of its `wchar_t*` fields.
unsafe fn set_string(
    config: *mut ffi::PyConfig,
    field: *mut *mut libc::wchar_t,
    value: &str,
) -> Result<(), InitError> {
    let c = CString::new(value).map_err(|_| InitError(format!("a NUL byte in {value:?}")))?;
    // SAFETY: guaranteed by the caller; the C string lives across the call, which copies it.
    let st = unsafe { ffi::PyConfig_SetBytesString(config, field, c.as_ptr()) };
    // SAFETY: PyStatus_Exception only reads the status.
    if unsafe { ffi::PyStatus_Exception(st) } != 0 {
        return Err(status_error(&st, "PyConfig_SetBytesString"));
    }
    Ok(())
}

/// Starts the interpreter (in the master, before any fork) and logs uWSGI's lines:
/// `Python version: ...`, the home/venv lines, `Python main interpreter initialized at
/// 0x...`, `python threads support enabled`. The GIL is held on return.
pub fn initialize(opts: &PyOptions) -> Result<(), InitError> {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string; callable before init.
    let version = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }
        .to_string_lossy()
        .replace('\n', " ");
    plog!("Python version: {version}");
    let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
    let cfg = config.as_mut_ptr();
    // SAFETY: PyConfig_InitPythonConfig initialises every field of the struct.
    unsafe { ffi::PyConfig_InitPythonConfig(cfg) };
    let result = (|| {
        // SAFETY: `cfg` was initialised above; the fields below are plain ints or are set
        // through PyConfig_SetBytesString, which owns its copies.
        unsafe {
            (*cfg).install_signal_handlers = 0;
            (*cfg).parse_argv = 0;
            (*cfg).buffered_stdio = 0;
            (*cfg).optimization_level = opts.optimize;
            (*cfg).site_import = i32::from(!opts.no_site);
            if let Some(home) = &opts.home {
                if !Path::new(home).is_dir() {
                    plog!("!!! Python Home is not a directory: {home} !!!");
                }
                if Path::new(home).join("pyvenv.cfg").exists() {
                    plog!("PEP 405 virtualenv detected: {home}");
                    let exe = Path::new(home)
                        .join("bin")
                        .join("python")
                        .to_string_lossy()
                        .into_owned();
                    set_string(cfg, &mut (*cfg).program_name, &exe)?;
                    set_string(cfg, &mut (*cfg).executable, &exe)?;
                } else {
                    set_string(cfg, &mut (*cfg).home, home)?;
                }
                plog!("Set PythonHome to {home}");
            }
            if let Some(name) = &opts.py_programname {
                set_string(cfg, &mut (*cfg).program_name, name)?;
            }
            let st = ffi::Py_InitializeFromConfig(cfg);
            if ffi::PyStatus_Exception(st) != 0 {
                return Err(status_error(&st, "Py_InitializeFromConfig"));
            }
        }
        Ok(())
    })();
    // SAFETY: frees the strings the config owns; the config is not used afterwards.
    unsafe { ffi::PyConfig_Clear(cfg) };
    result?;
    // SAFETY: the interpreter is initialised; the pointer is only printed.
    let main = unsafe { ffi::PyInterpreterState_Main() };
    plog!("Python main interpreter initialized at {main:p}");
    plog!("python threads support enabled");
    Ok(())
}

/// Releases the GIL held since `initialize`: from now on every entry into Python takes it
/// with `PyGILState_Ensure` (PyO3's `with_gil`), which finds the thread's existing state.
pub fn release_main_gil() {
    // SAFETY: called once, on the thread that initialised the interpreter and holds the
    // GIL; its thread state stays registered for that thread and is restored by
    // PyGILState_Ensure later.
    unsafe {
        ffi::PyEval_SaveThread();
    }
}

/// The GIL state taken in `before_fork`, released by the after-fork hooks.
static FORK_GIL: Mutex<Option<ffi::PyGILState_STATE>> = Mutex::new(None);

/// Takes the GIL and runs CPython's pre-fork hooks (`os.register_at_fork(before=...)`,
/// the import lock), so the child gets a consistent interpreter.
pub fn before_fork() {
    // SAFETY: the interpreter is initialised; PyOS_BeforeFork requires the GIL, which
    // PyGILState_Ensure takes on this thread.
    let g = unsafe {
        let g = ffi::PyGILState_Ensure();
        ffi::PyOS_BeforeFork();
        g
    };
    *FORK_GIL.lock().unwrap_or_else(|p| p.into_inner()) = Some(g);
}

/// In the parent after the fork: CPython's parent hooks, then the GIL is released.
pub fn after_fork_parent() {
    let g = FORK_GIL.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(g) = g {
        // SAFETY: paired with `before_fork` on the same thread, which still holds the GIL.
        unsafe {
            ffi::PyOS_AfterFork_Parent();
            ffi::PyGILState_Release(g);
        }
    }
}

/// In the child after the fork: CPython re-creates its GIL and threading state (other
/// threads of the parent do not exist here) and runs `after_in_child` hooks; then the GIL
/// is released for the worker's own threads.
pub fn after_fork_child() {
    let g = FORK_GIL.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(g) = g {
        // SAFETY: paired with `before_fork`, whose thread is the only thread of the child
        // and holds the GIL, as PyOS_AfterFork_Child requires.
        unsafe {
            ffi::PyOS_AfterFork_Child();
            ffi::PyGILState_Release(g);
        }
    }
}

/// Gives a request thread its own, permanent Python thread state (so `threading` sees one
/// thread per core, with its name), then releases the GIL.
pub fn attach_thread() {
    // SAFETY: the interpreter is initialised. PyGILState_Ensure creates this thread's
    // state (or finds it) and takes the GIL; PyEval_SaveThread releases the GIL while
    // keeping the state registered, so later PyGILState_Ensure calls reuse it.
    unsafe {
        ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
}

/// The main interpreter's address, for the log lines.
pub fn main_address() -> usize {
    // SAFETY: only called once the interpreter is initialised; the pointer is not used.
    unsafe { ffi::PyInterpreterState_Main() as usize }
}
