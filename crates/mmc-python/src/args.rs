//! Argument parsing for the object API.
//!
//! The rule the whole module follows: an argument of the wrong Python type
//! raises `TypeError`; an argument of the right type with a bad value (empty
//! or over-long key, null or negative pointer, negative size, mismatched
//! list lengths, oversize batch) is not an exception but an
//! `INVALID_PARAM` result in the method's usual return shape. Parsers
//! therefore return `PyResult<Option<T>>`: `Err` for a type error, `Ok(None)`
//! for an invalid value.

use crate::pybuf::{BufView, ViewError};
use mmc_local::Piece;
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyInt, PyList, PyMemoryView, PyString, PyTuple};
use std::os::raw::c_ulong;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn type_error(what: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("{what} must be {expected}, not {}", type_name(obj)))
}

/// A key: `str` (or UTF-8 `bytes`), borrowed from the object: a `str`'s
/// UTF-8 is lent by the interpreter, so a batch of
/// keys costs no copy or allocation per key. `Ok(None)` when it breaks the
/// key rules (empty, over 256 bytes, not encodable as UTF-8).
pub fn key<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Option<&'a str>> {
    let s = if obj.is_instance_of::<PyString>() {
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: `obj` is a live str and this thread is attached. The
        // UTF-8 form is kept in the str object, so it lives as long as the
        // borrow of `obj`.
        let utf8 = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut len) };
        if utf8.is_null() {
            // Lone surrogates cannot be encoded: an invalid key, not a type error.
            drop(PyErr::take(obj.py()));
            return Ok(None);
        }
        // SAFETY: CPython returned `len` bytes of valid UTF-8 at `utf8`,
        // alive while `obj` is (above).
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(utf8.cast::<u8>(), len as usize)) }
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        match std::str::from_utf8(b.as_bytes()) {
            Ok(s) => s,
            Err(_) => return Ok(None),
        }
    } else {
        return Err(type_error("key", "str", obj));
    };
    Ok(mmc_wire::key_ok(s).then_some(s))
}

/// Calls `f` with each item of a list-like argument, in order, without
/// collecting them first (what [`items`] does for a list or tuple, the
/// common case, costs a vector and a reference per item).
pub fn each<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    mut f: impl FnMut(&Bound<'py, PyAny>) -> PyResult<()>,
) -> PyResult<()> {
    if let Ok(l) = obj.cast::<PyList>() {
        // `f` may run Python code (an `__index__`) that shrinks the list:
        // `get_item` checks the index, and the walk ends there.
        for i in 0..l.len() {
            match l.get_item(i) {
                Ok(item) => f(&item)?,
                Err(_) => break,
            }
        }
        return Ok(());
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t.iter().try_for_each(|item| f(&item));
    }
    items(obj, what)?.iter().try_for_each(f)
}

/// The items of a list-like argument (list, tuple or any iterable other
/// than str / bytes, which are refused as sequences of keys or numbers).
pub fn items<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = obj.cast::<PyList>() {
        // Not `l.iter().collect()`, which grows the vector an item at a time.
        let mut out = Vec::with_capacity(l.len());
        for i in 0..l.len() {
            // SAFETY: `i` is below the list's length, read just before;
            // nothing in this loop runs Python code that could shrink it,
            // and no other thread can while this one holds the GIL (the
            // module does not declare itself free-threading safe, so a
            // free-threaded interpreter keeps the GIL on while it is loaded).
            out.push(unsafe { l.get_item_unchecked(i) });
        }
        return Ok(out);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
        return Err(type_error(what, "a list", obj));
    }
    match obj.try_iter() {
        Ok(it) => it.collect(),
        Err(_) => Err(type_error(what, "a list", obj)),
    }
}

/// A value to store: a buffer-protocol object (bytes, bytearray,
/// memoryview, contiguous numpy array), read in place. `Ok(None)` when it is
/// not contiguous.
pub fn value(obj: &Bound<'_, PyAny>) -> PyResult<Option<BufView>> {
    match BufView::new(obj, false) {
        Ok(v) => Ok(Some(v)),
        Err(ViewError::NotABuffer) => Err(type_error(
            "value",
            "a buffer-protocol object (bytes, bytearray, memoryview, numpy array)",
            obj,
        )),
        Err(ViewError::Unsuitable) => Ok(None),
    }
}

/// The keys of a list of keys (its [`items`]), borrowed from them.
pub fn keys<'a>(items: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<Option<&'a str>>> {
    // Not `collect` into a `PyResult`, which cannot know the length and
    // grows the vector four times for 32 keys.
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(key(item)?);
    }
    Ok(out)
}

