//! Decoding and validation of the C arguments: keys, strings, buffer
//! descriptors, put and setup options, batch key arrays, the per-key
//! `results` arrays (and how a whole-batch failure fills them), and the
//! pairing of a batch's valid items with their results. Nothing here is
//! exported to C.

use crate::global::{self, guard, note_key_errors};
use crate::types::*;
use mmc_config::{LocalConfig, Protocol};
use mmc_local::{BlockingObjectStore, KeyInfo, Piece, PutOptions};
use mmc_wire::{validate_batch_len, validate_key, Error, ErrorKind, Result};
use std::ffi::{c_char, CStr};
use tracing_subscriber::filter::LevelFilter;

pub(crate) fn check_flags(flags: u32) -> Result<()> {
    if flags != 0 {
        return Err(Error::invalid(format!("flags {flags:#x}: reserved, must be 0")));
    }
    Ok(())
}

/// A NUL-terminated key: not NULL, UTF-8, 1..=256 bytes. Reads at most
/// `MMC_MAX_KEY_LEN + 1` bytes.
///
/// # Safety
/// `key` is NULL or readable up to and including its NUL terminator or
/// for `MMC_MAX_KEY_LEN + 1` bytes, whichever comes first, and those bytes
/// stay unchanged for `'a`.
pub(crate) unsafe fn key_arg<'a>(key: *const c_char) -> Result<&'a str> {
    if key.is_null() {
        return Err(Error::invalid("key is a null pointer"));
    }
    // SAFETY: `key` is not NULL; `strnlen` stops at the NUL or after
    // `MMC_MAX_KEY_LEN + 1` bytes, the readable prefix the caller
    // guarantees. (glibc's is vectorized: a byte loop here was a fifth of
    // the library's own time in a 32-key `mmcc_batch_exist`.)
    let len = unsafe { libc::strnlen(key, MMC_MAX_KEY_LEN + 1) };
    if len > MMC_MAX_KEY_LEN {
        return Err(Error::invalid(format!("key is longer than {MMC_MAX_KEY_LEN} bytes")));
    }
    // SAFETY: the `len` bytes before the NUL were just read one by one (so
    // they are readable and `len` fits in isize), `c_char` and `u8` have
    // the same layout, and the caller keeps them unchanged for `'a`.
    let bytes = unsafe { std::slice::from_raw_parts(key as *const u8, len) };
    let k = std::str::from_utf8(bytes).map_err(|_| Error::invalid("key is not valid UTF-8"))?;
    validate_key(k)?;
    Ok(k)
}

/// An optional NUL-terminated UTF-8 string (NULL = absent).
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that stays readable
/// and unchanged for `'a`.
pub(crate) unsafe fn opt_str<'a>(s: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: `s` is not NULL, and the caller guarantees a NUL-terminated
    // string valid and unchanged for `'a`.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map(Some)
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

pub(crate) fn piece(b: &mmc_buffer) -> Result<Piece> {
    if b.mem_type != MMC_MEM_HOST {
        return Err(Error::invalid(format!(
            "buffer memory type {} is not supported (only MMC_MEM_HOST: no accelerator backend is compiled in)",
            b.mem_type
        )));
    }
    if b.addr.is_null() {
        return Err(Error::invalid("buffer address is a null pointer"));
    }
    if b.len == 0 {
        return Err(Error::invalid("buffer length is 0"));
    }
    let len = usize::try_from(b.len).map_err(|_| Error::invalid("buffer length does not fit in memory"))?;
    if (b.addr as usize).checked_add(len).is_none() {
        return Err(Error::invalid("buffer wraps around the address space"));
    }
    Ok(Piece {
        addr: b.addr as usize,
        len,
    })
}

/// # Safety
/// `buf` is NULL or points to a readable, initialised `mmc_buffer`.
pub(crate) unsafe fn buffer_arg(buf: *const mmc_buffer) -> Result<Vec<Piece>> {
    if buf.is_null() {
        return Err(Error::invalid("buffer descriptor is a null pointer"));
    }
    // SAFETY: `buf` is not NULL and, by the caller's contract, points to a
    // valid descriptor; it is only read while this call runs.
    Ok(vec![piece(unsafe { &*buf })?])
}

