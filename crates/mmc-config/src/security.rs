//! Security settings shared by both services: the cluster token that every
//! connection proves knowledge of, and TLS.
//!
//! The same struct appears as `[meta.security]` and `[local.security]`; a
//! top-level `[cluster]` section sets both at once (see
//! [`ConfigFile::from_toml`](crate::ConfigFile::from_toml)).

use crate::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

/// Shortest cluster token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// The cluster token. When set (here or through `token_file`), every
    /// control, shared-memory ring and transfer connection proves knowledge
    /// of it with an HMAC challenge/response before any request, and HTTP
    /// requests other than `/health` must carry it as a bearer token.
    pub token: Option<String>,
    /// A file whose first line is the token; used when `token` is unset.
    pub token_file: Option<String>,
    /// Allow listening on a non-loopback address without a token (anyone
    /// who reaches the port can then read, overwrite and remove objects).
    pub insecure: bool,
    pub tls: TlsConfig,
}

/// Shows whether a token is set, never the token.
impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("insecure", &self.insecure)
            .field("tls", &self.tls)
            .finish()
    }
}

/// TLS (rustls) settings. Paths name PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// TLS on the control port and the HTTP endpoint (MetaService), and on
    /// this service's control connections (LocalService).
    pub enable: bool,
    /// Certificate chain this service presents (servers; clients too with `mutual`).
    pub cert: String,
    /// Private key of `cert`.
    pub key: String,
    /// CA bundle used to verify the peer's certificate.
    pub ca: String,
    /// Servers require and verify client certificates (mutual TLS).
    pub mutual: bool,
    /// Also encrypt cross-host transfer connections.
    pub transfer: bool,
    /// Name expected in the server's certificate; defaults to the host part
    /// of the address connected to.
    pub server_name: Option<String>,
}

impl SecurityConfig {
    /// The token from `token` or `token_file`, if any.
    pub fn resolve_token(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let t = match (&self.token, &self.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
                    path: path.clone(),
                    err,
                })?;
                text.lines().next().unwrap_or("").trim().to_owned()
            }
            (None, None) => return Ok(None),
        };
        if t.len() < MIN_TOKEN_LEN {
            return Err(invalid(
                "security.token",
                format!(
                    "the cluster token is {} bytes; at least {MIN_TOKEN_LEN} are required",
                    t.len()
                ),
            ));
        }
        Ok(Some(t.into_bytes()))
    }

    /// The start-up rule (docs/security.md, "Configuring it"): a service must not listen on a
    /// non-loopback address without a cluster token unless `insecure` is
    /// set. `addrs` are (config key, address) pairs; `has_token` says
    /// whether a token was resolved. `Ok(Some(warning))` when an address is
    /// exposed without a token under `insecure`: the caller logs it loudly.
    pub fn check_exposure(&self, has_token: bool, addrs: &[(&str, &str)]) -> Result<Option<String>, ConfigError> {
        if has_token {
            return Ok(None);
        }
        let Some((key, addr)) = addrs.iter().find(|(_, a)| !is_loopback_addr(a)) else {
            return Ok(None);
        };
        if self.insecure {
            return Ok(Some(format!(
                "{key} = {addr} is not a loopback address and no cluster token is set: anyone who can \
                 reach it can read, overwrite and remove objects (security.insecure = true / --insecure)"
            )));
        }
        Err(invalid(
            *key,
            format!(
                "{addr} is not a loopback address and no cluster token is set: set `security.token` or \
                 `security.token_file` (--token-file), or pass --insecure (security.insecure = true) to \
                 serve it without authentication"
            ),
        ))
    }

    /// Checks the settings; `section` prefixes key names in errors.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if let Some(t) = &self.token {
            if t.len() < MIN_TOKEN_LEN {
                return Err(invalid(
                    format!("{section}.token"),
                    format!("{} bytes; at least {MIN_TOKEN_LEN} are required", t.len()),
                ));
            }
        }
        if self.tls.enable || self.tls.transfer {
            for (name, v) in [("cert", &self.tls.cert), ("key", &self.tls.key), ("ca", &self.tls.ca)] {
                if v.is_empty() {
                    return Err(invalid(
                        format!("{section}.tls.{name}"),
                        "must name a PEM file when TLS is enabled",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `addr` (`ip:port`) is reachable only from this machine. An
/// address that does not parse counts as exposed.
pub fn is_loopback_addr(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigFile;

    #[test]
    fn cluster_section_sets_both_services() {
        let c = ConfigFile::from_toml("[cluster]\ntoken = \"0123456789abcdef\"\n").unwrap();
        assert_eq!(c.meta.security.token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.local.security.token.as_deref(), Some("0123456789abcdef"));
        let c = ConfigFile::from_toml(
            "[cluster]\ntoken = \"0123456789abcdef\"\n[local.security]\ntoken = \"fedcba9876543210\"\n",
        )
        .unwrap();
        assert_eq!(c.local.security.token.as_deref(), Some("fedcba9876543210"));
        assert_eq!(c.meta.security.token.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn short_tokens_and_tls_without_files_are_refused() {
        let s = SecurityConfig {
            token: Some("short".into()),
            ..Default::default()
        };
        let e = s.validate("meta.security").unwrap_err().to_string();
        assert!(e.contains("meta.security.token"), "{e}");
        assert!(s.resolve_token().is_err());
        let s = SecurityConfig {
            tls: TlsConfig {
                enable: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let e = s.validate("local.security").unwrap_err().to_string();
        assert!(e.contains("local.security.tls.cert"), "{e}");
    }

    #[test]
    fn exposed_addresses_need_a_token_or_insecure() {
        let open = SecurityConfig::default();
        let loopback = [("meta.listen", "127.0.0.1:5000"), ("meta.http_listen", "[::1]:8000")];
        assert_eq!(open.check_exposure(false, &loopback).unwrap(), None);
        let exposed = [("meta.listen", "127.0.0.1:5000"), ("meta.http_listen", "0.0.0.0:8000")];
        let e = open.check_exposure(false, &exposed).unwrap_err().to_string();
        for needle in [
            "meta.http_listen",
            "0.0.0.0:8000",
            "security.token",
            "token_file",
            "--insecure",
        ] {
            assert!(e.contains(needle), "{needle} missing from {e}");
        }
        assert_eq!(open.check_exposure(true, &exposed).unwrap(), None);
        let insecure = SecurityConfig {
            insecure: true,
            ..Default::default()
        };
        let w = insecure.check_exposure(false, &exposed).unwrap().unwrap();
        assert!(w.contains("0.0.0.0:8000"), "{w}");
        assert!(!is_loopback_addr("10.0.0.1:1"));
        assert!(!is_loopback_addr("[::]:1"));
        assert!(!is_loopback_addr("nonsense"));
        assert!(is_loopback_addr("127.0.0.2:1"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s = SecurityConfig {
            token: Some("0123456789abcdef-secret".into()),
            ..Default::default()
        };
        let d = format!("{s:?}");
        assert!(!d.contains("secret") && d.contains("redacted"), "{d}");
    }

    #[test]
    fn token_file_first_line() {
        let dir = std::env::temp_dir().join(format!("mmc-token-{}", std::process::id()));
        std::fs::write(&dir, "0123456789abcdef0123\nignored\n").unwrap();
        let s = SecurityConfig {
            token_file: Some(dir.display().to_string()),
            ..Default::default()
        };
        assert_eq!(s.resolve_token().unwrap().unwrap(), b"0123456789abcdef0123");
        std::fs::remove_file(&dir).unwrap();
        assert!(s.resolve_token().unwrap_err().to_string().contains("mmc-token"));
    }
}
