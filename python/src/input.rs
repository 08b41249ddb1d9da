//! `wsgi.input`: the request body as a file-like object (`read`, `readline`, `readlines`,
//! iteration, `fileno`, `close`). With `post-buffering` the body is read before the app
//! runs, into memory or (from the threshold up) into an unlinked temporary file, and
//! `seek`/`tell` work; without it, seeking raises uWSGI's error. Socket reads happen with
//! the GIL released.

use crate::host::{ReadError, Req};
use pyo3::exceptions::{PyIOError, PyOSError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A body read in full before the app runs.
enum Buffered {
    Memory(std::io::Cursor<Vec<u8>>),
    File(std::fs::File),
}

impl Buffered {
    fn reader(&mut self) -> &mut dyn ReadSeek {
        match self {
            Buffered::Memory(c) => c,
            Buffered::File(f) => f,
        }
    }
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

#[pyclass(module = "uwsgi", name = "_Input")]
pub struct Input {
    req: Req,
    alive: Arc<AtomicBool>,
    /// Bytes received but not handed out yet (streaming mode).
    pending: Vec<u8>,
    eof: bool,
    buffered: Option<Buffered>,
}

fn read_error(e: ReadError, n: usize) -> PyErr {
    match e {
        ReadError::Timeout => PyIOError::new_err(format!("timeout during read({n}) on wsgi.input")),
        ReadError::Io => PyIOError::new_err(format!("error during read({n}) on wsgi.input")),
    }
}

/// A temporary file that is already unlinked (gone when closed).
fn temp_file() -> std::io::Result<std::fs::File> {
    let dir = std::env::temp_dir();
    for i in 0..100u32 {
        let path = dir.join(
            format!(
                "imperium-body-{}-{:?}-{i}",
                std::process::id(),
                std::thread::current().id()
            )
            .replace(['(', ')'], ""),
        );
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::ErrorKind::AlreadyExists.into())
}

impl Input {
    /// A body stream; with `post_buffering > 0` and a body, the body is read now.
    pub fn new(
        py: Python<'_>,
        req: Req,
        alive: Arc<AtomicBool>,
        content_length: u64,
        post_buffering: u64,
    ) -> PyResult<Input> {
        let mut me = Input {
            req,
            alive,
            pending: Vec::new(),
            eof: false,
            buffered: None,
        };
        if post_buffering > 0 {
            let mut data = Vec::new();
            let mut file: Option<std::fs::File> =
                if content_length >= post_buffering {
                    Some(temp_file().map_err(|e| {
                        PyOSError::new_err(format!("post-buffering temp file: {e}"))
                    })?)
                } else {
                    None
                };
            // `post-buffering-bufsize`: the size of each read() while buffering.
            let bufsize = match crate::state::get().opts.post_buffering_bufsize {
                0 => 65536,
                n => n.min(1 << 24) as usize,
            };
            let mut chunk = vec![0u8; bufsize];
            loop {
                let r = py.allow_threads(|| req.read(&mut chunk));
                let n = r.map_err(|e| read_error(e, chunk.len()))?;
                if n == 0 {
                    break;
                }
                match &mut file {
                    Some(f) => f
                        .write_all(&chunk[..n])
                        .map_err(|e| PyOSError::new_err(format!("post-buffering: {e}")))?,
                    None => data.extend_from_slice(&chunk[..n]),
                }
            }
            me.eof = true;
            me.buffered = Some(match file {
                Some(mut f) => {
                    f.seek(SeekFrom::Start(0))
                        .map_err(|e| PyOSError::new_err(e.to_string()))?;
                    Buffered::File(f)
                }
                None => Buffered::Memory(std::io::Cursor::new(data)),
            });
        }
        Ok(me)
    }

    fn check(&self) -> PyResult<()> {
        if self.alive.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(PyOSError::new_err(
                "wsgi.input used after its request ended",
            ))
        }
    }

    /// Receives more bytes into `pending`; false at the end of the body.
    fn fill(&mut self, py: Python<'_>, want: usize) -> PyResult<bool> {
        if let Some(b) = &mut self.buffered {
            let mut chunk = vec![0u8; want.clamp(1, 1 << 20)];
            let n = b
                .reader()
                .read(&mut chunk)
                .map_err(|e| PyIOError::new_err(e.to_string()))?;
            if n == 0 {
                return Ok(false);
            }
            self.pending.extend_from_slice(&chunk[..n]);
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let mut chunk = vec![0u8; want.clamp(4096, 1 << 20)];
        let req = self.req;
        let n = py
            .allow_threads(|| req.read(&mut chunk))
            .map_err(|e| read_error(e, want))?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.pending.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.pending.len());
        self.pending.drain(..n).collect()
    }

    fn buffered_more(&self) -> bool {
        self.buffered.is_some()
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        loop {
            let cap = limit.unwrap_or(usize::MAX);
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n')
                && i < cap
            {
                return Ok(self.take(i + 1));
            }
            if self.pending.len() >= cap {
                return Ok(self.take(cap));
            }
            if !self.fill(py, 8192)? {
                let all = self.pending.len();
                return Ok(self.take(all));
            }
        }
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.check()?;
        match size {
            Some(n) if n >= 0 => {
                let n = n as usize;
                while self.pending.len() < n {
                    if !self.fill(py, n - self.pending.len())? {
                        break;
                    }
                }
                let out = self.take(n);
                Ok(PyBytes::new(py, &out))
            }
            _ => {
                while self.fill(py, 65536)? {}
                let all = self.pending.len();
                let out = self.take(all);
                Ok(PyBytes::new(py, &out))
            }
        }
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.check()?;
        let limit = size.filter(|&n| n >= 0).map(|n| n as usize);
        let line = self.read_line(py, limit)?;
        Ok(PyBytes::new(py, &line))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        self.check()?;
        let mut out = Vec::new();
        let mut total = 0usize;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            out.push(PyBytes::new(py, &line));
            if let Some(h) = hint
                && h > 0
                && total >= h as usize
            {
                break;
            }
        }
        Ok(out)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.check()?;
        let line = self.read_line(py, None)?;
        Ok(if line.is_empty() {
            None
        } else {
            Some(PyBytes::new(py, &line))
        })
    }

    #[pyo3(signature = (pos, whence = 0))]
    fn seek(&mut self, pos: i64, whence: i32) -> PyResult<u64> {
        self.check()?;
        let pending = self.pending.len() as i64;
        let Some(b) = &mut self.buffered else {
            return Err(PyOSError::new_err(
                "seeking wsgi.input without post_buffering is IMPOSSIBLE !!!",
            ));
        };
        let r = b.reader();
        let from = match whence {
            0 => SeekFrom::Start(pos.max(0) as u64),
            1 => SeekFrom::Current(pos - pending),
            2 => SeekFrom::End(pos),
            _ => return Err(PyOSError::new_err("invalid whence")),
        };
        let at = r
            .seek(from)
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        self.pending.clear();
        Ok(at)
    }

    fn tell(&mut self) -> PyResult<u64> {
        self.check()?;
        let pending = self.pending.len() as u64;
        let Some(b) = &mut self.buffered else {
            return Err(PyOSError::new_err(
                "seeking wsgi.input without post_buffering is IMPOSSIBLE !!!",
            ));
        };
        let at = b
            .reader()
            .stream_position()
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(at - pending)
    }

    fn fileno(&self) -> i32 {
        self.req.fd()
    }

    fn close(&self) {}

    fn seekable(&self) -> bool {
        self.buffered_more()
    }

    fn readable(&self) -> bool {
        true
    }
}
