//! MemCache TLS: turns a [`TlsConfig`] (PEM paths) into rustls server and
//! client configurations, and names the server a client expects.
//!
//! Servers present `cert`/`key`; with `mutual` they require a client
//! certificate issued by `ca`. Clients trust only `ca` and, with `mutual`,
//! present `cert`/`key`. Only the ring crypto provider is used, passed
//! explicitly, so no process-wide provider has to be installed. Every error
//! names the file (and the setting) that is wrong.

use mmc_config::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

pub use rustls;
pub use tokio_rustls::{client::TlsStream as ClientTlsStream, server::TlsStream as ServerTlsStream};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} file {path:?} (tls.{key}): {err}")]
    Read {
        what: &'static str,
        key: &'static str,
        path: String,
        err: std::io::Error,
    },
    #[error("{what} file {path:?} (tls.{key}) is not valid PEM: {err}")]
    Pem {
        what: &'static str,
        key: &'static str,
        path: String,
        err: String,
    },
    #[error("{what} file {path:?} (tls.{key}) holds no {item}")]
    Empty {
        what: &'static str,
        key: &'static str,
        path: String,
        item: &'static str,
    },
    #[error("{what}: {err}")]
    Rustls { what: String, err: String },
    #[error("{0:?} is not a valid TLS server name (tls.server_name or the host part of the address)")]
    ServerName(String),
}

fn read(path: &str, what: &'static str, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        what,
        key,
        path: path.to_owned(),
        err,
    })
}

/// Every certificate in the PEM file `path` (at least one).
fn load_certs(path: &str, what: &'static str, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what, key)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            key,
            path: path.to_owned(),
            err: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            key,
            path: path.to_owned(),
            item: "CERTIFICATE section",
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file `path`.
fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "private key", "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what: "private key",
            key: "key",
            path: path.to_owned(),
            item: "PRIVATE KEY section",
        },
        e => TlsError::Pem {
            what: "private key",
            key: "key",
            path: path.to_owned(),
            err: e.to_string(),
        },
    })
}