// `exact_int` reads a u64 through an `unsigned long`.
const _: () = assert!(std::mem::size_of::<c_ulong>() == 8);

/// An `int` (exactly, not a subclass) as a u64, `Ok(None)` when negative or
/// too large. `PyLong_AsUnsignedLong` reads the digits of an int directly,
/// where `extract::<u64>` calls `PyLong_AsUnsignedLongLong`, which converts
/// any int above 2^30 (every address) through a byte array: a tenth of the
/// argument parsing of a 32-key `batch_get_into` went there.
fn exact_int(obj: &Bound<'_, PyInt>) -> PyResult<Option<u64>> {
    // SAFETY: `obj` is a live int and a `Bound` proves this thread is
    // attached to the interpreter.
    unsafe { raw_int(obj.py(), obj.as_ptr()) }
}

/// [`exact_int`] of a borrowed pointer.
///
/// # Safety
/// `obj` must point at a live exact `int`.
unsafe fn raw_int(py: Python<'_>, obj: *mut ffi::PyObject) -> PyResult<Option<u64>> {
    // SAFETY: the caller's contract; `py` proves this thread is attached.
    let v = unsafe { ffi::PyLong_AsUnsignedLong(obj) };
    if v == c_ulong::MAX {
        if let Some(e) = PyErr::take(py) {
            return match e.is_instance_of::<PyOverflowError>(py) {
                true => Ok(None),
                false => Err(e),
            };
        }
    }
    Ok(Some(v as u64))
}

/// A non-negative integer. `Ok(None)` when negative or too large.
pub fn uint(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<u64>> {
    if let Ok(i) = obj.cast_exact::<PyInt>() {
        return exact_int(i);
    }
    match obj.extract::<u64>() {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Ok(None),
        Err(_) => Err(type_error(what, "int", obj)),
    }
}

/// A size in bytes: a positive integer that fits in memory.
pub fn size(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<usize>> {
    Ok(byte_count(uint(obj, what)?))
}

/// A non-negative integer as a size: positive and fitting in memory.
fn byte_count(v: Option<u64>) -> Option<usize> {
    v.filter(|&v| v > 0 && v <= isize::MAX as u64).map(|v| v as usize)
}

/// A list of sizes.
pub fn sizes(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Option<usize>>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    each(obj, what, |o| {
        out.push(size(o, what)?);
        Ok(())
    })?;
    Ok(out)
}

/// A buffer argument: an integer address, or a buffer-protocol object whose
/// memory is used in place.
pub enum Ptr {
    Addr(usize),
    Buf(BufView),
}

/// Lowest address a buffer can have: Linux never maps the first 64 KiB
/// (`vm.mmap_min_addr`), so smaller values are null-like garbage.
const MIN_ADDR: usize = 0x1_0000;
/// One past the highest user-space address of 64-bit Linux (57-bit virtual
/// addresses with 5-level paging).
const MAX_ADDR: usize = 1 << 57;

impl Ptr {
    /// The piece of memory `size` bytes long this pointer names, `None`
    /// when invalid: a null or near-null address, a range past the end of
    /// user space, or a buffer shorter than `size`.
    pub fn piece(&self, size: Option<usize>) -> Option<Piece> {
        let len = size?;
        match self {
            Ptr::Addr(a) if *a >= MIN_ADDR && a.checked_add(len).is_some_and(|end| end <= MAX_ADDR) => {
                Some(Piece { addr: *a, len })
            }
            Ptr::Addr(_) => None,
            Ptr::Buf(b) if len <= b.len() => Some(Piece { addr: b.addr(), len }),
            Ptr::Buf(_) => None,
        }
    }
}

/// A pointer argument. Python ints (and integer scalars such as numpy's)
/// are addresses; other objects must export a contiguous buffer (writable
/// when `writable`). `Ok(None)`: negative / oversize address, or a buffer
/// that is not contiguous or not writable.
pub fn ptr(obj: &Bound<'_, PyAny>, writable: bool, what: &str) -> PyResult<Option<Ptr>> {
    if let Ok(i) = obj.cast_exact::<PyInt>() {
        return Ok(exact_int(i)?.and_then(|v| usize::try_from(v).ok()).map(Ptr::Addr));
    }
    // An int (the common case: engines pass addresses) skips the buffer
    // type checks.
    let is_int = obj.is_instance_of::<PyInt>();
    let is_bytes_like = !is_int
        && (obj.is_instance_of::<PyBytes>()
            || obj.is_instance_of::<PyByteArray>()
            || obj.is_instance_of::<PyMemoryView>());
    if is_int || !is_bytes_like {
        match obj.extract::<u64>() {
            Ok(v) => return Ok(usize::try_from(v).ok().map(Ptr::Addr)),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => return Ok(None),
            Err(_) if obj.is_instance_of::<PyInt>() => return Err(type_error(what, "int", obj)),
            Err(_) => {} // not an integer: try the buffer protocol
        }
    }
    match BufView::new(obj, writable) {
        Ok(v) => Ok(Some(Ptr::Buf(v))),
        Err(ViewError::NotABuffer) => Err(type_error(what, "an int address or a buffer-protocol object", obj)),
        Err(ViewError::Unsuitable) => Ok(None),
    }
}

/// A list of pointers.
pub fn ptrs(obj: &Bound<'_, PyAny>, writable: bool, what: &str) -> PyResult<Vec<Option<Ptr>>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    each(obj, what, |o| {
        out.push(ptr(o, writable, what)?);
        Ok(())
    })?;
    Ok(out)
}