/// # Safety
/// `bufs` is NULL or points to `count` readable, initialised `mmc_buffer`s.
pub(crate) unsafe fn layers_arg(bufs: *const mmc_buffer, count: u32) -> Result<Vec<Piece>> {
    if bufs.is_null() {
        return Err(Error::invalid("layer descriptors are a null pointer"));
    }
    if count == 0 {
        return Err(Error::invalid("layer count is 0"));
    }
    // SAFETY: `bufs` is not NULL and points to `count` descriptors (the
    // caller's contract); `count` is a u32, so the slice is at most
    // 2^32 * 24 bytes, far below isize::MAX; it is only read here.
    unsafe { std::slice::from_raw_parts(bufs, count as usize) }
        .iter()
        .enumerate()
        .map(|(i, b)| piece(b).map_err(|e| Error::invalid(format!("layer {i}: {}", strip_invalid(&e)))))
        .collect()
}

/// The message of an `InvalidParam` without its prefix (for nesting).
pub(crate) fn strip_invalid(e: &Error) -> String {
    match e {
        e if e.kind() == ErrorKind::InvalidParam => e.detail(),
        e => e.to_string(),
    }
}

/// # Safety
/// `options` is NULL or points to a readable, initialised `mmc_put_options`.
pub(crate) unsafe fn options_arg(options: *const mmc_put_options) -> Result<PutOptions> {
    let o = if options.is_null() {
        mmc_put_options::default()
    } else {
        // SAFETY: not NULL, and valid by the caller's contract; the struct
        // is `Copy` plain data, copied out at once.
        unsafe { *options }
    };
    let replicas = if o.replica_num == 0 { 1 } else { o.replica_num };
    mmc_wire::validate_replicas(replicas)?;
    if o.preferred_count as usize > MMC_MAX_REPLICAS {
        return Err(Error::invalid(format!(
            "preferred_count {} is outside 0..={MMC_MAX_REPLICAS}",
            o.preferred_count
        )));
    }
    Ok(PutOptions {
        replicas,
        preferred: o.preferred_service_ids[..o.preferred_count as usize].to_vec(),
    })
}

/// The keys of a batch: the outer error rejects the whole batch (count out of
/// range, `keys` NULL); an inner error rejects one key.
///
/// # Safety
/// `keys` is NULL or points to `count` pointers, each of which satisfies
/// [`key_arg`]'s contract for `'a`.
pub(crate) unsafe fn batch_keys<'a>(keys: *const *const c_char, count: u32) -> Result<Vec<Result<&'a str>>> {
    validate_batch_len(count as usize)?;
    if keys.is_null() {
        return Err(Error::invalid("keys is a null pointer"));
    }
    // SAFETY: `keys` is not NULL and points to `count` (at most
    // MMC_MAX_BATCH) key pointers by the caller's contract.
    let keys = unsafe { std::slice::from_raw_parts(keys, count as usize) };
    Ok(keys
        .iter()
        // SAFETY: each key pointer satisfies `key_arg`'s contract (ours).
        .map(|&k| unsafe { key_arg(k) })
        .collect())
}

/// Where a batch writes its per-key codes: only when `results` is non-null
/// and `count` in range, else nothing is ever written.
pub(crate) struct Results {
    ptr: *mut i32,
    n: usize,
    given: bool,
}

impl Results {
    pub(crate) fn new(ptr: *mut i32, count: u32) -> Self {
        let ok = !ptr.is_null() && validate_batch_len(count as usize).is_ok();
        Results {
            ptr: if ok { ptr } else { std::ptr::null_mut() },
            n: count as usize,
            given: !ptr.is_null(),
        }
    }

    /// Rejects a NULL `results` (the count is checked with the keys).
    pub(crate) fn check(&self, what: &str) -> Result<()> {
        if !self.given {
            return Err(Error::invalid(format!("{what} is a null pointer")));
        }
        Ok(())
    }

    /// Fills every slot with `c` (a whole-batch failure).
    ///
    /// # Safety
    /// The `results` pointer given to [`Results::new`] is NULL or points to
    /// `count` writable `int32_t`s that nothing else accesses meanwhile.
    pub(crate) unsafe fn fill(&self, c: i32) {
        if !self.ptr.is_null() {
            // SAFETY: `ptr` is only kept non-NULL when `n` is a valid batch
            // length (1..=MMC_MAX_BATCH); it then points to `n` writable,
            // unshared i32s by the caller's contract.
            unsafe { std::slice::from_raw_parts_mut(self.ptr, self.n) }.fill(c);
        }
    }

