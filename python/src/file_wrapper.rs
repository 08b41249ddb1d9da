//! `wsgi.file_wrapper(filelike, blksize=8192)`: an iterable over `read(blksize)` chunks
//! with `close()`; when the app returns it unwrapped and it is a regular file, the body
//! goes out with sendfile(2) from the file's current position (the GIL released).

use crate::start_response::Responder;
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;

#[pyclass(module = "uwsgi", name = "FileWrapper")]
pub struct FileWrapper {
    pub(crate) filelike: PyObject,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: &Bound<'_, PyAny>, blksize: isize) -> PyResult<FileWrapper> {
        if !filelike.hasattr("read")? {
            return Err(PyAttributeError::new_err("object has no attribute 'read'"));
        }
        Ok(FileWrapper {
            filelike: filelike.clone().unbind(),
            blksize: blksize.max(0) as usize,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        let chunk = if self.blksize == 0 {
            self.filelike.call_method0(py, "read")?
        } else {
            self.filelike.call_method1(py, "read", (self.blksize,))?
        };
        let empty = chunk.bind(py).len().map_or(true, |n| n == 0);
        Ok(if empty { None } else { Some(chunk) })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.filelike.bind(py).hasattr("close")? {
            self.filelike.call_method0(py, "close")?;
        }
        Ok(())
    }
}

/// Sends a regular file through sendfile; None when the object is not a real file.
pub(crate) fn try_sendfile(
    py: Python<'_>,
    resp: &Bound<'_, Responder>,
    fw: &FileWrapper,
) -> PyResult<Option<()>> {
    let file = fw.filelike.bind(py);
    let Ok(fd) = file.call_method0("fileno").and_then(|f| f.extract::<i32>()) else {
        return Ok(None);
    };
    let os = py.import("os")?;
    let stat = os.call_method1("fstat", (fd,))?;
    let mode: u32 = stat.getattr("st_mode")?.extract()?;
    if mode & 0o170000 != 0o100000 {
        return Ok(None);
    }
    let size: i64 = stat.getattr("st_size")?.extract()?;
    // Python's buffered file may have read ahead: its tell() is the logical position.
    let pos: i64 = file
        .call_method0("tell")
        .and_then(|p| p.extract())
        .unwrap_or(0);
    let len = (size - pos).max(0);
    let mut me = resp.borrow_mut();
    me.send_head(len)?;
    let req = me.req;
    let sent = py.allow_threads(|| req.sendfile(fd, pos, len));
    if sent < 0 {
        me.failed = true;
    }
    Ok(Some(()))
}
