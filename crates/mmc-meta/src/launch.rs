//! Starting a whole MetaService from its configuration: the state machine,
//! the control-RPC listener and the HTTP endpoint, until shutdown; in HA
//! mode (`meta.ha.enable`) also its campaign for leadership.
//!
//! HA mode: the MetaService listens at once but refuses every control
//! request with NOT_LEADER (naming the leader) until it wins the election;
//! then it serves with its term while its lease holds. A leader whose lease
//! lapses is fenced at once (see [`crate::role`]) and [`MetaService::run`]
//! returns an error: its metadata may already be stale (LocalServices
//! re-register with the next leader), so the process ends and, restarted,
//! joins as a standby with empty metadata, as a new leader rebuilds its
//! metadata from the ledgers LocalServices send when they re-register.

use crate::clock::SystemClock;
use crate::election::Election;
use crate::role::Role;
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
    ha: Option<Ha>,
}

/// HA mode's parts.
struct Ha {
    election: Arc<dyn Election>,
    role: Arc<Role>,
    /// The address published while leading.
    advertise: String,
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
        let ha = if cfg.ha.enable {
            let bound = listener.local_addr().map_err(|e| format!("meta.listen: {e}"))?;
            let advertise = if cfg.ha.advertise.is_empty() {
                if bound.ip().is_unspecified() {
                    return Err(format!(
                        "meta.ha.advertise: meta.listen ({bound}) is a wildcard address; set the address \
                         LocalServices reach this MetaService at"
                    ));
                }
                bound.to_string()
            } else {
                cfg.ha.advertise.clone()
            };
            let election = crate::election::etcd::EtcdElection::connect(
                &cfg.ha.etcd_endpoints,
                &cfg.ha.cluster_name,
                cfg.ha.lease_ttl_s,
            )
            .await
            .map_err(|e| format!("meta.ha: {e}"))?;
            let role = Arc::new(Role::new());
            server.set_role(role.clone());
            Some(Ha {
                election,
                role,
                advertise,
            })
        } else {
            None
        };
        Ok(MetaService {
            server,
            listener,
            http,
            ha,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.local_addr().expect("bound"))
    }

    /// Serves until `shutdown` completes; in HA mode a leader resigns
    /// then, and a leader that loses its lease returns an error.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let MetaService {
            server,
            listener,
            http,
            ha,
        } = self;
        let http_task = http.map(|h| {
            let role: Arc<dyn Fn() -> &'static str + Send + Sync> = match &ha {
                None => Arc::new(|| "leader"),
                Some(ha) => {
                    let r = ha.role.clone();
                    Arc::new(move || r.name())
                }
            };
            tokio::spawn(crate::http::serve_http(server.clone(), h, role))
        });
        let r = match &ha {
            None => tokio::select! {
                r = server.clone().serve(listener) => r,
                _ = shutdown => Ok(()),
            },
            Some(ha) => {
                let observer = tokio::spawn(follow_leader(ha.election.clone(), ha.role.clone()));
                let r = tokio::select! {
                    r = server.clone().serve(listener) => r,
                    _ = shutdown => Ok(()),
                    e = lead(ha, &server.state) => Err(std::io::Error::other(e)),
                };
                observer.abort();
                if ha.role.term() != 0 {
                    if let Err(e) = ha.election.resign().await {
                        tracing::warn!(error = %e, "could not resign leadership (a standby takes over when the lease lapses)");
                    } else {
                        tracing::info!("resigned leadership");
                    }
                }
                r
            }
        };
        if let Some(t) = http_task {
            t.abort();
        }
        r
    }
}

/// Campaigns, serves as leader once elected, and returns why leadership
/// ended (its lease lapsed).
async fn lead(ha: &Ha, state: &MetaState) -> String {
    tracing::info!(advertise = %ha.advertise, "HA mode: standby, campaigning for leadership");
    let l = match ha.election.campaign(&ha.advertise).await {
        Ok(l) => l,
        Err(e) => return format!("cannot campaign for leadership: {e}"),
    };
    // Ids of this leadership must be above every id the earlier leaders
    // handed out (recovery lets a higher id win): begin a new id space now,
    // not at the process start, which a standby may share with the leader
    // it replaces. The recovery window (how long members of the earlier
    // leadership may bring their ledgers) begins now too.
    let dead_earlier = match dead_providers(ha).await {
        Ok(d) => d,
        Err(e) => return format!("elected, but cannot read the dead-provider records from etcd: {e}"),
    };
    let dead_earlier_n = dead_earlier.len();
    state.begin_leadership(dead_earlier);
    ha.role.become_leader(l.term, l.lease.clone());
    tracing::info!(
        term = l.term,
        advertise = %ha.advertise,
        dead_providers = dead_earlier_n,
        "elected leader: serving"
    );
    tokio::select! {
        _ = l.lease.lost() => {}
        _ = record_deaths(ha, state) => {}
    }
    tracing::error!(
        term = l.term,
        "etcd lease not renewed in time: stepped down (fenced), exiting"
    );
    format!(
        "leadership of term {} lost (etcd lease not renewed in time); restart this MetaService to rejoin as a standby",
        l.term
    )
}

/// The dead-provider records of earlier leaders (a few tries: etcd just
/// answered the campaign).
async fn dead_providers(ha: &Ha) -> Result<Vec<u64>, crate::election::ElectionError> {
    let mut tries = 0;
    loop {
        match ha.election.dead_providers().await {
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::warn!(error = %e, "reading the dead-provider records; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            r => return r,
        }
    }
}

/// Records every provider this leader declares dead in etcd, so that the
/// next leader does not take its ledger back (docs/ha.md). Runs while
/// leading.
async fn record_deaths(ha: &Ha, state: &MetaState) {
    let keep = std::time::Duration::from_millis(state.dead_return_ms());
    loop {
        for (nonce, dead) in state.take_deaths() {
            let r = if dead {
                ha.election.record_dead(nonce, keep).await
            } else {
                ha.election.forget_dead(nonce).await
            };
            if let Err(e) = r {
                tracing::warn!(
                    error = %e,
                    nonce = format_args!("{nonce:016x}"),
                    "could not {} in etcd: {}",
                    if dead { "record a dead provider" } else { "delete the record of a provider that came back" },
                    if dead {
                        "after a failover its ledger may bring back objects removed since"
                    } else {
                        "after a failover its ledger is void (its objects are dropped)"
                    }
                );
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Keeps the role's idea of the leader (named in NOT_LEADER answers) current.
async fn follow_leader(election: Arc<dyn Election>, role: Arc<Role>) {
    let mut rx = election.observe();
    loop {
        let l = rx.borrow_and_update().clone();
        role.set_leader(l);
        if rx.changed().await.is_err() {
            return;
        }
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
