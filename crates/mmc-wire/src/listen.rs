//! Accepting connections on a server port so that hostile or merely
//! numerous clients cannot take the service down: accept errors (running
//! out of descriptors: EMFILE, ENFILE, ENOBUFS, ...) are logged at a bounded
//! rate and retried with backoff, never fatal; a connection limit closes the
//! excess at once (counted); and [`raise_nofile_limit`] lifts the process's
//! soft descriptor limit to its hard limit at service start.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// First pause after a failed accept; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval and kind of event.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A log line that is written at most once per [`LOG_EVERY`]; the events in
/// between are counted and reported with the next line.
#[derive(Default)]
pub struct RateLimitedLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    /// `Some(events suppressed since the last line)` when a line may be
    /// written now, `None` when this event is only counted.
    pub fn admit(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// The connection limit of one listening port, shared by its accept loop
/// and the connections it admitted (each holds a permit until it ends).
pub struct ConnLimit {
    what: &'static str,
    max: usize,
    slots: Arc<Semaphore>,
    refused: AtomicU64,
    accept_errors: AtomicU64,
    refuse_log: RateLimitedLog,
    error_log: RateLimitedLog,
}

impl ConnLimit {
    /// At most `max` connections at once (at least 1); `what` names the
    /// port in log lines ("control", "transfer", ...).
    pub fn new(what: &'static str, max: usize) -> Arc<Self> {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(ConnLimit {
            what,
            max,
            slots: Arc::new(Semaphore::new(max)),
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            refuse_log: RateLimitedLog::default(),
            error_log: RateLimitedLog::default(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Connections closed at once because the limit was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Failed accepts (each retried after a pause).
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// The next connection within the limit, with the permit it must hold
    /// for its life. Never fails: accept errors are logged and retried
    /// after a growing pause (descriptors come back as other connections
    /// close), and connections beyond the limit are closed at once.
    pub async fn accept(&self, listener: &TcpListener) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let (sock, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    self.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = self.error_log.admit() {
                        tracing::warn!(
                            port = self.what,
                            error = %e,
                            suppressed,
                            open = self.open(),
                            "accept failed; retrying in {backoff:?} (raise the descriptor limit, `ulimit -n`, if this persists)"
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => return (sock, peer, permit),
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = self.refuse_log.admit() {
                        tracing::warn!(
                            port = self.what,
                            %peer,
                            suppressed,
                            "connection refused: {} connections open, the limit",
                            self.max
                        );
                    }
                    drop(sock);
                }
            }
        }
    }
}

/// Raises this process's soft limit on open descriptors (`RLIMIT_NOFILE`)
/// to its hard limit; returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one valid `rlimit` we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_log_counts_what_it_drops() {
        let l = RateLimitedLog::default();
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), None);
        assert_eq!(l.admit(), None);
        *l.last.lock().unwrap() = Some(Instant::now() - LOG_EVERY);
        assert_eq!(l.admit(), Some(2));
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_at_once() {
        use tokio::io::AsyncReadExt;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let limit = ConnLimit::new("test", 2);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let (_a, _, pa) = limit.accept(&l).await;
        let (_b, _, _pb) = limit.accept(&l).await;
        assert_eq!(limit.open(), 2);
        // The third is refused; once a slot frees, a fourth is admitted.
        let accept = tokio::spawn({
            let limit = limit.clone();
            async move {
                let r = limit.accept(&l).await;
                (r.0, r.2)
            }
        });
        let mut buf = [0u8; 1];
        let n = clients[2].read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "the refused connection sees its end");
        assert_eq!(limit.refused(), 1);
        drop(pa);
        let _d = TcpStream::connect(addr).await.unwrap();
        let (_s, _p) = accept.await.unwrap();
        assert_eq!(limit.open(), 2);
    }

    #[test]
    fn nofile_soft_limit_reaches_the_hard_limit() {
        let soft = raise_nofile_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a struct we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
