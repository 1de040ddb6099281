//! Zero-copy access to Python buffer-protocol objects (bytes, bytearray,
//! memoryview, numpy arrays, ...).
//!
//! PyO3's buffer type views typed elements; these views are raw bytes of
//! any exporter, so `PyObject_GetBuffer`, `PyBuffer_Release` and the
//! `Py_buffer` layout, part of CPython's public C API unchanged since 3.3,
//! are declared here.
//!
//! A [`BufView`] pins the exporter's memory (a `bytearray` cannot be resized,
//! a numpy array not reallocated) until it is dropped, so its address may be
//! used with the GIL released. It must be dropped while attached to the
//! interpreter, which the callers guarantee by keeping views in the
//! `#[pymethods]` frame (a view is not `Send`, so it cannot move into a
//! `Python::detach` closure).

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::{c_char, c_int, c_void};

/// CPython's `Py_buffer` (Include/pybuffer.h, identical since 3.3).
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

/// Contiguous bytes, no format or shape information (`PyBUF_SIMPLE`).
const PYBUF_SIMPLE: c_int = 0;
/// Also require a writable buffer (`PyBUF_WRITABLE`).
const PYBUF_WRITABLE: c_int = 0x0001;

unsafe extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
}

/// A held buffer view: the memory stays valid and in place until drop.
pub struct BufView {
    raw: Box<RawBuffer>,
}

/// Why an object could not be viewed as a buffer.
pub enum ViewError {
    /// The object does not support the buffer protocol at all (wrong type).
    NotABuffer,
    /// It does, but not as needed: not contiguous, or read-only where a
    /// writable buffer is required (a bad value).
    Unsuitable,
}

impl BufView {
    /// Views `obj` as contiguous bytes; `writable` also requires write access.
    pub fn new(obj: &Bound<'_, PyAny>, writable: bool) -> Result<Self, ViewError> {
        let mut raw = Box::new(RawBuffer {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        });
        let flags = if writable {
            PYBUF_SIMPLE | PYBUF_WRITABLE
        } else {
            PYBUF_SIMPLE
        };
        // SAFETY: `obj` is a live object and we are attached to the
        // interpreter (we hold a `Bound`); `raw` is a properly laid out
        // Py_buffer that lives in a stable heap allocation.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *raw, flags) };
        if rc != 0 {
            let py = obj.py();
            let err = PyErr::take(py).unwrap_or_else(|| PyBufferError::new_err("cannot get a buffer"));
            // CPython raises TypeError when the type has no buffer support,
            // BufferError (or ValueError from some exporters) when the
            // buffer exists but cannot be given as asked.
            return Err(if err.is_instance_of::<PyTypeError>(py) {
                ViewError::NotABuffer
            } else {
                ViewError::Unsuitable
            });
        }
        Ok(BufView { raw })
    }

    /// Address of the first byte.
    pub fn addr(&self) -> usize {
        self.raw.buf as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.raw.len.max(0) as usize
    }

    /// The whole buffer as a piece; `None` when empty (values are at least
    /// one byte).
    pub fn piece(&self) -> Option<mmc_local::Piece> {
        (self.len() > 0 && !self.raw.buf.is_null()).then(|| mmc_local::Piece {
            addr: self.addr(),
            len: self.len(),
        })
    }
}

impl Drop for BufView {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and
        // is released exactly once; views are only dropped while attached to
        // the interpreter (see the module documentation).
        unsafe { PyBuffer_Release(&mut *self.raw) };
    }
}