    /// # Safety
    /// As [`Results::fill`].
    pub(crate) unsafe fn write(&self, codes: impl IntoIterator<Item = i32>) {
        if !self.ptr.is_null() {
            // SAFETY: as in `fill`.
            let out = unsafe { std::slice::from_raw_parts_mut(self.ptr, self.n) };
            for (slot, c) in out.iter_mut().zip(codes) {
                *slot = c;
            }
        }
    }
}

/// Runs a batch body; a whole-batch failure (an `Err`, or a panic turned
/// into `MMC_ERROR`) is copied into every result slot.
///
/// # Safety
/// As [`Results::fill`] for `results`.
pub(crate) unsafe fn batch_guard(name: &str, results: &Results, f: impl FnOnce() -> Result<i32>) -> i32 {
    let rc = guard(name, f);
    if rc < 0 {
        // SAFETY: `results` satisfies `fill`'s contract (ours).
        unsafe { results.fill(rc) };
    }
    rc
}

/// Runs `f` on the items that passed validation and puts its per-item
/// results back in their places, next to the validation failures.
pub(crate) fn run_valid<I, T>(
    items: Vec<Result<I>>,
    f: impl FnOnce(Vec<I>) -> Result<Vec<Result<T>>>,
) -> Result<Vec<Result<T>>> {
    if items.iter().all(Result::is_ok) {
        // Every item valid (the common case): no positions to keep.
        let mut valid = Vec::with_capacity(items.len());
        valid.extend(items.into_iter().flatten());
        return one_result_each(valid, f);
    }
    let mut out: Vec<Option<Result<T>>> = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let mut at = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        match it {
            Ok(v) => {
                valid.push(v);
                at.push(i);
                out.push(None);
            }
            Err(e) => out.push(Some(Err(e))),
        }
    }
    if !valid.is_empty() {
        let res = one_result_each(valid, f)?;
        for (i, r) in at.into_iter().zip(res) {
            out[i] = Some(r);
        }
    }
    Ok(out.into_iter().map(|o| o.expect("every slot filled")).collect())
}

/// `f` of `items`, which must give one result per item.
fn one_result_each<I, T>(items: Vec<I>, f: impl FnOnce(Vec<I>) -> Result<Vec<Result<T>>>) -> Result<Vec<Result<T>>> {
    let n = items.len();
    let res = f(items)?;
    if res.len() != n {
        return Err(Error::other(format!("internal: {} results for {n} keys", res.len())));
    }
    Ok(res)
}

pub(crate) fn codes<T>(rs: &[Result<T>]) -> impl Iterator<Item = i32> + '_ {
    rs.iter().map(mmc_wire::error::to_code)
}

pub(crate) fn fill_info(info: &KeyInfo) -> mmc_data_info {
    let mut out = mmc_data_info {
        size: info.size,
        ..Default::default()
    };
    for (i, (sid, medium)) in info.replicas.iter().take(MMC_MAX_REPLICAS).enumerate() {
        out.service_ids[i] = *sid;
        out.media[i] = medium.as_u8() as u32;
    }
    out.replica_num = info.replicas.len().min(MMC_MAX_REPLICAS) as u32;
    out
}

/// One put of raw pieces; a duplicate key is reported (`MMC_DUPLICATED_OBJECT`).
///
/// # Safety
/// Every piece is valid for reads for the whole call.
pub(crate) unsafe fn put_pieces(
    c: &BlockingObjectStore,
    key: &str,
    pieces: Vec<Piece>,
    opts: &PutOptions,
) -> Result<i32> {
    // SAFETY: the pieces are readable for the call (our contract), which
    // is what `put_raw_batch` requires.
    let r = unsafe { c.put_raw_batch(&[key], &[pieces], opts) }?;
    r.into_iter().next().unwrap_or(Err(Error::other("no result")))?;
    Ok(MMC_OK)
}

/// # Safety
/// Every piece is valid for writes, and not otherwise accessed, for the
/// whole call.
pub(crate) unsafe fn get_pieces(c: &BlockingObjectStore, key: &str, pieces: Vec<Piece>) -> Result<i32> {
    // SAFETY: the pieces are writable and unshared for the call (our
    // contract), which is what `get_into_raw_batch` requires.
    let r = unsafe { c.get_into_raw_batch(&[key], &[pieces]) }?;
    r.into_iter().next().unwrap_or(Err(Error::other("no result")))?;
    Ok(MMC_OK)
}

