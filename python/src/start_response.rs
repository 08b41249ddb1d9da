//! `start_response` of one request, also holding the response state: uWSGI's
//! validation (status a latin-1 `str`, headers a list of 2-tuples of `str`), the last call
//! before any body byte wins, `exc_info` re-raised once the head is out, and the `write`
//! callable. The head goes to the vassal (which frames it) at the first body byte.

use crate::host::Req;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Encodes a str as latin-1 (`None` when it has code points above U+00FF).
pub(crate) fn to_latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// The `start_response` callable of one request, also holding the response state.
#[pyclass(module = "uwsgi", name = "StartResponse")]
pub struct Responder {
    pub(crate) req: Req,
    pub(crate) alive: Arc<AtomicBool>,
    pub(crate) status: Option<Vec<u8>>,
    pub(crate) headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The head went to the vassal.
    pub(crate) sent: bool,
    /// The client went away.
    pub(crate) failed: bool,
}

impl Responder {
    fn check_alive(&self) -> PyResult<()> {
        if self.alive.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(PyOSError::new_err(
                "the request this object belongs to is over",
            ))
        }
    }

    /// Sends the head (once), announcing `content_length` when known (-1 otherwise).
    pub(crate) fn send_head(&mut self, content_length: i64) -> PyResult<()> {
        if self.sent {
            return Ok(());
        }
        let Some(status) = &self.status else {
            return Err(PyRuntimeError::new_err(
                "the WSGI app did not call start_response()",
            ));
        };
        if !self.req.start(status, &self.headers, content_length) {
            return Err(PyRuntimeError::new_err(format!(
                "invalid HTTP status: {}",
                String::from_utf8_lossy(status)
            )));
        }
        self.sent = true;
        Ok(())
    }

    /// Sends body bytes; false when the client is gone. A small chunk the socket takes at
    /// once is sent with the GIL held (releasing it would hand it to another request
    /// thread and make this one wait to get it back); anything else with the GIL released.
    pub(crate) fn send(&mut self, py: Python<'_>, data: &[u8]) -> bool {
        if self.failed {
            return false;
        }
        let req = self.req;
        let quick = match data.len() <= NOWAIT_MAX {
            true => req.write_nowait(data),
            false => None,
        };
        let ok = match quick {
            Some(ok) => ok,
            None => py.allow_threads(|| req.write(data)),
        };
        if !ok {
            self.failed = true;
        }
        ok
    }
}

/// The largest chunk sent without releasing the GIL (and kept back, at most, when the
/// socket cannot take it at once).
const NOWAIT_MAX: usize = 64 * 1024;

fn header_str(item: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let s = item
        .downcast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("http header {what} must be a string")))?;
    let s = s.to_str()?;
    if s.contains(['\r', '\n']) {
        return Err(PyValueError::new_err(format!(
            "http header {what} must not contain a line break"
        )));
    }
    to_latin1(s).ok_or_else(|| {
        PyValueError::new_err(format!("http header {what} must be latin-1 encodable"))
    })
}

#[pymethods]
impl Responder {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        {
            let mut me = slf.borrow_mut();
            me.check_alive()?;
            if let Some(info) = exc_info.filter(|e| !e.is_none()) {
                if me.sent {
                    // PEP 3333: re-raise when the head is already out.
                    let t = info.downcast::<PyTuple>()?;
                    if t.len() >= 2 {
                        return Err(PyErr::from_value(t.get_item(1)?));
                    }
                }
            } else if me.sent {
                return Err(PyOSError::new_err("headers already sent"));
            }
            let status = status
                .downcast::<PyString>()
                .map_err(|_| PyTypeError::new_err("http status must be a string"))?;
            let status = to_latin1(status.to_str()?)
                .ok_or_else(|| PyValueError::new_err("http status must be latin-1 encodable"))?;
            let list = headers
                .downcast::<PyList>()
                .map_err(|_| PyTypeError::new_err("http headers must be in a python list"))?;
            let mut parsed = Vec::with_capacity(list.len());
            for item in list.iter() {
                let t = item
                    .downcast::<PyTuple>()
                    .map_err(|_| PyTypeError::new_err("http header must be defined in a tuple"))?;
                if t.len() != 2 {
                    return Err(PyTypeError::new_err(
                        "http header must be defined in a tuple",
                    ));
                }
                parsed.push((
                    header_str(&t.get_item(0)?, "key")?,
                    header_str(&t.get_item(1)?, "value")?,
                ));
            }
            me.status = Some(status);
            me.headers = parsed;
            // `start_response-nodelay`: the head goes out now (the body's length is then
            // unknown unless the app gave a Content-Length).
            if crate::state::get().opts.start_response_nodelay {
                me.send_head(-1)?;
                me.send(slf.py(), b"");
            }
        }
        Ok(slf.getattr("write")?.unbind())
    }

    /// The `write(data)` callable returned by start_response.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let mut me = slf.borrow_mut();
        me.check_alive()?;
        let b = data
            .downcast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() argument must be bytes"))?;
        me.send_head(-1)?;
        if !me.send(py, b.as_bytes()) {
            return Err(PyOSError::new_err(
                "write(): the client closed the connection",
            ));
        }
        Ok(())
    }
}
