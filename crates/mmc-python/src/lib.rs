//! `memcache_rs`: the Python API of MemCache, compatible with the
//! `memcache_hybrid` module of the original MemCache (SPEC section 6.2), so
//! that connectors written for it work after changing only the import.
//!
//! This crate is the native part, `memcache_rs._native`, built with PyO3
//! for the stable ABI (abi3, CPython >= 3.9) by maturin (see
//! `pyproject.toml`); `python/memcache_rs/` holds the package around it,
//! its type stubs and constants.
//!
//! Files: [`store`] (`DistributedObjectStore`), [`config`] (`LocalConfig`,
//! `MetaConfig`), [`meta`] (`MetaService`), [`types`] (`ReplicateConfig`,
//! `KeyInfo`), [`args`] (argument rules: `TypeError` for wrong types,
//! INVALID_PARAM for bad values), [`pybuf`] (zero-copy buffer protocol).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod args;
mod config;
mod meta;
mod pybuf;
mod store;
mod types;

pub(crate) use mmc_wire::error::code;

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

/// Sends the services' own logs (tracing) to stderr at `level` in
/// `format`, once per process; `MMC_LOG` or `RUST_LOG` override the filter.
pub(crate) fn init_logging(level: &str, format: mmc_config::LogFormat) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("MMC_LOG")
            .ok()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
        let fmt = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr);
        let _ = match format {
            mmc_config::LogFormat::Text => fmt.try_init(),
            mmc_config::LogFormat::Json => fmt.json().with_ansi(false).try_init(),
        };
    });
}

#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::DistributedObjectStore>()?;
    m.add_class::<config::LocalConfig>()?;
    m.add_class::<config::MetaConfig>()?;
    m.add_class::<meta::MetaService>()?;
    m.add_class::<types::ReplicateConfig>()?;
    m.add_class::<types::KeyInfo>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
