//! `LocalConfig` and `MetaConfig`: property objects over the `[local]` and
//! `[meta]` sections of the MemCache TOML configuration (docs/configuration.md).
//!
//! Setters check the Python type (`TypeError`) and parse what can be parsed
//! on its own (a size such as ``"64MB"``, a protocol name: `ValueError`);
//! cross-field rules and ranges are checked by ``validate()`` and when the
//! config is used (`setup` returns INVALID_PARAM for an invalid config).
//! Every attribute of the original `memcache_hybrid` config objects exists
//! too: aliases (`meta_service_url`, `metrics_url`, `evict_threshold_high` /
//! `evict_threshold_low`), attributes that map onto the TOML keys
//! (`client_timeout_seconds`, `client_retry_milliseconds`, `log_path` and
//! rotation, `tls_enable` and the certificate paths, `hcom_tls_enable`), and
//! the ones without effect here (see [`crate::compat`]), which read back
//! what was set and warn once when used.
//!
//! An attribute that maps straight onto a field is one line of a
//! [`config_methods!`] table; the ones that convert, validate or warn are
//! written out.
//!
//! This file holds the helpers both classes use and the [`config_methods!`]
//! macro; `local.rs` and `meta.rs` hold the two classes' tables and the
//! attributes written out.

use crate::compat::{warn_file, warn_once};
use mmc_config::{ConfigFile, Protocol};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyAny;
use std::path::PathBuf;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Loads a whole config file (TOML or the original's `ock.mmc.*` format):
/// `path`, else the file named by `env_var`, else the defaults. What the
/// file's reading had to say is logged once.
fn load_file(py: Python<'_>, path: Option<PathBuf>, env_var: &str) -> PyResult<ConfigFile> {
    let f = ConfigFile::load_or_env(path.as_deref(), env_var).map_err(value_error)?;
    warn_file(py, &f.warnings);
    Ok(f)
}

fn strip_scheme<'a>(v: &'a str, schemes: &[&str]) -> &'a str {
    for s in schemes {
        if let Some(rest) = v.strip_prefix(s) {
            return rest;
        }
    }
    v
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Auto => "auto",
        Protocol::Tcp => "tcp",
    }
}

/// Parses a protocol name: `auto` (shared memory with LocalServices on this
/// host, TCP otherwise) and `tcp`, and the memcache_hybrid names:
/// `host_shm` is `auto`, `host_tcp` is `tcp`, and `host_rdma`, `host_urma`,
/// `device_rdma`, `device_sdma` (transports not built in) fall back to
/// `auto` with a one-line warning, once per process per name.
fn parse_protocol(py: Python<'_>, v: &str) -> PyResult<Protocol> {
    let (p, warning) =
        mmc_config::ock::protocol_value(v).map_err(|e| PyValueError::new_err(format!("protocol: {e}")))?;
    if let Some(w) = warning {
        warn_once(py, &format!("protocol {}", v.trim().to_ascii_lowercase()), &w);
    }
    Ok(p)
}

/// A path attribute: `""` means unset.
fn opt_path(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// A size given as an int (bytes) or a string such as ``"64MB"``.
fn parse_size_arg(v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(s) = v.extract::<String>() {
        return mmc_config::parse_size(&s).map_err(value_error);
    }
    v.extract::<u64>()
}

fn opt_string(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// How `str()` shows a token: whether one is set, never its value.
fn redacted(t: &Option<String>) -> &'static str {
    if t.is_some() {
        "'<set>'"
    } else {
        "None"
    }
}

/// `log_rotation_file_size` in MB as bytes (1..=500, the original's range).
fn rotation_mb(mb: u64) -> PyResult<u64> {
    if !(1..=500).contains(&mb) {
        return Err(PyValueError::new_err(format!(
            "log_rotation_file_size: {mb} MB is outside 1..=500"
        )));
    }
    Ok(mb << 20)
}

/// Defines a config class's `#[pymethods]`: the methods given verbatim,
/// then a Python property per attribute of the three tables, one line each
/// (`name, set_name: Type => field.path;`, the doc comment becoming the
/// property's), and `set_table_field`, which sets a table attribute by name
/// for keyword construction:
/// - `copy`: a `Copy` field, read and set as it is;
/// - `clone`: read back as a copy, set as given;
/// - `optional`: an `Option<String>` field, read back as a copy; `None`
///   and `""` both unset it.
///
/// Attributes that convert, validate, alias with a transformation or warn
/// are written out among the verbatim methods.
macro_rules! config_methods {
    (
        impl $name:ident { $($methods:tt)* }
        copy { $( $(#[doc = $cdoc:literal])* $cget:ident, $cset:ident: $cty:ty => $($cpath:ident).+; )* }
        clone { $( $(#[doc = $kdoc:literal])* $kget:ident, $kset:ident: $kty:ty => $($kpath:ident).+; )* }
        optional { $( $(#[doc = $odoc:literal])* $oget:ident, $oset:ident => $($opath:ident).+; )* }
    ) => {
        #[pymethods]
        impl $name {
            $($methods)*

            $(
                $(#[doc = $cdoc])*
                #[getter]
                fn $cget(&self) -> $cty {
                    self.$($cpath).+
                }
                #[setter]
                fn $cset(&mut self, v: $cty) {
                    self.$($cpath).+ = v;
                }
            )*

            $(
                $(#[doc = $kdoc])*
                #[getter]
                fn $kget(&self) -> $kty {
                    self.$($kpath).+.clone()
                }
                #[setter]
                fn $kset(&mut self, v: $kty) {
                    self.$($kpath).+ = v;
                }
            )*

            $(
                $(#[doc = $odoc])*
                #[getter]
                fn $oget(&self) -> Option<String> {
                    self.$($opath).+.clone()
                }
                #[setter]
                fn $oset(&mut self, v: Option<String>) {
                    self.$($opath).+ = opt_string(v);
                }
            )*
        }

        impl $name {
            /// Sets an attribute of the tables by name; `None` when `name`
            /// is not one of them.
            fn set_table_field(&mut self, name: &str, v: &Bound<'_, PyAny>) -> Option<PyResult<()>> {
                Some(match name {
                    $( stringify!($cget) => v.extract::<$cty>().map(|x| self.$cset(x)).map_err(Into::into), )*
                    $( stringify!($kget) => v.extract::<$kty>().map(|x| self.$kset(x)).map_err(Into::into), )*
                    $( stringify!($oget) => v.extract::<Option<String>>().map(|x| self.$oset(x)).map_err(Into::into), )*
                    _ => return None,
                })
            }
        }
    };
}

mod local;
mod meta;

pub use local::LocalConfig;
pub use meta::MetaConfig;
