//! Control connections over TLS (`meta.security.tls.enable`).
//!
//! The plain-TCP path in [`server`](crate::server) polls its socket with
//! `try_read` and writes frames straight into it; neither works through a
//! TLS session. A TLS connection instead runs the handshake (bounded by
//! [`HANDSHAKE_TIMEOUT`]), then reads frames from the decrypted stream with
//! [`read_frame`](mmc_wire::frame::read_frame) and queues its answers to a
//! [`StreamWriter`] task; each request goes through the same
//! [`Server::serve_frame`] as on TCP. A failed handshake (a plain-TCP
//! client, an untrusted or missing client certificate) closes the
//! connection with a log line before any frame is read. Shared-memory ring
//! offers are refused on these connections: the client stays on TLS.

use crate::metrics::Metrics;
use crate::server::{ring_offer, AbortOnDrop, Server, Sink};
use mmc_tls::TlsAcceptor;
use mmc_wire::frame::{self, FrameError, FrameKind};
use mmc_wire::message::Response;
use mmc_wire::stream_writer::StreamWriter;
use mmc_wire::Error;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Longest a TLS handshake may take before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Server {
    /// Makes the control port (and the HTTP endpoint served with this
    /// server) speak TLS from now on. Returns false, changing nothing, when
    /// an acceptor was already installed.
    pub fn set_tls(&self, acceptor: TlsAcceptor) -> bool {
        self.tls.set(acceptor).is_ok()
    }

    /// The TLS acceptor, when TLS is on.
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.get().cloned()
    }

    /// Serves one accepted control connection over TLS.
    pub(crate) async fn tls_connection(
        self: Arc<Self>,
        acceptor: TlsAcceptor,
        sock: TcpStream,
    ) -> Result<(), FrameError> {
        let peer = sock
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "an unknown peer".into());
        let mut stream = match handshake(&acceptor, sock).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "TLS handshake failed; closing control connection");
                return Ok(());
            }
        };
        if !self.authenticate(&mut stream).await {
            return Ok(());
        }
        self.stream_connection(stream).await
    }

    /// Serves request frames arriving on `stream` until it ends.
    async fn stream_connection<S>(self: Arc<Self>, stream: S) -> Result<(), FrameError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, wr) = tokio::io::split(stream);
        let (tx, writer) = StreamWriter::spawn(wr);
        let _guard = AbortOnDrop(writer);
        let sink = Sink::Stream(tx.clone());
        let mut first = true;
        while let Some(f) = frame::read_frame(&mut rd).await? {
            if std::mem::take(&mut first) && ring_offer(&f).is_some() {
                self.metrics
                    .record(Metrics::op_index("attach_ring"), 0, true, Duration::ZERO);
                let resp = Response::Failed(Error::invalid(
                    "control ring refused: not offered over TLS connections; connection stays on TLS",
                ));
                let _ = tx.send(frame::encode(FrameKind::Response, f.id, &resp)?);
                continue;
            }
            self.serve_frame(f, &sink)?;
        }
        Ok(())
    }
}

