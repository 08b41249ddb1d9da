//! The native `_uwsgi` module: the few primitives the `uwsgi` module (written in Python,
//! `bootstrap.py`) is built on. Kept small on purpose: what can be done in Python is.

use crate::abi::stat;
use crate::host;
use crate::state;
use crate::wsgi;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// This process's worker id (0 in the master).
pub static WORKER_ID: AtomicU32 = AtomicU32::new(0);

#[pyfunction]
fn worker_id() -> u32 {
    WORKER_ID.load(Relaxed)
}

#[pyfunction]
fn masterpid() -> i32 {
    host::facts().master_pid
}

#[pyfunction]
fn log(msg: &Bound<'_, PyAny>) -> PyResult<bool> {
    let s = msg.str()?;
    host::log(s.to_str()?);
    Ok(true)
}

#[pyfunction]
fn reload() -> Option<bool> {
    host::reload().then_some(true)
}

#[pyfunction]
fn stop() -> Option<bool> {
    host::stop().then_some(true)
}

#[pyfunction]
fn total_requests() -> i64 {
    host::stat(stat::TOTAL_REQUESTS, 0).max(0)
}

#[pyfunction]
fn request_id() -> u64 {
    wsgi::request_id()
}

#[pyfunction]
fn connection_fd() -> PyResult<i32> {
    wsgi::current()
        .map(|r| r.fd())
        .ok_or_else(|| PyOSError::new_err("connection_fd() called outside of a request"))
}

/// A counter of the instance (`abi::stat` ids); -1 when unknown.
#[pyfunction]
#[pyo3(name = "stat")]
fn stat_(what: u32, arg: i64) -> i64 {
    host::stat(what, arg)
}

/// Hands a log variable of the current request to the vassal (for `log-format`).
#[pyfunction]
fn set_logvar(key: &str, value: &str) {
    if let Some(r) = wsgi::current() {
        r.logvar(key, value);
    }
}

#[pyfunction]
fn setprocname(name: &str) -> PyResult<()> {
    let short: String = name.chars().take(15).collect();
    std::fs::write("/proc/self/comm", short).map_err(|e| PyOSError::new_err(e.to_string()))
}

/// The instance facts as a dict.
#[pyfunction]
fn instance(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let f = host::facts();
    let d = PyDict::new(py);
    d.set_item("version", PyBytes::new(py, f.version.as_bytes()))?;
    d.set_item("hostname", PyBytes::new(py, f.hostname.as_bytes()))?;
    d.set_item("numproc", f.processes)?;
    d.set_item("cores", f.threads)?;
    d.set_item("buffer_size", f.buffer_size)?;
    d.set_item("started_on", f.started_on)?;
    d.set_item("master", f.master)?;
    d.set_item("lazy_apps", f.lazy_apps)?;
    d.set_item("binary", &f.binary)?;
    let o = &state::get().opts;
    d.set_item("pythonpath", o.pythonpath.clone())?;
    d.set_item("pyargv", o.pyargv.clone())?;
    d.set_item("py_executable", o.py_executable.clone())?;
    d.set_item("locks", o.locks)?;
    d.set_item(
        "is_a_reload",
        std::env::var("UWSGI_RELOADS").is_ok_and(|v| v.trim() != "0"),
    )?;
    Ok(d)
}

/// The configuration entries as `(key, value, is_flag)`.
#[pyfunction]
fn options(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let items: Vec<(String, String, bool)> = state::get()
        .entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone(), e.flag))
        .collect();
    PyList::new(py, items)
}

/// The app table as `(id, mountpoint, startup_time, callable repr)` tuples.
#[pyfunction]
fn apps(py: Python<'_>) -> Vec<(usize, String, f64, String)> {
    crate::apps::describe(py)
}

/// Creates `_uwsgi`.
pub fn native(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "_uwsgi")?;
    m.add_function(wrap_pyfunction!(worker_id, &m)?)?;
    m.add_function(wrap_pyfunction!(masterpid, &m)?)?;
    m.add_function(wrap_pyfunction!(log, &m)?)?;
    m.add_function(wrap_pyfunction!(reload, &m)?)?;
    m.add_function(wrap_pyfunction!(stop, &m)?)?;
    m.add_function(wrap_pyfunction!(total_requests, &m)?)?;
    m.add_function(wrap_pyfunction!(request_id, &m)?)?;
    m.add_function(wrap_pyfunction!(connection_fd, &m)?)?;
    m.add_function(wrap_pyfunction!(stat_, &m)?)?;
    m.add_function(wrap_pyfunction!(setprocname, &m)?)?;
    m.add_function(wrap_pyfunction!(set_logvar, &m)?)?;
    m.add_function(wrap_pyfunction!(instance, &m)?)?;
    m.add_function(wrap_pyfunction!(options, &m)?)?;
    m.add_function(wrap_pyfunction!(apps, &m)?)?;
    m.add_class::<crate::file_wrapper::FileWrapper>()?;
    Ok(m)
}

/// Builds `_uwsgi`, runs the bootstrap that creates `uwsgi` (and registers
/// `uwsgidecorators`), and sets up `sys.path`, `sys.argv`, `sys.executable`.
pub fn bootstrap(py: Python<'_>) -> PyResult<()> {
    let native = native(py)?;
    let sys = py.import("sys")?;
    sys.getattr("modules")?.set_item("_uwsgi", &native)?;
    let globals = PyDict::new(py);
    globals.set_item("__builtins__", py.import("builtins")?)?;
    globals.set_item("__name__", "uwsgi_bootstrap")?;
    globals.set_item("_uwsgi", &native)?;
    globals.set_item("_DECORATORS_SOURCE", include_str!("uwsgidecorators.py"))?;
    let code = std::ffi::CString::new(include_str!("bootstrap.py"))
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    py.run(&code, Some(&globals), None)?;
    let m = sys
        .getattr("modules")?
        .get_item("uwsgi")?
        .downcast_into::<PyModule>()?;
    state::set_uwsgi_module(py, m.unbind());
    Ok(())
}
