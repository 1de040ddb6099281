//! MemCache configuration.
//!
//! One TOML format for both services: a `[meta]` section for the MetaService
//! and a `[local]` section for LocalServices. Every key has a default, unknown
//! keys are rejected, and [`MetaConfig::validate`] / [`LocalConfig::validate`]
//! name the offending key and its allowed range. Sizes accept `128MB`, `2.5G`,
//! `1TB`, `4096` (bytes; powers of 1024).
//!
//! The original MemCache's `ock.mmc.<key> = value` files are read too
//! (detected by their content, see [`ock`]), so its users keep their files.
//!
//! Layout, one concept per file: this file holds [`ConfigFile`] (reading a
//! whole file) and [`ConfigError`]; `meta.rs` the `[meta]` section
//! ([`MetaConfig`], [`HaConfig`], [`TcpPolling`]); `local.rs` the `[local]`
//! section ([`LocalConfig`], [`Protocol`]); `log_settings.rs` the log
//! settings both sections share; `checks.rs` the value checks behind
//! `validate`; `size.rs` sizes ([`ByteSize`]); `security.rs` the token and
//! TLS settings; `ock.rs` the original's format; `log_file.rs` rotating log
//! files.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod checks;
#[doc(hidden)]
pub mod fuzzing;
mod local;
mod log_file;
mod log_settings;
mod meta;
pub mod ock;
mod security;
mod size;

pub use local::{LocalConfig, Protocol};
pub use log_file::{log_file_path, RotatingFile};
pub use log_settings::{LogFormat, DEFAULT_LOG_ROTATION_COUNT, DEFAULT_LOG_ROTATION_SIZE, MIN_LOG_ROTATION_SIZE};
pub use meta::{ha_election_name, HaConfig, MetaConfig, TcpPolling, TCP_POLLING_MIN_CPUS};
pub use security::{is_loopback_addr, SecurityConfig, TlsConfig, MIN_TOKEN_LEN};
pub use size::{format_size, parse_size, ByteSize};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Environment variable naming the MetaService configuration file.
pub const META_CONFIG_ENV: &str = "MMC_META_CONFIG_PATH";
/// Environment variable naming the LocalService configuration file.
pub const LOCAL_CONFIG_ENV: &str = "MMC_LOCAL_CONFIG_PATH";
/// Environment variable naming the cluster token file, used by the command
/// line tools when neither a flag nor the configuration names a token.
pub const TOKEN_FILE_ENV: &str = "MMC_TOKEN_FILE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config key `{key}`: {msg}")]
    Invalid { key: String, msg: String },
    /// A line of an `ock.mmc.<key> = value` file (see [`ock`]).
    #[error("{}: `{key}`: {msg}", ock::location(.path, *.line))]
    Line {
        /// The file, when read from one.
        path: Option<String>,
        /// 1-based line number.
        line: usize,
        key: String,
        msg: String,
    },
}

fn invalid(key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        msg: msg.into(),
    }
}

/// A whole configuration file: any section may be absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Security settings for both services at once (token, TLS): copied
    /// into `meta.security` and `local.security` where those are not set.
    pub cluster: Option<SecurityConfig>,
    pub meta: MetaConfig,
    pub local: LocalConfig,
    /// What the reader wants said about the file but is not an error: keys
    /// of the original MemCache's format that have no effect here, protocol
    /// names that fall back to the paths available here. The caller logs
    /// them once logging is set up ([`ConfigFile::load`] does not log).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl ConfigFile {
    /// Reads a config file's text in either format: the original MemCache's
    /// `ock.mmc.<key> = value` lines when the first line that is not blank
    /// or a comment starts with `ock.` (see [`ock`]), else TOML.
    pub fn from_text(text: &str) -> Result<Self, ConfigError> {
        if ock::is_ock_format(text) {
            ock::parse(text)
        } else {
            Self::from_toml(text)
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut cfg: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(cluster) = &cfg.cluster {
            if cfg.meta.security == SecurityConfig::default() {
                cfg.meta.security = cluster.clone();
            }
            if cfg.local.security == SecurityConfig::default() {
                cfg.local.security = cluster.clone();
            }
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.display().to_string(),
            err,
        })?;
        let at_path = |e: ConfigError| match e {
            ConfigError::Line { line, key, msg, .. } => ConfigError::Line {
                path: Some(path.display().to_string()),
                line,
                key,
                msg,
            },
            e => e,
        };
        let mut cfg = Self::from_text(&text).map_err(at_path)?;
        for w in &mut cfg.warnings {
            if let Some(rest) = w.strip_prefix("line ") {
                *w = format!("{}:{rest}", path.display());
            }
        }
        cfg.meta.validate()?;
        cfg.local.validate()?;
        Ok(cfg)
    }

    /// Loads `explicit`, else the file named by `env_var`, else the
    /// defaults. Either format (see [`ConfigFile::from_text`]).
    pub fn load_or_env(explicit: Option<&Path>, env_var: &str) -> Result<Self, ConfigError> {
        if let Some(p) = explicit {
            return Self::load(p);
        }
        match std::env::var_os(env_var) {
            Some(p) if !p.is_empty() => Self::load(Path::new(&p)),
            _ => Ok(Self::default()),
        }
    }
}

/// Default `meta.max_connections` and `local.max_transfer_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// Largest connection limit accepted.
pub const MAX_CONNECTIONS_LIMIT: u64 = 1_000_000;

/// Largest `spin_wait_us` accepted: 10 ms.
pub const MAX_SPIN_WAIT_US: u64 = 10_000;

#[cfg(test)]
mod tests;
