//! Cluster-token authentication: the HMAC-SHA256 challenge/response every
//! control, shared-memory ring and transfer connection runs before its first
//! frame or transfer header.
//!
//! It owns the handshake messages, their byte layout, the MAC construction
//! and [`ClusterToken`] (the token itself, never printed). It does no I/O
//! policy: the server side must be bounded in time by its caller (see
//! [`AUTH_TIMEOUT`]), and closing a refused connection is the caller's job
//! (dropping the stream).
//!
//! The handshake always runs, also when no token is configured ("open"
//! mode), so a client with a token can tell a server that does not check it
//! and refuse it.
//!
//! ```text
//! server -> client  Challenge (48 bytes)
//! offset  size  field
//! 0       8     magic b"MMCAUTH1"
//! 8       1     mode: 0 = open (no token), 1 = token required
//! 9       1     protocol version the server speaks in this domain: the
//!               control frame version or the transfer header version
//! 10      6     zero
//! 16      32    server_nonce (OS random)
//!
//! client -> server  Proof (72 bytes)
//! 0       8     magic b"MMCPROOF"
//! 8       32    client_nonce (OS random)
//! 40      32    mac = HMAC-SHA256(token, domain || "client" || server_nonce || client_nonce)
//!               (zeros in open mode)
//!
//! server -> client  Verdict (48 bytes)
//! 0       8     magic b"MMCVRDCT"
//! 8       1     status: 0 = accepted, 1 = refused
//! 9       7     zero
//! 16      32    mac = HMAC-SHA256(token, domain || "server" || client_nonce || server_nonce)
//!               (zeros in open mode or when refused)
//! ```
//!
//! `domain` is `mmc-control-v1` on control connections (and the ring offers
//! they carry) and `mmc-transfer-v1` on transfer connections, so a proof made
//! for one protocol is worthless on the other. On refusal the server sends
//! the verdict and closes the connection. MACs are compared in constant time.
//! A client refuses a server that speaks another protocol version with
//! [`AuthError::Version`], naming both, before it sends a frame.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const CHALLENGE_MAGIC: &[u8; 8] = b"MMCAUTH1";
pub const PROOF_MAGIC: &[u8; 8] = b"MMCPROOF";
pub const VERDICT_MAGIC: &[u8; 8] = b"MMCVRDCT";
pub const CHALLENGE_LEN: usize = 48;
pub const PROOF_LEN: usize = 72;
pub const VERDICT_LEN: usize = 48;
pub const NONCE_LEN: usize = 32;
pub const MAC_LEN: usize = 32;

const MODE_OPEN: u8 = 0;
const MODE_TOKEN: u8 = 1;
const STATUS_ACCEPTED: u8 = 0;
const STATUS_REFUSED: u8 = 1;

/// How long a server gives a new connection to complete the handshake
/// (callers wrap [`server_handshake`] in it).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared cluster token. Cheap to clone; its `Debug` never shows the
/// bytes, so it can sit in structs that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken(Arc<[u8]>);

impl ClusterToken {
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        ClusterToken(Arc::from(bytes.as_ref()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `Some` for a resolved token (as `SecurityConfig::resolve_token` gives).
    pub fn from_option(t: Option<Vec<u8>>) -> Option<Self> {
        t.map(ClusterToken::new)
    }
}

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterToken(<{} bytes, redacted>)", self.0.len())
    }
}

/// Which protocol a connection carries; it is mixed into every MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Control RPC (and the shared-memory ring offered over it).
    Control,
    /// Cross-host transfer of object bytes.
    Transfer,
}

impl Domain {
    /// The version of this domain's protocol that this build speaks
    /// (announced in the challenge).
    pub fn protocol_version(self) -> u8 {
        match self {
            Domain::Control => crate::frame::FRAME_VERSION,
            Domain::Transfer => crate::transfer::VERSION,
        }
    }

