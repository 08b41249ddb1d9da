//! One WSGI request (PEP 3333 as uWSGI's CPython plugin serves it, minus its bugs): the
//! environ built from the request variables (latin-1 native strings), `start_response`
//! with uWSGI's validation, the `write` callable, `wsgi.input`, `wsgi.file_wrapper`
//! (sendfile for real files), and the body loop. The response head goes to the vassal
//! with the body length when it is known (a bytes result, a list of bytes, an iterable
//! that yields one chunk, a file), so the vassal can send `Content-Length` and keep the
//! connection alive. `close()` of the result is called on every path. The GIL is
//! released around every socket operation.

use crate::apps;
use crate::file_wrapper::{FileWrapper, try_sendfile};
use crate::host::{self, Req};
use crate::input::Input;
use crate::plog;
use crate::start_response::Responder;
use crate::state;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// The request this thread serves (for `uwsgi.connection_fd()` and friends).
    static CURRENT: Cell<Option<Req>> = const { Cell::new(None) };
    /// Requests served by this thread (`uwsgi.request_id()`).
    static REQUEST_ID: Cell<u64> = const { Cell::new(0) };
}

/// The request being served on this thread, if any.
pub fn current() -> Option<Req> {
    CURRENT.with(Cell::get)
}

/// `uwsgi.request_id()`: requests this thread served before the current one.
pub fn request_id() -> u64 {
    REQUEST_ID.with(Cell::get)
}

/// A latin-1 native string (PEP 3333), without a copy for ASCII.
pub fn latin1<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(b) {
        Ok(s) if s.is_ascii() => PyString::new(py, s),
        _ => PyString::new(py, &latin1_string(b)),
    }
}

/// Decodes latin-1 bytes into a Rust string.
pub fn latin1_string(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

static ERRORS: GILOnceCell<PyObject> = GILOnceCell::new();
static VERSION: GILOnceCell<PyObject> = GILOnceCell::new();
static NODE: GILOnceCell<PyObject> = GILOnceCell::new();
static WSGI_VERSION: GILOnceCell<PyObject> = GILOnceCell::new();

fn get_var<'a>(vars: &[(&'a [u8], &'a [u8])], key: &[u8]) -> Option<&'a [u8]> {
    vars.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Builds the environ for a request.
fn environ<'py>(
    py: Python<'py>,
    vars: &[(&[u8], &[u8])],
    script_name: &str,
    path_info: Option<&str>,
    core: u32,
    input: Bound<'py, Input>,
) -> PyResult<Bound<'py, PyDict>> {
    let f = host::facts();
    let st = state::get();
    let env = PyDict::new(py);
    for (k, v) in vars {
        env.set_item(latin1(py, k), latin1(py, v))?;
    }
    env.set_item(pyo3::intern!(py, "SCRIPT_NAME"), script_name)?;
    if let Some(p) = path_info {
        env.set_item(pyo3::intern!(py, "PATH_INFO"), p)?;
    }
    let wv = WSGI_VERSION.get_or_try_init(py, || -> PyResult<PyObject> {
        Ok(PyTuple::new(py, [1, 0])?.into_any().unbind())
    })?;
    env.set_item(pyo3::intern!(py, "wsgi.version"), wv)?;
    let scheme = match get_var(vars, b"UWSGI_SCHEME") {
        Some(s) => latin1_string(s),
        None => match get_var(vars, b"HTTPS") {
            Some(h) if h.eq_ignore_ascii_case(b"on") || h.starts_with(b"1") => "https".into(),
            _ => "http".into(),
        },
    };
    env.set_item(pyo3::intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(pyo3::intern!(py, "wsgi.input"), input)?;
    let errors = ERRORS.get_or_try_init(py, || -> PyResult<PyObject> {
        Ok(py.import("sys")?.getattr("stderr")?.unbind())
    })?;
    env.set_item(pyo3::intern!(py, "wsgi.errors"), errors)?;
    env.set_item(pyo3::intern!(py, "wsgi.multithread"), f.threads > 1)?;
    env.set_item(pyo3::intern!(py, "wsgi.multiprocess"), f.processes > 1)?;
    env.set_item(pyo3::intern!(py, "wsgi.run_once"), false)?;
    if !st.opts.disable_file_wrapper {
        env.set_item(
            pyo3::intern!(py, "wsgi.file_wrapper"),
            py.get_type::<FileWrapper>(),
        )?;
    }
    let version = VERSION.get_or_init(py, || {
        PyBytes::new(py, f.version.as_bytes()).into_any().unbind()
    });
    env.set_item(pyo3::intern!(py, "uwsgi.version"), version)?;
    let node = NODE.get_or_init(py, || {
        PyBytes::new(py, f.hostname.as_bytes()).into_any().unbind()
    });
    env.set_item(pyo3::intern!(py, "uwsgi.node"), node)?;
    if f.threads > 1 {
        env.set_item(pyo3::intern!(py, "uwsgi.core"), core)?;
    }
    Ok(env)
}

/// The length of a result whose size is known without iterating it.
fn known_length(result: &Bound<'_, PyAny>) -> Option<i64> {
    if let Ok(b) = result.downcast::<PyBytes>() {
        return Some(b.as_bytes().len() as i64);
    }
    let items: Vec<Bound<'_, PyAny>> = if let Ok(l) = result.downcast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = result.downcast::<PyTuple>() {
        t.iter().collect()
    } else {
        return None;
    };
    let mut n = 0i64;
    for i in items {
        n += i.downcast::<PyBytes>().ok()?.as_bytes().len() as i64;
    }
    Some(n)
}

