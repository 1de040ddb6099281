//! Starting a whole MetaService from its configuration: the state machine,
//! the control-RPC listener and the HTTP endpoint, until shutdown.

use crate::clock::SystemClock;
use crate::server::Server;
use crate::state::{MetaParams, MetaState};
use mmc_config::MetaConfig;
use mmc_wire::auth::ClusterToken;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A MetaService whose listeners are bound.
pub struct MetaService {
    pub server: Arc<Server>,
    listener: TcpListener,
    http: Option<TcpListener>,
}

impl MetaService {
    /// Validates `cfg` and binds its ports.
    pub async fn bind(cfg: &MetaConfig) -> Result<Self, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        let token = cfg.security.resolve_token().map_err(|e| e.to_string())?;
        let mut exposed = vec![("meta.listen", cfg.listen.as_str())];
        if !cfg.http_listen.is_empty() {
            exposed.push(("meta.http_listen", cfg.http_listen.as_str()));
        }
        if let Some(warning) = cfg
            .security
            .check_exposure(token.is_some(), &exposed)
            .map_err(|e| e.to_string())?
        {
            tracing::warn!("INSECURE: {warning}");
        }
        let token = ClusterToken::from_option(token);
        if cfg.ha.enable {
            return Err("meta.ha.enable: HA mode is not available in this build yet".into());
        }
        raise_nofile(cfg.max_connections);
        let listener = TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {} (meta.listen): {e}", cfg.listen))?;
        let http = if cfg.http_listen.is_empty() {
            None
        } else {
            Some(
                TcpListener::bind(&cfg.http_listen)
                    .await
                    .map_err(|e| format!("cannot listen on {} (meta.http_listen): {e}", cfg.http_listen))?,
            )
        };
        let state = Arc::new(MetaState::new(MetaParams::from(cfg), Arc::new(SystemClock::default())));
        let server = Server::with_options(
            state,
            std::time::Duration::from_micros(cfg.spin_wait_us),
            cfg.tcp_polling
                .enabled(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
            token,
            cfg.max_connections as usize,
            std::time::Duration::from_millis(cfg.frame_timeout_ms),
        );
        if cfg.security.tls.enable {
            let acceptor = mmc_tls::acceptor(&cfg.security.tls).map_err(|e| format!("meta.security.tls: {e}"))?;
            server.set_tls(acceptor);
        }
        Ok(MetaService { server, listener, http })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.local_addr().expect("bound"))
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let MetaService { server, listener, http } = self;
        let http_task = http.map(|h| {
            let role: Arc<dyn Fn() -> &'static str + Send + Sync> = Arc::new(|| "leader");
            tokio::spawn(crate::http::serve_http(server.clone(), h, role))
        });
        let r = tokio::select! {
            r = server.clone().serve(listener) => r,
            _ = shutdown => Ok(()),
        };
        if let Some(t) = http_task {
            t.abort();
        }
        r
    }
}

/// Raises the soft descriptor limit to the hard limit, so that
/// `max_connections` connections (plus the HTTP port's and the process's own
/// descriptors) fit; warns when they still do not.
fn raise_nofile(max_connections: u64) {
    match mmc_wire::listen::raise_nofile_limit() {
        Ok(limit) => {
            let need = max_connections + crate::http::MAX_CONNECTIONS as u64 + 64;
            if limit < need {
                tracing::warn!(
                    limit,
                    "the descriptor limit (RLIMIT_NOFILE) is below meta.max_connections ({max_connections}) plus \
                     the HTTP port's connections: connections beyond it are refused by accept errors (survived, \
                     retried) rather than by the limit"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit (RLIMIT_NOFILE)"),
    }
}
