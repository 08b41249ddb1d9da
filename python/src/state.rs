//! The plugin's process-wide state: the Python options and the `uwsgi` module object.

use crate::options::PyOptions;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use std::sync::OnceLock;

/// Set once by `init`.
pub struct State {
    pub opts: PyOptions,
    /// Every configuration entry (for `uwsgi.opt`).
    pub entries: Vec<crate::host::Entry>,
}

static STATE: OnceLock<State> = OnceLock::new();
static UWSGI: GILOnceCell<Py<PyModule>> = GILOnceCell::new();

pub fn set(s: State) {
    let _ = STATE.set(s);
}

/// The state (defaults before `init`).
pub fn get() -> &'static State {
    static EMPTY: OnceLock<State> = OnceLock::new();
    STATE.get().unwrap_or_else(|| {
        EMPTY.get_or_init(|| State {
            opts: PyOptions::default(),
            entries: Vec::new(),
        })
    })
}

pub fn set_uwsgi_module(py: Python<'_>, m: Py<PyModule>) {
    let _ = UWSGI.set(py, m);
}

/// The `uwsgi` module.
pub fn uwsgi_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    match UWSGI.get(py) {
        Some(m) => Ok(m.bind(py).clone()),
        None => Err(pyo3::exceptions::PyRuntimeError::new_err(
            "the uwsgi module is not initialised",
        )),
    }
}