    fn protocol_name(self) -> &'static str {
        match self {
            Domain::Control => "control",
            Domain::Transfer => "transfer",
        }
    }

    pub fn label(self) -> &'static [u8] {
        match self {
            Domain::Control => b"mmc-control-v1",
            Domain::Transfer => b"mmc-transfer-v1",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("i/o during the authentication handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection during the authentication handshake (while reading the {0})")]
    Truncated(&'static str),
    #[error("bad {0} magic: not a MemCache service or another protocol version")]
    BadMagic(&'static str),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
    #[error(
        "the server requires the cluster token and none is configured: set `security.token` or \
         `security.token_file` (or pass --token-file / MMC_TOKEN_FILE)"
    )]
    TokenRequired,
    #[error("the server does not require the cluster token: refusing it (impostor or misconfigured)")]
    ServerOpen,
    #[error("the server refused our cluster token (wrong `security.token`?)")]
    Refused,
    #[error("the client's proof does not match the cluster token (wrong or missing token)")]
    BadClientProof,
    #[error("the server's proof does not match the cluster token (impostor or different token)")]
    BadServerProof,
    #[error(
        "the peer speaks {protocol} protocol version {peer} and this build speaks version {ours}: run the same \
         MemCache release on every node (version 0: a release from before protocol versions were announced)"
    )]
    Version { protocol: &'static str, peer: u8, ours: u8 },
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
    #[error("authentication handshake not completed within {0:?}")]
    TimedOut(Duration),
}

fn nonce() -> Result<[u8; NONCE_LEN], AuthError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(n)
}

fn hmac(token: &[u8]) -> Result<Hmac<Sha256>, AuthError> {
    <Hmac<Sha256> as Mac>::new_from_slice(token).map_err(|e| AuthError::Malformed {
        what: "cluster token",
        why: e.to_string(),
    })
}

/// HMAC-SHA256(token, domain || role || a || b).
fn mac_of(token: &[u8], domain: Domain, role: &[u8], a: &[u8], b: &[u8]) -> Result<Hmac<Sha256>, AuthError> {
    let mut m = hmac(token)?;
    m.update(domain.label());
    m.update(role);
    m.update(a);
    m.update(b);
    Ok(m)
}

async fn read_msg<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8], what: &'static str) -> Result<(), AuthError> {
    match s.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(AuthError::Truncated(what)),
        Err(e) => Err(AuthError::Io(e)),
    }
}

async fn write_msg<S: AsyncWrite + Unpin>(s: &mut S, buf: &[u8]) -> Result<(), AuthError> {
    s.write_all(buf).await?;
    s.flush().await?;
    Ok(())
}

/// Runs the server side on a fresh connection. `Ok` means the client may
/// send frames; on `Err` the caller closes the connection (a refusal
/// verdict has already been sent when the proof was wrong). Not bounded in
/// time: wrap it in a timeout such as [`AUTH_TIMEOUT`].
pub async fn server_handshake<S>(s: &mut S, token: Option<&[u8]>, domain: Domain) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let server_nonce = nonce()?;
    let mut challenge = [0u8; CHALLENGE_LEN];
    challenge[..8].copy_from_slice(CHALLENGE_MAGIC);
    challenge[8] = if token.is_some() { MODE_TOKEN } else { MODE_OPEN };
    challenge[9] = domain.protocol_version();
    challenge[16..].copy_from_slice(&server_nonce);
    write_msg(s, &challenge).await?;

    let mut proof = [0u8; PROOF_LEN];
    read_msg(s, &mut proof, "proof").await?;
    if &proof[..8] != PROOF_MAGIC {
        return Err(AuthError::BadMagic("proof"));
    }
    let client_nonce = &proof[8..40];
    let client_mac = &proof[40..72];

    let mut verdict = [0u8; VERDICT_LEN];
    verdict[..8].copy_from_slice(VERDICT_MAGIC);
    if let Some(token) = token {
        let ok = mac_of(token, domain, b"client", &server_nonce, client_nonce)?
            .verify_slice(client_mac)
            .is_ok();
        if !ok {
            verdict[8] = STATUS_REFUSED;
            // Best effort: the client learns why before the close.
            let _ = write_msg(s, &verdict).await;
            return Err(AuthError::BadClientProof);
        }
        let mac = mac_of(token, domain, b"server", client_nonce, &server_nonce)?.finalize();
        verdict[16..].copy_from_slice(&mac.into_bytes());
    }
    verdict[8] = STATUS_ACCEPTED;
    write_msg(s, &verdict).await
}

/// Client state between sending the proof and reading the verdict.
struct ClientSide {
    server_nonce: [u8; NONCE_LEN],
    client_nonce: [u8; NONCE_LEN],
}

