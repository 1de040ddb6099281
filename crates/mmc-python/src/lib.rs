//! `memcache_rs`: the Python API of MemCache, compatible with the
//! `memcache_hybrid` module of the original MemCache, so
//! that connectors written for it work after changing only the import.
//!
//! This crate is the native part, `memcache_rs._native`, built with PyO3
//! for the CPython it is built with (>= 3.10) by maturin (see
//! `pyproject.toml`); `python/memcache_rs/` holds the package around it,
//! its type stubs and constants.
//!
//! Files: [`store`] (`DistributedObjectStore`, the process-wide client),
//! [`config`] (`LocalConfig`, `MetaConfig`), [`compat`] (their attributes of
//! the original without effect here), [`meta`] (`MetaService`), [`types`]
//! (`ReplicateConfig`, `KeyInfo`), [`args`] (argument rules: `TypeError` for
//! wrong types, INVALID_PARAM for bad values), [`pybuf`] (zero-copy buffer
//! protocol).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod args;
mod compat;
mod config;
mod layerwise;
mod meta;
mod pybuf;
mod store;
mod types;

pub(crate) use mmc_wire::error::code;

/// mimalloc for every Rust allocation of the extension (the MetaService and
/// the `mmc` binary run with it too): a call builds its keys, request frame
/// and results in short-lived allocations, and glibc's allocator cost a
/// 32-key `batch_is_exist` about as much as its round trip. Memory never
/// crosses to Python's allocator: Python objects are made by Python.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use pyo3::prelude::*;

fn log_to_python(py: Python<'_>, level: &str, msg: &str) {
    let r = (|| -> PyResult<()> {
        let logger = py.import("logging")?.call_method1("getLogger", ("memcache_rs",))?;
        logger.call_method1(level, (msg,))?;
        Ok(())
    })();
    if r.is_err() {
        eprintln!("memcache_rs: {msg}");
    }
}

/// Logs an error on the Python logger `memcache_rs` (setup / init failures
/// whose result code alone would not say what was wrong).
pub(crate) fn log_error(py: Python<'_>, msg: &str) {
    log_to_python(py, "error", msg);
}

pub(crate) fn log_info(py: Python<'_>, msg: &str) {
    log_to_python(py, "info", msg);
}

pub(crate) fn log_warning(py: Python<'_>, msg: &str) {
    log_to_python(py, "warning", msg);
}

/// Where the services' logs go: stderr, or the size-rotated file
/// `<log_path>/logs/<name>` when a config sets `log_path`.
pub(crate) struct LogTarget<'a> {
    pub log_path: Option<&'a str>,
    /// `mmc-local.log` or `mmc-meta.log`.
    pub name: &'a str,
    pub rotation_size: u64,
    pub rotation_count: u32,
}

impl<'a> LogTarget<'a> {
    pub fn local(c: &'a mmc_config::LocalConfig) -> Self {
        LogTarget {
            log_path: c.log_path.as_deref(),
            name: "mmc-local.log",
            rotation_size: c.log_rotation_size.0,
            rotation_count: c.log_rotation_count,
        }
    }

    pub fn meta(c: &'a mmc_config::MetaConfig) -> Self {
        LogTarget {
            log_path: c.log_path.as_deref(),
            name: "mmc-meta.log",
            rotation_size: c.log_rotation_size.0,
            rotation_count: c.log_rotation_count,
        }
    }
}

/// Sends the services' own logs (tracing) to stderr, or to the log file
/// `target` names, at `level` in `format`; the first call of the process
/// that succeeds decides (later ones change nothing). `MMC_LOG` or
/// `RUST_LOG` override the filter. Fails, naming the file, when the log file
/// cannot be created.
pub(crate) fn init_logging(level: &str, format: mmc_config::LogFormat, target: &LogTarget<'_>) -> Result<(), String> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    static DONE: parking_lot::Mutex<bool> = parking_lot::Mutex::new(false);
    let mut done = DONE.lock();
    if *done {
        return Ok(());
    }
    let (writer, ansi) = match target.log_path {
        Some(dir) => {
            let path = mmc_config::log_file_path(dir, target.name);
            let file = mmc_config::RotatingFile::open(&path, target.rotation_size, target.rotation_count)
                .map_err(|e| format!("log_path: {e}"))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let filter = std::env::var("MMC_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        mmc_config::LogFormat::Text => fmt.try_init(),
        mmc_config::LogFormat::Json => fmt.json().with_ansi(false).try_init(),
    };
    *done = true;
    Ok(())
}

#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::DistributedObjectStore>()?;
    m.add_class::<config::LocalConfig>()?;
    m.add_class::<config::MetaConfig>()?;
    m.add_class::<meta::MetaService>()?;
    m.add_class::<types::ReplicateConfig>()?;
    m.add_class::<types::KeyInfo>()?;
    m.add_function(wrap_pyfunction!(store::close_all, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
