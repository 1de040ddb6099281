//! Test certificates (feature `testing`): a CA with a server certificate
//! for 127.0.0.1/localhost and a client certificate, plus an unrelated
//! second CA with its own client certificate, written as PEM files into a
//! fresh temporary folder. For tests only: keys are generated on the spot.

use mmc_config::TlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};

pub struct TestPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed none of the above.
    pub other_ca: PathBuf,
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("ca key");
    let pem = p.self_signed(&key).expect("ca cert").pem();
    (p, key, pem)
}

fn leaf(names: &[&str], issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("leaf params");
    let key = KeyPair::generate().expect("leaf key");
    let cert = p.signed_by(&key, issuer).expect("leaf cert");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Generates everything into `<tmp>/mmc-tls-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mmc-tls-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        Self::in_dir(&dir)
    }

    pub fn in_dir(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create pki dir");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write pem");
            p
        };
        let (ca_params, ca_key, ca_pem) = ca("mmc test ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let (server_cert, server_key) = leaf(&["127.0.0.1", "localhost", "::1"], &issuer);
        let (client_cert, client_key) = leaf(&["mmc-client"], &issuer);
        let (other_params, other_key, other_pem) = ca("unrelated ca");
        let other = Issuer::new(other_params, other_key);
        let (other_client_cert, other_client_key) = leaf(&["mmc-client"], &other);
        TestPki {
            dir: dir.to_owned(),
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.pem", &other_pem),
            other_client_cert: write("other-client.pem", &other_client_cert),
            other_client_key: write("other-client.key", &other_client_key),
        }
    }

    /// Server settings: TLS on, `mutual` as given.
    pub fn server_config(&self, mutual: bool) -> TlsConfig {
        TlsConfig {
            enable: true,
            cert: self.server_cert.display().to_string(),
            key: self.server_key.display().to_string(),
            ca: self.ca.display().to_string(),
            mutual,
            ..Default::default()
        }
    }

    /// Client settings trusting this CA; with `mutual` it presents the
    /// client certificate.
    pub fn client_config(&self, mutual: bool) -> TlsConfig {
        TlsConfig {
            enable: true,
            cert: self.client_cert.display().to_string(),
            key: self.client_key.display().to_string(),
            ca: self.ca.display().to_string(),
            mutual,
            ..Default::default()
        }
    }
}