/// `wsgi-accept-buffer`: a chunk that is a buffer-protocol object (bytearray,
/// memoryview...) taken as its bytes.
fn accepted_buffer<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
    if !state::get().opts.wsgi_accept_buffer {
        return None;
    }
    let buf = pyo3::buffer::PyBuffer::<u8>::get(obj).ok()?;
    let bytes = buf.to_vec(py).ok()?;
    Some(PyBytes::new(py, &bytes))
}

/// Iterates the result and sends the body.
fn send_body(
    py: Python<'_>,
    resp: &Bound<'_, Responder>,
    result: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if let Ok(fw) = result.downcast::<FileWrapper>()
        && try_sendfile(py, resp, &fw.borrow())?.is_some()
    {
        return Ok(());
    }
    let strict_bytes = state::get().opts.wsgi_strict && result.is_instance_of::<PyBytes>();
    if !strict_bytes && let Some(len) = known_length(result) {
        resp.borrow_mut().send_head(len)?;
        if let Ok(b) = result.downcast::<PyBytes>() {
            resp.borrow_mut().send(py, b.as_bytes());
            return Ok(());
        }
    }
    let mut iter = result.try_iter()?;
    // The first chunk is held back: if the iterable ends after it, its length is the
    // body length.
    let mut held: Option<Bound<'_, PyBytes>> = None;
    loop {
        let next = iter.next().transpose()?;
        let Some(item) = next else { break };
        let chunk = match item.downcast_into::<PyBytes>() {
            Ok(b) => b,
            Err(e) => {
                let obj = e.into_inner();
                match accepted_buffer(py, &obj) {
                    Some(b) => b,
                    None => {
                        plog!(
                            "[ERROR] Unhandled object from iterator: {}",
                            obj.repr().map(|r| r.to_string()).unwrap_or_default()
                        );
                        continue;
                    }
                }
            }
        };
        if chunk.as_bytes().is_empty() {
            continue;
        }
        let mut me = resp.borrow_mut();
        if !me.sent && held.is_none() {
            held = Some(chunk);
            continue;
        }
        me.send_head(-1)?;
        if let Some(h) = held.take()
            && !me.send(py, h.as_bytes())
        {
            return Ok(());
        }
        if !me.send(py, chunk.as_bytes()) {
            return Ok(());
        }
    }
    let mut me = resp.borrow_mut();
    match held {
        Some(h) => {
            me.send_head(h.as_bytes().len() as i64)?;
            me.send(py, h.as_bytes());
        }
        None => me.send_head(0)?,
    }
    Ok(())
}

/// A `catch-exceptions` page.
fn exception_page(py: Python<'_>, err: &PyErr, vars: &[(&[u8], &[u8])]) -> String {
    let tb = py
        .import("traceback")
        .and_then(|t| t.call_method1("format_exception", (err.clone_ref(py).into_value(py),)))
        .and_then(|l| PyString::new(py, "").call_method1("join", (l,)))
        .map(|s| s.to_string())
        .unwrap_or_else(|_| err.to_string());
    let method = get_var(vars, b"REQUEST_METHOD")
        .map(latin1_string)
        .unwrap_or_default();
    let uri = get_var(vars, b"REQUEST_URI")
        .map(latin1_string)
        .unwrap_or_default();
    format!(
        "uWSGI exceptions catcher for \"{method} {uri}\" (request plugin: \"python\", modifier1: 0)\n\nException: {err}\n\n{tb}"
    )
}