/// Checks a challenge and builds the proof answering it.
fn answer_challenge(
    challenge: &[u8; CHALLENGE_LEN],
    token: Option<&[u8]>,
    domain: Domain,
) -> Result<(ClientSide, [u8; PROOF_LEN]), AuthError> {
    if &challenge[..8] != CHALLENGE_MAGIC {
        return Err(AuthError::BadMagic("challenge"));
    }
    if challenge[9] != domain.protocol_version() {
        return Err(AuthError::Version {
            protocol: domain.protocol_name(),
            peer: challenge[9],
            ours: domain.protocol_version(),
        });
    }
    if challenge[10..16].iter().any(|&b| b != 0) {
        return Err(AuthError::Malformed {
            what: "challenge",
            why: "reserved bytes are not zero".into(),
        });
    }
    match (challenge[8], token) {
        (MODE_OPEN, None) | (MODE_TOKEN, Some(_)) => {}
        (MODE_OPEN, Some(_)) => return Err(AuthError::ServerOpen),
        (MODE_TOKEN, None) => return Err(AuthError::TokenRequired),
        (m, _) => {
            return Err(AuthError::Malformed {
                what: "challenge",
                why: format!("unknown mode {m}"),
            })
        }
    }
    let mut side = ClientSide {
        server_nonce: [0; NONCE_LEN],
        client_nonce: nonce()?,
    };
    side.server_nonce.copy_from_slice(&challenge[16..48]);
    let mut proof = [0u8; PROOF_LEN];
    proof[..8].copy_from_slice(PROOF_MAGIC);
    proof[8..40].copy_from_slice(&side.client_nonce);
    if let Some(token) = token {
        let mac = mac_of(token, domain, b"client", &side.server_nonce, &side.client_nonce)?.finalize();
        proof[40..].copy_from_slice(&mac.into_bytes());
    }
    Ok((side, proof))
}

/// Checks the server's verdict (and with a token, its proof).
fn check_verdict(
    side: &ClientSide,
    verdict: &[u8; VERDICT_LEN],
    token: Option<&[u8]>,
    domain: Domain,
) -> Result<(), AuthError> {
    if &verdict[..8] != VERDICT_MAGIC {
        return Err(AuthError::BadMagic("verdict"));
    }
    if verdict[9..16].iter().any(|&b| b != 0) {
        return Err(AuthError::Malformed {
            what: "verdict",
            why: "reserved bytes are not zero".into(),
        });
    }
    match verdict[8] {
        STATUS_ACCEPTED => {}
        STATUS_REFUSED => return Err(AuthError::Refused),
        st => {
            return Err(AuthError::Malformed {
                what: "verdict",
                why: format!("unknown status {st}"),
            })
        }
    }
    if let Some(token) = token {
        mac_of(token, domain, b"server", &side.client_nonce, &side.server_nonce)?
            .verify_slice(&verdict[16..48])
            .map_err(|_| AuthError::BadServerProof)?;
    }
    Ok(())
}

/// Runs the client side on a fresh connection. With a token it proves it
/// and checks the server's proof in turn, refusing a server that does not
/// ask for the token; without one it accepts only an open server. The
/// caller bounds it in time (its connect timeout).
pub async fn client_handshake<S>(s: &mut S, token: Option<&[u8]>, domain: Domain) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut challenge = [0u8; CHALLENGE_LEN];
    read_msg(s, &mut challenge, "challenge").await?;
    let (side, proof) = answer_challenge(&challenge, token, domain)?;
    write_msg(s, &proof).await?;
    let mut verdict = [0u8; VERDICT_LEN];
    read_msg(s, &mut verdict, "verdict").await?;
    check_verdict(&side, &verdict, token, domain)
}

/// [`client_handshake`] over a blocking stream (a `std::net::TcpStream`
/// with the caller's read timeout, say): for tools and tests that speak
/// the protocol without a runtime.
pub fn client_handshake_blocking<S>(s: &mut S, token: Option<&[u8]>, domain: Domain) -> Result<(), AuthError>
where
    S: std::io::Read + std::io::Write,
{
    let read = |s: &mut S, buf: &mut [u8], what: &'static str| match s.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(AuthError::Truncated(what)),
        Err(e) => Err(AuthError::Io(e)),
    };
    let mut challenge = [0u8; CHALLENGE_LEN];
    read(s, &mut challenge, "challenge")?;
    let (side, proof) = answer_challenge(&challenge, token, domain)?;
    s.write_all(&proof)?;
    s.flush()?;
    let mut verdict = [0u8; VERDICT_LEN];
    read(s, &mut verdict, "verdict")?;
    check_verdict(&side, &verdict, token, domain)
}