/// Applies the overrides; returns the log level when `log_level` is given
/// (which may be `off`, a level the configuration file cannot express).
///
/// # Safety
/// Every string pointer of `o` is NULL or NUL-terminated, readable for the
/// call.
pub(crate) unsafe fn apply_options(cfg: &mut LocalConfig, o: &mmc_setup_options) -> Result<Option<LevelFilter>> {
    // SAFETY: the string fields of `o` are NULL or NUL-terminated by our
    // contract (this holds for every `opt_str` below), and the borrowed
    // text is copied out before returning.
    if let Some(v) = unsafe { opt_str(o.meta_addr, "meta_addr") }? {
        cfg.meta_addr = v.to_owned();
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.dram_size, "dram_size") }? {
        let n = mmc_config::parse_size(v).map_err(|e| Error::invalid(format!("dram_size: {e}")))?;
        cfg.dram_size = mmc_config::ByteSize(n);
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.protocol, "protocol") }? {
        cfg.protocol = match v {
            "auto" => Protocol::Auto,
            "tcp" => Protocol::Tcp,
            _ => return Err(Error::invalid(format!("protocol `{v}` is not auto or tcp"))),
        };
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.transfer_listen, "transfer_listen") }? {
        cfg.transfer_listen = v.to_owned();
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.host_id, "host_id") }? {
        cfg.host_id = Some(v.to_owned());
    }
    if o.worker_threads != 0 {
        cfg.worker_threads = o.worker_threads;
    }
    // SAFETY: as above.
    match unsafe { opt_str(o.log_level, "log_level") }? {
        Some(v) => Ok(Some(global::parse_level(v)?)),
        None => Ok(None),
    }
}

/// One key of a batch with its value's buffer pieces.
pub(crate) type Item<'a> = (&'a str, Vec<Piece>);

/// Pairs each key with its entry of the per-key array `arr` (of as many
/// entries as keys), turned into buffer pieces by `f`; a bad key or entry
/// fails only its own item.
///
/// # Safety
/// `arr` is NULL or points to `keys.len()` readable, initialised `T`s.
pub(crate) unsafe fn per_key_items<'a, T>(
    keys: Vec<Result<&'a str>>,
    arr: *const T,
    what: &str,
    f: impl Fn(&T) -> Result<Vec<Piece>>,
) -> Result<Vec<Result<Item<'a>>>> {
    if arr.is_null() {
        return Err(Error::invalid(format!("{what} is a null pointer")));
    }
    // SAFETY: `arr` is not NULL and holds `keys.len()` (a valid batch
    // length) entries by our contract; they are only read here.
    let arr = unsafe { std::slice::from_raw_parts(arr, keys.len()) };
    Ok(keys.into_iter().zip(arr).map(|(k, x)| Ok((k?, f(x)?))).collect())
}

/// # Safety
/// Every piece of `items` is valid for reads for the whole call; `res` as
/// for [`Results::fill`].
pub(crate) unsafe fn batch_put_items(
    c: &BlockingObjectStore,
    name: &str,
    items: Vec<Result<Item<'_>>>,
    opts: &PutOptions,
    res: &Results,
) -> Result<i32> {
    let rs = run_valid(items, |valid| {
        let (ks, vs): (Vec<&str>, Vec<Vec<Piece>>) = valid.into_iter().unzip();
        // SAFETY: every piece is readable for the call (our contract).
        unsafe { c.put_raw_batch(&ks, &vs, opts) }
    })?;
    // SAFETY: `res` satisfies `Results::write`'s contract (ours).
    unsafe { res.write(codes(&rs)) };
    note_key_errors(name, &rs);
    Ok(MMC_OK)
}

/// # Safety
/// Every piece of `items` is valid for writes, and not otherwise accessed,
/// for the whole call; `res` as for [`Results::fill`].
pub(crate) unsafe fn batch_get_items(
    c: &BlockingObjectStore,
    name: &str,
    items: Vec<Result<Item<'_>>>,
    res: &Results,
) -> Result<i32> {
    let rs = run_valid(items, |valid| {
        let (ks, vs): (Vec<&str>, Vec<Vec<Piece>>) = valid.into_iter().unzip();
        // SAFETY: every piece is writable and unshared for the call (our
        // contract).
        unsafe { c.get_into_raw_batch(&ks, &vs) }
    })?;
    // SAFETY: `res` satisfies `Results::write`'s contract (ours).
    unsafe { res.write(codes(&rs)) };
    note_key_errors(name, &rs);
    Ok(MMC_OK)
}
