//! The log settings both sections share: `log_format`, the rotation
//! defaults and bounds, and the checks of `log_level` and the log files.

use crate::{format_size, invalid, ByteSize, ConfigError};
use serde::{Deserialize, Serialize};

pub(crate) fn check_log_level(key: &'static str, v: &str) -> Result<(), ConfigError> {
    match v {
        "error" | "warn" | "info" | "debug" | "trace" => Ok(()),
        _ => Err(invalid(
            key,
            format!("`{v}` is not one of error, warn, info, debug, trace"),
        )),
    }
}

/// Default `log_rotation_size`: 20 MB, as the original MemCache.
pub const DEFAULT_LOG_ROTATION_SIZE: u64 = 20 << 20;
/// Default `log_rotation_count`: 50, as the original MemCache.
pub const DEFAULT_LOG_ROTATION_COUNT: u32 = 50;
/// Smallest `log_rotation_size` accepted: 4 KB.
pub const MIN_LOG_ROTATION_SIZE: u64 = 4 << 10;

pub(crate) fn check_log_files(
    section: &str,
    path: &Option<String>,
    size: ByteSize,
    count: u32,
) -> Result<(), ConfigError> {
    if path.as_deref() == Some("") {
        return Err(invalid(
            format!("{section}.log_path"),
            "must name a directory (leave it unset to log to stderr)",
        ));
    }
    if size.0 < MIN_LOG_ROTATION_SIZE || size.0 > 1 << 40 {
        return Err(invalid(
            format!("{section}.log_rotation_size"),
            format!("{} is outside 4KB..=1TB", format_size(size.0)),
        ));
    }
    if !(1..=1000).contains(&count) {
        return Err(invalid(
            format!("{section}.log_rotation_count"),
            format!("{count} is outside 1..=1000"),
        ));
    }
    Ok(())
}

/// `meta.log_format` / `local.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when the output is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("`{s}` is not text or json")),
        }
    }
}