/// A fresh random cluster token: 32 bytes from the OS, as 64 hex digits
/// (for tools and tests that set up a cluster of their own).
pub fn generate_token() -> Result<String, AuthError> {
    Ok(nonce()?.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time independent of where they differ (the
/// length is not secret). For bearer tokens, which are not MACs.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// [`server_handshake`] bounded by `limit`.
pub async fn server_handshake_within<S>(
    s: &mut S,
    token: Option<&[u8]>,
    domain: Domain,
    limit: Duration,
) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(limit, server_handshake(s, token, domain)).await {
        Ok(r) => r,
        Err(_) => Err(AuthError::TimedOut(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    const TOKEN: &[u8] = b"0123456789abcdef-cluster";
    const OTHER: &[u8] = b"0123456789abcdef-someone";

    /// Runs both sides over an in-memory pipe.
    async fn pair(
        server_token: Option<&[u8]>,
        client_token: Option<&[u8]>,
        sd: Domain,
        cd: Domain,
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (mut a, mut b) = duplex(1024);
        let st = server_token.map(|t| t.to_vec());
        let server = tokio::spawn(async move {
            let r = server_handshake(&mut a, st.as_deref(), sd).await;
            drop(a); // the caller closes on failure
            r
        });
        let c = client_handshake(&mut b, client_token, cd).await;
        drop(b); // so a server waiting for a proof that never comes sees the close
        (server.await.unwrap(), c)
    }

    #[tokio::test]
    async fn a_server_of_another_protocol_version_is_refused_naming_both() {
        let (mut a, mut b) = duplex(1024);
        let server = tokio::spawn(async move {
            let mut challenge = [0u8; CHALLENGE_LEN];
            challenge[..8].copy_from_slice(CHALLENGE_MAGIC);
            challenge[9] = 1;
            a.write_all(&challenge).await.unwrap();
            a
        });
        let e = client_handshake(&mut b, None, Domain::Control).await.unwrap_err();
        let _a = server.await.unwrap();
        assert!(
            matches!(e, AuthError::Version { protocol: "control", peer: 1, ours } if ours == crate::frame::FRAME_VERSION),
            "{e:?}"
        );
        assert!(e.to_string().contains("protocol version 1"), "{e}");
    }

    #[tokio::test]
    async fn right_token_is_accepted_both_ways() {
        let (s, c) = pair(Some(TOKEN), Some(TOKEN), Domain::Control, Domain::Control).await;
        s.unwrap();
        c.unwrap();
    }

    #[tokio::test]
    async fn open_server_and_tokenless_client_agree() {
        let (s, c) = pair(None, None, Domain::Transfer, Domain::Transfer).await;
        s.unwrap();
        c.unwrap();
    }

    #[tokio::test]
    async fn wrong_token_is_refused() {
        let (s, c) = pair(Some(TOKEN), Some(OTHER), Domain::Control, Domain::Control).await;
        assert!(matches!(s, Err(AuthError::BadClientProof)), "{s:?}");
        assert!(matches!(c, Err(AuthError::Refused)), "{c:?}");
    }

    #[tokio::test]
    async fn a_proof_for_the_other_protocol_is_refused() {
        let (s, c) = pair(Some(TOKEN), Some(TOKEN), Domain::Control, Domain::Transfer).await;
        assert!(matches!(s, Err(AuthError::BadClientProof)), "{s:?}");
        assert!(matches!(c, Err(AuthError::Refused)), "{c:?}");
    }

    #[tokio::test]
    async fn tokenless_client_facing_a_token_server_names_the_setting() {
        let (s, c) = pair(Some(TOKEN), None, Domain::Control, Domain::Control).await;
        let e = c.unwrap_err();
        assert!(matches!(e, AuthError::TokenRequired), "{e:?}");
        assert!(e.to_string().contains("security.token"), "{e}");
        assert!(e.to_string().contains("token_file"), "{e}");
        assert!(matches!(s, Err(AuthError::Truncated("proof"))), "{s:?}");
    }

    #[tokio::test]
    async fn token_client_refuses_an_open_server() {
        let (_s, c) = pair(None, Some(TOKEN), Domain::Control, Domain::Control).await;
        let e = c.unwrap_err();
        assert!(matches!(e, AuthError::ServerOpen), "{e:?}");
        assert!(e.to_string().contains("impostor"), "{e}");
    }

    #[tokio::test]
    async fn client_refuses_a_server_that_cannot_prove_the_token() {
        // An impostor that asks for the token but does not know it: it
        // accepts any proof and answers with a made-up MAC.
        let (mut a, mut b) = duplex(1024);
        let impostor = tokio::spawn(async move {
            let mut ch = [0u8; CHALLENGE_LEN];
            ch[..8].copy_from_slice(CHALLENGE_MAGIC);
            ch[8] = MODE_TOKEN;
            ch[9] = Domain::Control.protocol_version();
            a.write_all(&ch).await.unwrap();
            let mut proof = [0u8; PROOF_LEN];
            a.read_exact(&mut proof).await.unwrap();
            let mut v = [0u8; VERDICT_LEN];
            v[..8].copy_from_slice(VERDICT_MAGIC);
            v[16..].copy_from_slice(&[0xab; 32]);
            a.write_all(&v).await.unwrap();
        });
        let e = client_handshake(&mut b, Some(TOKEN), Domain::Control)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::BadServerProof), "{e:?}");
        impostor.await.unwrap();
    }

    #[tokio::test]
    async fn garbage_is_bad_magic_on_both_sides() {
        // A client speaking something else (say, a control frame).
        let (mut a, mut b) = duplex(1024);
        let server = tokio::spawn(async move { server_handshake(&mut a, Some(TOKEN), Domain::Control).await });
        let mut ch = [0u8; CHALLENGE_LEN];
        b.read_exact(&mut ch).await.unwrap();
        b.write_all(&[0x55u8; PROOF_LEN]).await.unwrap();
        let e = server.await.unwrap().unwrap_err();
        assert!(matches!(e, AuthError::BadMagic("proof")), "{e:?}");
        assert!(e.to_string().contains("not a MemCache service"), "{e}");
        // A server speaking something else.
        let (mut a, mut b) = duplex(1024);
        a.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n....................")
            .await
            .unwrap();
        let e = client_handshake(&mut b, None, Domain::Control).await.unwrap_err();
        assert!(matches!(e, AuthError::BadMagic("challenge")), "{e:?}");
    }

    #[tokio::test]
    async fn truncated_messages_are_reported_not_awaited_forever() {
        // The server closes mid-challenge.
        let (mut a, mut b) = duplex(1024);
        a.write_all(&CHALLENGE_MAGIC[..]).await.unwrap();
        drop(a);
        let e = client_handshake(&mut b, Some(TOKEN), Domain::Control)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Truncated("challenge")), "{e:?}");
        // The client closes mid-proof.
        let (mut a, mut b) = duplex(1024);
        let server = tokio::spawn(async move { server_handshake(&mut a, Some(TOKEN), Domain::Control).await });
        let mut ch = [0u8; CHALLENGE_LEN];
        b.read_exact(&mut ch).await.unwrap();
        b.write_all(&PROOF_MAGIC[..]).await.unwrap();
        drop(b);
        let e = server.await.unwrap().unwrap_err();
        assert!(matches!(e, AuthError::Truncated("proof")), "{e:?}");
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (mut a, _b) = duplex(1024);
        let e = server_handshake_within(&mut a, None, Domain::Transfer, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::TimedOut(_)), "{e:?}");
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(TOKEN, TOKEN));
        assert!(!constant_time_eq(TOKEN, OTHER));
        assert!(!constant_time_eq(TOKEN, &TOKEN[..10]));
        assert!(constant_time_eq(b"", b""));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_blocking_client_speaks_the_same_protocol() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            server_handshake(&mut s, Some(TOKEN), Domain::Transfer).await
        });
        let client = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            client_handshake_blocking(&mut s, Some(TOKEN), Domain::Transfer)
        });
        client.await.unwrap().unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let (a, b) = (generate_token().unwrap(), generate_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = ClusterToken::new(TOKEN);
        let d = format!("{t:?}");
        assert!(!d.contains("0123456789"), "{d}");
        assert_eq!(t.as_bytes(), TOKEN);
    }
}