/// The common shape of a flat batch, read in one pass: two lists of `n`
/// plain ints (addresses and sizes), one piece per entry (`None` for an
/// invalid address or size). `Ok(None)` for any other shape (a buffer
/// object, an int subclass, a tuple, another length), which [`ptrs`] and
/// [`sizes`] then parse with all their rules.
pub fn int_pieces(
    n: usize,
    ptrs: &Bound<'_, PyAny>,
    sizes: &Bound<'_, PyAny>,
) -> PyResult<Option<Vec<Option<[Piece; 1]>>>> {
    let (Ok(pl), Ok(sl)) = (ptrs.cast::<PyList>(), sizes.cast::<PyList>()) else {
        return Ok(None);
    };
    if pl.len() != n || sl.len() != n {
        return Ok(None);
    }
    let py = ptrs.py();
    let mut out = Vec::with_capacity(n);
    for i in 0..n as ffi::Py_ssize_t {
        // SAFETY: `i` is below both lists' length, checked above; nothing in
        // this loop runs Python code or detaches (reading an exact int does
        // not), and no other thread runs while this one holds the GIL (see
        // `items`), so the lists keep their items and the borrowed
        // references stay valid while they are read.
        let (p, s) = unsafe {
            (
                ffi::PyList_GET_ITEM(pl.as_ptr(), i),
                ffi::PyList_GET_ITEM(sl.as_ptr(), i),
            )
        };
        // SAFETY: both are live objects (above).
        if unsafe { ffi::PyLong_CheckExact(p) == 0 || ffi::PyLong_CheckExact(s) == 0 } {
            return Ok(None);
        }
        // SAFETY: both are exact ints (checked) and this thread is attached.
        let (addr, len) = unsafe { (raw_int(py, p)?, raw_int(py, s)?) };
        let addr = addr.and_then(|a| usize::try_from(a).ok());
        out.push(addr.and_then(|a| Ptr::Addr(a).piece(byte_count(len))).map(|p| [p]));
    }
    Ok(Some(out))
}

/// Pointers and sizes of one value given as layers. `None` when the lists
/// differ in length, are empty, or any element is invalid.
pub fn layer_pieces(ptrs: &[Option<Ptr>], sizes: &[Option<usize>]) -> Option<Vec<Piece>> {
    if ptrs.is_empty() || ptrs.len() != sizes.len() {
        return None;
    }
    let pieces: Vec<Piece> = ptrs
        .iter()
        .zip(sizes)
        .map(|(p, s)| p.as_ref()?.piece(*s))
        .collect::<Option<_>>()?;
    Some(coalesce(pieces))
}

/// Merges layers that follow each other in memory into one piece: the value
/// is the same concatenation, copied with fewer, larger copies.
pub fn coalesce(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.addr + last.len == p.addr => last.len += p.len,
            _ => out.push(p),
        }
    }
    out
}

/// `direct` for a put: 0 (device to pool), 3 (host to pool) or 9 (auto).
/// Without an accelerator backend every address is host memory.
pub fn direct_put_ok(direct: i64) -> bool {
    matches!(direct, 0 | 3 | 9)
}

/// `direct` for a get: 1 (pool to device), 2 (pool to host) or 9 (auto).
pub fn direct_get_ok(direct: i64) -> bool {
    matches!(direct, 1 | 2 | 9)
}