/// The trust anchors in the CA bundle `path`.
fn load_roots(path: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path, "CA bundle", "ca")? {
        roots.add(c).map_err(|e| TlsError::Rustls {
            what: format!("CA bundle {path:?} (tls.ca) holds an unusable certificate"),
            err: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_err(what: String) -> impl FnOnce(rustls::Error) -> TlsError {
    move |e| TlsError::Rustls {
        what,
        err: e.to_string(),
    }
}

/// The server side: presents `cert`/`key`; with `mutual`, requires a client
/// certificate issued by `ca`.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&cfg.cert, "certificate", "cert")?;
    let key = load_key(&cfg.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS protocol versions".into()))?;
    let builder = if cfg.mutual {
        let roots = load_roots(&cfg.ca)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::Rustls {
                what: format!("client certificate verifier from CA bundle {:?} (tls.ca)", cfg.ca),
                err: e.to_string(),
            })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key).map_err(rustls_err(format!(
        "certificate {:?} (tls.cert) with key {:?} (tls.key)",
        cfg.cert, cfg.key
    )))?;
    Ok(Arc::new(config))
}

/// An acceptor for [`server_config`].
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    server_config(cfg).map(TlsAcceptor::from)
}

/// The client side: trusts only `ca`; with `mutual`, presents `cert`/`key`.
pub fn client_config(cfg: &TlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = load_roots(&cfg.ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS protocol versions".into()))?
        .with_root_certificates(roots);
    let config = if cfg.mutual {
        let certs = load_certs(&cfg.cert, "certificate", "cert")?;
        let key = load_key(&cfg.key)?;
        builder.with_client_auth_cert(certs, key).map_err(rustls_err(format!(
            "client certificate {:?} (tls.cert) with key {:?} (tls.key)",
            cfg.cert, cfg.key
        )))?
    } else {
        builder.with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Everything a client needs to open TLS connections: the connector and
/// the configured server name, if any.
#[derive(Clone)]
pub struct ClientTls {
    pub connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    pub fn new(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let server_name = cfg.server_name.as_deref().map(parse_name).transpose()?;
        Ok(ClientTls {
            connector: TlsConnector::from(client_config(cfg)?),
            server_name,
        })
    }

    /// The name the server at `addr` must prove: `tls.server_name`, else
    /// the host part of `addr` (a DNS name or an IP address).
    pub fn server_name(&self, addr: &str) -> Result<ServerName<'static>, TlsError> {
        match &self.server_name {
            Some(n) => Ok(n.clone()),
            None => parse_name(host_of(addr)),
        }
    }

    /// Runs the client handshake on `io`, a connection to `addr`.
    pub async fn connect<IO>(&self, addr: &str, io: IO) -> std::io::Result<ClientTlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = self
            .server_name(addr)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        self.connector.connect(name, io).await
    }
}

fn parse_name(s: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(s.to_owned()).map_err(|_| TlsError::ServerName(s.to_owned()))
}

/// The host part of `host:port`, `[v6]:port`, or a bare host.
pub fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestPki;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_of("127.0.0.1:7000"), "127.0.0.1");
        assert_eq!(host_of("meta.example:7000"), "meta.example");
        assert_eq!(host_of("[::1]:7000"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn errors_name_the_file() {
        let pki = TestPki::new("errors");
        let mut cfg = pki.server_config(false);
        cfg.cert = pki.dir.join("missing.pem").display().to_string();
        let e = server_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("missing.pem") && e.contains("tls.cert"), "{e}");

        let mut cfg = pki.server_config(false);
        let junk = pki.dir.join("junk.pem");
        std::fs::write(&junk, "no pem here\n").unwrap();
        cfg.key = junk.display().to_string();
        let e = server_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("tls.key"), "{e}");

        let mut cfg = pki.client_config(false);
        cfg.ca = junk.display().to_string();
        let e = client_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("tls.ca"), "{e}");

        // A key that does not belong to the certificate.
        let mut cfg = pki.server_config(false);
        cfg.key = pki.client_key.display().to_string();
        let e = server_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("tls.cert") && e.contains("tls.key"), "{e}");

        let mut cfg = pki.client_config(false);
        cfg.server_name = Some("not a name!".into());
        assert!(ClientTls::new(&cfg).unwrap_err().to_string().contains("not a name!"));
    }

    /// Runs one handshake plus a one-byte echo; returns the client's
    /// result.
    async fn exchange(server: &TlsConfig, client: &TlsConfig) -> std::io::Result<()> {
        let acceptor = acceptor(server).expect("server config");
        let client = ClientTls::new(client).expect("client config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let srv = tokio::spawn(async move {
            let (sock, _) = listener.accept().await?;
            let mut s = acceptor.accept(sock).await?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await?;
            s.write_all(&b).await?;
            s.shutdown().await
        });
        let sock = tokio::net::TcpStream::connect(&addr).await?;
        let r = async {
            let mut s = client.connect(&addr, sock).await?;
            s.write_all(b"x").await?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await?;
            assert_eq!(&b, b"x");
            Ok(())
        }
        .await;
        let _ = srv.await;
        r
    }

    #[tokio::test]
    async fn handshakes_succeed_and_fail_as_configured() {
        let pki = TestPki::new("handshakes");
        exchange(&pki.server_config(false), &pki.client_config(false))
            .await
            .expect("plain server auth");
        exchange(&pki.server_config(true), &pki.client_config(true))
            .await
            .expect("mutual");
        // The client trusts another CA.
        let mut wrong = pki.client_config(false);
        wrong.ca = pki.other_ca.display().to_string();
        assert!(exchange(&pki.server_config(false), &wrong).await.is_err());
        // Mutual server, client without a certificate.
        assert!(exchange(&pki.server_config(true), &pki.client_config(false))
            .await
            .is_err());
        // Mutual server, client certificate from another CA.
        let mut foreign = pki.client_config(true);
        foreign.cert = pki.other_client_cert.display().to_string();
        foreign.key = pki.other_client_key.display().to_string();
        assert!(exchange(&pki.server_config(true), &foreign).await.is_err());
        // The server certificate does not name the configured server name.
        let mut named = pki.client_config(false);
        named.server_name = Some("elsewhere.example".into());
        assert!(exchange(&pki.server_config(false), &named).await.is_err());
        named.server_name = Some("localhost".into());
        exchange(&pki.server_config(false), &named)
            .await
            .expect("localhost is in the cert");
    }
}