/// The server side of a TLS handshake on `sock`, bounded by
/// [`HANDSHAKE_TIMEOUT`].
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    sock: TcpStream,
) -> std::io::Result<mmc_tls::ServerTlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::state::{MetaParams, MetaState};
    use mmc_tls::testing::TestPki;
    use mmc_tls::ClientTls;
    use mmc_wire::message::Request;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A TLS MetaService (control port and HTTP endpoint); returns both
    /// addresses.
    async fn start(pki: &TestPki, mutual: bool) -> (String, String, Arc<Server>) {
        let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
        let server = Server::new(state);
        assert!(server.set_tls(mmc_tls::acceptor(&pki.server_config(mutual)).unwrap()));
        let ctl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = (
            ctl.local_addr().unwrap().to_string(),
            http.local_addr().unwrap().to_string(),
        );
        tokio::spawn(server.clone().serve(ctl));
        let role: crate::http::RoleFn = Arc::new(|| "leader");
        tokio::spawn(crate::http::serve_http(server.clone(), http, role));
        (addrs.0, addrs.1, server)
    }

    /// A TLS connection (no cluster-token handshake: HTTP).
    async fn tls_only(pki: &TestPki, mutual: bool, addr: &str) -> std::io::Result<mmc_tls::ClientTlsStream<TcpStream>> {
        let sock = TcpStream::connect(addr).await?;
        ClientTls::new(&pki.client_config(mutual))
            .unwrap()
            .connect(addr, sock)
            .await
    }

    /// A control connection: TLS, then the cluster-token handshake.
    async fn tls_client(
        pki: &TestPki,
        mutual: bool,
        addr: &str,
    ) -> std::io::Result<mmc_tls::ClientTlsStream<TcpStream>> {
        let mut s = tls_only(pki, mutual, addr).await?;
        // The cluster-token handshake (open mode) runs inside TLS.
        mmc_wire::auth::client_handshake(&mut s, None, mmc_wire::auth::Domain::Control)
            .await
            .map_err(std::io::Error::other)?;
        Ok(s)
    }

    async fn call<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, id: u64, req: &Request) -> Option<Response> {
        s.write_all(&frame::encode(FrameKind::Request, id, req).unwrap())
            .await
            .ok()?;
        let f = tokio::time::timeout(Duration::from_secs(10), frame::read_frame(s))
            .await
            .expect("no answer in time")
            .ok()??;
        assert_eq!(f.id, id);
        Some(f.decode().unwrap())
    }

    #[tokio::test]
    async fn requests_over_tls_and_ring_offers_refused() {
        let pki = TestPki::new("meta-conn");
        let (addr, _, _server) = start(&pki, true).await;
        let mut s = tls_client(&pki, true, &addr).await.unwrap();
        let offer = Request::AttachRing {
            name: "/proc/1/fd/3".into(),
            nonce: 1,
        };
        match call(&mut s, 1, &offer).await {
            Some(Response::Failed(e)) => assert!(e.to_string().contains("TLS"), "{e}"),
            other => panic!("ring offer over TLS answered {other:?}"),
        }
        for id in 2..50 {
            let r = call(&mut s, id, &Request::Exist { keys: vec!["k".into()] }).await;
            assert!(matches!(r, Some(Response::Exist(ref v)) if v == &[false]), "{r:?}");
        }
        // Pipelined: many requests before reading any answer.
        for id in 100..200u64 {
            let req = Request::Exist {
                keys: vec![format!("k{id}")],
            };
            s.write_all(&frame::encode(FrameKind::Request, id, &req).unwrap())
                .await
                .unwrap();
        }
        for id in 100..200u64 {
            let f = frame::read_frame(&mut s).await.unwrap().unwrap();
            assert_eq!(f.id, id);
        }
    }

    #[tokio::test]
    async fn plain_tcp_and_unauthenticated_clients_get_no_answers() {
        let pki = TestPki::new("meta-refuse");
        let (addr, _, server) = start(&pki, true).await;
        // A plain-TCP client speaking frames: closed without an answer.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let req = frame::encode(FrameKind::Request, 1, &Request::Stat).unwrap();
        s.write_all(&req).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("closed in time");
        assert!(
            frame::read_frame(&mut buf.as_slice()).await.is_err() || buf.is_empty(),
            "got a frame back: {buf:?}"
        );
        // No client certificate, mutual TLS on: the first request fails.
        let r = match tls_client(&pki, false, &addr).await {
            Ok(mut s) => call(&mut s, 1, &Request::Stat).await,
            Err(_) => None,
        };
        assert!(r.is_none(), "{r:?}");
        // None of this reached request handling.
        assert_eq!(
            server.metrics.ops[Metrics::op_index("stat")]
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn http_over_tls() {
        let pki = TestPki::new("meta-http");
        let (_, http, _server) = start(&pki, false).await;
        let mut s = tls_only(&pki, false, &http).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("ok") || text.contains("\r\n\r\nok"), "{text}");
        // Plain HTTP to the TLS port gets no HTTP answer.
        let mut s = TcpStream::connect(&http).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(!out.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&out));
    }
}