/// Serves one request; returns the app id, or -1 when no app matched.
pub fn handle(py: Python<'_>, req: Req, vars: &[(&[u8], &[u8])], core: u32) -> i32 {
    let st = state::get();
    let mut script_name = get_var(vars, b"SCRIPT_NAME")
        .map(latin1_string)
        .unwrap_or_default();
    let mut path_info = None;
    if st.opts.manage_script_name
        && let Some(p) = get_var(vars, b"PATH_INFO")
        && let Some((sn, pi)) = apps::split_script_name(&latin1_string(p))
    {
        script_name = sn;
        path_info = Some(pi);
    }
    let key = match get_var(vars, b"UWSGI_APPID") {
        Some(k) => Some(latin1_string(k)),
        None if !st.opts.ignore_script_name => Some(script_name.clone()),
        None => None,
    };
    let Some(app_id) = apps::select(key.as_deref(), st.opts.no_default_app) else {
        plog!("--- no python application found, check your startup logs for errors ---");
        return -1;
    };
    let Some(callable) = apps::callable(py, app_id) else {
        return -1;
    };

    let alive = Arc::new(AtomicBool::new(true));
    CURRENT.with(|c| c.set(Some(req)));
    let outcome = (|| -> PyResult<()> {
        let content_length = get_var(vars, b"CONTENT_LENGTH")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let input = Bound::new(
            py,
            Input::new(
                py,
                req,
                alive.clone(),
                content_length,
                st.opts.post_buffering,
            )?,
        )?;
        let env = environ(py, vars, &script_name, path_info.as_deref(), core, input)?;
        let resp = Bound::new(
            py,
            Responder {
                req,
                alive: alive.clone(),
                status: None,
                headers: Vec::new(),
                sent: false,
                failed: false,
            },
        )?;
        if host::facts().threads <= 1 {
            let _ = state::uwsgi_module(py).and_then(|m| m.setattr("env", &env));
        }
        let result = callable
            .bind(py)
            .call1((env, resp.clone()))
            .map_err(|e| with_resp(e, &resp))?;
        let body = send_body(py, &resp, &result);
        // close() on every path, the body's error (if any) reported first. The built-in
        // sequences have none: asking them would raise (and drop) an AttributeError on
        // every request.
        let builtin = result.is_exact_instance_of::<PyList>()
            || result.is_exact_instance_of::<PyTuple>()
            || result.is_instance_of::<PyBytes>();
        let closed = match builtin {
            true => Ok(()),
            false => match result.getattr(pyo3::intern!(py, "close")) {
                Ok(close) => close.call0().map(|_| ()),
                Err(_) => Ok(()),
            },
        };
        body.and(closed).map_err(|e| with_resp(e, &resp))
    })();
    match outcome {
        Ok(_) => {}
        Err(e) => {
            let resp = RESP_OF_ERROR.with(|r| r.take());
            let sent = resp.as_ref().is_some_and(|r| r.bind(py).borrow().sent);
            host::stat(crate::abi::stat::ADD_EXCEPTION, 0);
            if st.opts.catch_exceptions
                && !sent
                && let Some(r) = &resp
            {
                let page = exception_page(py, &e, vars);
                e.print(py);
                let mut me = r.bind(py).borrow_mut();
                me.status = Some(b"500 Internal Server Error".to_vec());
                me.headers = vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())];
                let _ = me.send_head(page.len() as i64);
                me.send(py, page.as_bytes());
            } else {
                e.print(py);
                if sent {
                    req.abort();
                }
            }
            if exception_recycles(py, &e) {
                host::stat(crate::abi::stat::RECYCLE_WORKER, 0);
            }
        }
    }
    alive.store(false, Ordering::Release);
    CURRENT.with(|c| c.set(None));
    REQUEST_ID.with(|c| c.set(c.get() + 1));
    // A dict lookup, not getattr: a missing attribute would cost an exception per request.
    if let Ok(m) = state::uwsgi_module(py)
        && let Ok(Some(hook)) = m.dict().get_item("after_req_hook")
        && !hook.is_none()
        && let Err(e) = hook.call0()
    {
        e.print(py);
    }
    app_id as i32
}

/// `reload-on-exception[-type/-value/-repr]`: the class name, `str()` and
/// `Class: str()` of the exception, as uWSGI's Python plugin reports them.
fn exception_recycles(py: Python<'_>, e: &PyErr) -> bool {
    let o = &state::get().opts;
    if o.reload_on_exception {
        return true;
    }
    if o.reload_on_exception_type.is_empty()
        && o.reload_on_exception_value.is_empty()
        && o.reload_on_exception_repr.is_empty()
    {
        return false;
    }
    let class = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let value = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let repr = format!("{class}: {value}");
    o.exception_recycles(&class, &value, &repr)
}

thread_local! {
    /// The responder of the request whose error is being handled.
    static RESP_OF_ERROR: Cell<Option<Py<Responder>>> = const { Cell::new(None) };
}

fn with_resp(e: PyErr, resp: &Bound<'_, Responder>) -> PyErr {
    RESP_OF_ERROR.with(|r| r.set(Some(resp.clone().unbind())));
    e
}
