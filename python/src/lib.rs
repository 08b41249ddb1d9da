//! imperium's CPython plugin (`python3XY_plugin.so`): hosts WSGI applications in a vassal.
//! The vassal dlopen()s it and calls the entry points of the [`abi::Plugin`] table it
//! exports as `imperium_plugin_v3`; the request loop, parsing, response framing and
//! sendfile stay in the vassal (Rust), and Python is entered once per request.
//!
//! Modules: [`host`] (the vassal's callbacks, unsafe FFI), [`interp`] (interpreter start
//! and fork protocol, unsafe FFI), [`options`], [`apps`] (the app table and routing),
//! [`wsgi`] (environ, the body loop), [`start_response`], [`file_wrapper`], [`input`]
//! (`wsgi.input`), [`module`] (the
//! native `_uwsgi` and the `uwsgi`/`uwsgidecorators` bootstrap), [`state`].

#[allow(dead_code)]
#[path = "../../vassal/src/app/abi.rs"]
pub mod abi;
pub mod apps;
pub mod file_wrapper;
pub mod host;
pub mod input;
pub mod interp;
pub mod module;
pub mod options;
pub mod start_response;
pub mod state;
pub mod wsgi;

use abi::{Host, Instance, KeyVal, Opt, Plugin};
use pyo3::prelude::*;
use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into `fallback` (a panic must not unwind into the vassal).
fn guard<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            plog!("!!! python plugin: panic in {what} !!!");
            fallback
        }
    }
}

extern "C" fn init(h: *const Host, instance: *const Instance, opts: *const Opt, n: usize) -> i32 {
    guard("init", -1, || {
        let Some(entries) = host::install(h, instance, opts, n) else {
            return -1;
        };
        let opts = options::PyOptions::from_entries(&entries);
        if let Some(b) = &opts.wsgi_env_behaviour
            && b != "holy"
            && b != "cheat"
        {
            plog!("invalid wsgi-env-behaviour value: {b}");
            return -1;
        }
        state::set(state::State { opts, entries });
        if let Err(e) = interp::initialize(&state::get().opts) {
            plog!(
                "!!! unable to initialize the Python interpreter: {} !!!",
                e.0
            );
            return -1;
        }
        let ok = Python::with_gil(|py| {
            if let Err(e) = module::bootstrap(py) {
                e.print(py);
                return false;
            }
            // uWSGI maps pymodule-alias before its `uwsgi` module exists and
            // post-pymodule-alias after; here both follow the bootstrap (sys.path is set).
            let o = &state::get().opts;
            if !apps::alias_modules(py, &o.pymodule_alias)
                || !apps::alias_modules(py, &o.post_pymodule_alias)
            {
                return false;
            }
            for m in &state::get().opts.shared_imports {
                if let Err(e) = py.import(m.as_str()) {
                    e.print(py);
                }
            }
            true
        });
        interp::release_main_gil();
        if ok { 0 } else { -1 }
    })
}

extern "C" fn load_apps() -> i32 {
    guard("load_apps", 0, || {
        Python::with_gil(|py| apps::load_all(py, &state::get().opts) as i32)
    })
}

extern "C" fn before_fork() {
    guard("before_fork", (), interp::before_fork)
}

extern "C" fn after_fork_parent() {
    guard("after_fork_parent", (), interp::after_fork_parent)
}

extern "C" fn after_fork_child() {
    guard("after_fork_child", (), interp::after_fork_child)
}

extern "C" fn worker_init(worker_id: u32) -> i32 {
    guard("worker_init", 0, || {
        module::WORKER_ID.store(worker_id, std::sync::atomic::Ordering::Relaxed);
        Python::with_gil(|py| {
            // A fresh random sequence per worker (they share the master's state otherwise).
            if let Err(e) = py.import("random").and_then(|r| r.call_method0("seed")) {
                e.print(py);
            }
            if let Ok(m) = state::uwsgi_module(py)
                && let Ok(hook) = m.getattr("post_fork_hook")
                && !hook.is_none()
                && let Err(e) = hook.call0()
            {
                e.print(py);
            }
            let opts = &state::get().opts;
            if host::facts().lazy_apps {
                apps::load_all(py, opts);
            }
            if let Some(script) = &opts.pyrun {
                apps::pyrun(py, script);
            }
            if let Some(base) = &opts.py_tracebacker {
                let start = state::uwsgi_module(py)
                    .and_then(|m| m.getattr("_start_tracebacker"))
                    .and_then(|f| f.call1((base.as_str(),)));
                if let Err(e) = start {
                    e.print(py);
                }
            }
            if opts.py_autoreload > 0 {
                let start = state::uwsgi_module(py)
                    .and_then(|m| m.getattr("_start_autoreloader"))
                    .and_then(|f| f.call1((opts.py_autoreload, opts.py_autoreload_ignore.clone())));
                if let Err(e) = start {
                    e.print(py);
                }
            }
            apps::count() as i32
        })
    })
}

extern "C" fn thread_init(core: u32) {
    guard("thread_init", (), || {
        interp::attach_thread();
        let name = format!(
            "uWSGIWorker{}Core{core}",
            module::WORKER_ID.load(std::sync::atomic::Ordering::Relaxed)
        );
        Python::with_gil(|py| {
            if let Err(e) = py
                .import("threading")
                .and_then(|t| t.call_method0("current_thread"))
                .and_then(|t| t.setattr("name", name))
            {
                e.print(py);
            }
        });
    })
}

extern "C" fn request(req: *mut c_void, vars: *const KeyVal, n: usize, core: u32) -> i32 {
    guard("request", -1, || {
        let vars = host::vars(vars, n);
        Python::with_gil(|py| wsgi::handle(py, host::Req::new(req), &vars, core))
    })
}

/// The raw-socket handler the vassal looks up with dlsym() (`abi::RAW_SYMBOL`):
/// `python-raw`'s callable gets the connection's descriptor.
#[unsafe(no_mangle)]
pub extern "C" fn imperium_plugin_raw_v1(fd: i32, _core: u32) -> i32 {
    guard("raw", -1, || {
        Python::with_gil(|py| apps::raw_request(py, fd))
    })
}

extern "C" fn atexit() {
    guard("atexit", (), || {
        Python::with_gil(|py| {
            if let Ok(m) = state::uwsgi_module(py)
                && let Ok(hook) = m.getattr("atexit")
                && !hook.is_none()
                && let Err(e) = hook.call0()
            {
                e.print(py);
            }
            if let Err(e) = py
                .import("atexit")
                .and_then(|a| a.call_method0("_run_exitfuncs"))
            {
                e.print(py);
            }
        })
    })
}

/// The table the vassal looks up with dlsym().
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
pub static imperium_plugin_v3: Plugin = Plugin {
    abi_version: abi::ABI_VERSION,
    name: c"python".as_ptr() as *const c_char,
    version: concat!(env!("IMPERIUM_PY_VERSION"), "\0").as_ptr() as *const c_char,
    init,
    load_apps,
    before_fork,
    after_fork_parent,
    after_fork_child,
    worker_init,
    thread_init,
    request,
    atexit,
};
