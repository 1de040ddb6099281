//! The cross-host MemCache cluster and the raw TCP pair between two
//! network namespaces: started for the cross phase, stopped in order.

use super::clients::client_procs;
use super::services::{wait_port, Killed};
use super::Shape;
use crate::cluster::{bench_command, mmc_command, write_private, Provider};
use crate::netns::Pair;
use crate::procs::Proc;
use crate::workloads::progress;
use std::process::Stdio;
use std::time::Duration;

/// The cross-host MemCache cluster and the raw TCP pair: MetaService and
/// memory providers in namespace A, forced-TCP client processes and raw
/// TCP client processes in B, the raw TCP server in A. Fields drop in
/// declaration order (the clients first, the MetaService last).
pub(super) struct CrossCluster {
    pub(super) raw: Vec<Proc>,
    server: Proc,
    pub(super) mmc: Vec<Proc>,
    provs: Vec<Provider>,
    meta_proc: Killed,
    /// The MetaService's address in A.
    meta: String,
    /// The raw TCP server's address in A.
    pub(super) raw_addr: String,
}

impl CrossCluster {
    /// Starts the MetaService (with a cluster token the bench generates:
    /// the services listen on the namespaces' addresses, not loopback, so
    /// the measurements include its handshakes), the providers, the MemCache
    /// and raw TCP client processes and the raw TCP server.
    pub(super) fn start(shape: &Shape, ns: &Pair) -> Result<CrossCluster, String> {
        let nmax = shape.max_clients();
        let meta = format!("{}:7000", ns.ip_a);
        progress(&format!(
            "cross: MetaService and {} providers in {}, clients in {}",
            shape.providers, ns.a, ns.b
        ));
        let token_file = shape.log("cross-token");
        let token = mmc_wire::auth::generate_token().map_err(|e| format!("cannot make a cluster token: {e}"))?;
        write_private(&token_file, &token)?;
        let token_arg = token_file.display().to_string();
        let meta_proc = Self::start_meta(shape, ns, &meta, &token_arg)?;
        let listen = format!("{}:0", ns.ip_a);
        let provs = (0..shape.providers)
            .map(|_| Provider::spawn_in(Some(&ns.a), &meta, shape.segment, Some(&listen), Some(&token_file)))
            .collect::<Result<Vec<_>, _>>()?;
        let mmc = client_procs(
            shape,
            nmax,
            Some(&ns.b),
            &[
                "--target",
                "mmc",
                "--meta",
                &meta,
                "--protocol",
                "tcp",
                "--spin-us",
                &crate::cluster::local_spin_us().to_string(),
                "--token-file",
                &token_arg,
            ],
            "cross-mmc",
        )?;
        let server = {
            let mut c = bench_command(Some(&ns.a))?;
            c.args(["bench-client", "--target", "tcp-server", "--addr", &listen])
                .args(["--ws", &shape.ws.to_string()])
                .args(["--congestion", &crate::cluster::congestion()]);
            Proc::spawn(c, "raw tcp server", Some(&shape.log("cross-tcp-server.log")), 10)?
        };
        let raw_addr = server.info.clone();
        let raw = client_procs(shape, nmax, Some(&ns.b), &["--target", "tcp"], "cross-tcp")?;
        Ok(CrossCluster {
            raw,
            server,
            mmc,
            provs,
            meta_proc,
            meta,
            raw_addr,
        })
    }

    /// The MetaService process in namespace A, once it accepts connections.
    fn start_meta(shape: &Shape, ns: &Pair, meta: &str, token_arg: &str) -> Result<Killed, String> {
        let mut mcmd = mmc_command(Some(&ns.a))?;
        let meta_spin = crate::cluster::meta_spin_us().to_string();
        mcmd.args(["meta", "--listen", meta, "--http", "", "--spin-wait-us", &meta_spin])
            .args(["--token-file", token_arg])
            .args(["--tcp-polling", crate::cluster::tcp_polling().name()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(shape.log("cross-meta.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        crate::cluster::die_with_parent(&mut mcmd);
        let proc = Killed(
            mcmd.spawn()
                .map_err(|e| format!("cannot start the cross-host MetaService: {e}"))?,
        );
        wait_port(&ns.a, meta, Duration::from_secs(10))?;
        Ok(proc)
    }

    /// Stops the clients, the raw server and the providers (in that order);
    /// returns the MetaService (stopped when dropped) and the report's note.
    pub(super) fn stop(self, shape: &Shape, ns: &Pair) -> (Killed, String) {
        let CrossCluster {
            raw,
            server,
            mmc,
            provs,
            meta_proc,
            meta,
            raw_addr,
        } = self;
        drop(mmc);
        drop(raw);
        drop(server);
        let pids: Vec<String> = provs.iter().map(|p| p.pid.to_string()).collect();
        drop(provs);
        let note = format!(
            "cross: {}; MetaService ({meta}) and {} memory providers (pids {}) in {}, `mmc bench-client --protocol tcp` \
             processes in {}; raw tcp = `mmc bench-client` processes in {} streaming to / from a raw TCP server process \
             in {} ({raw_addr}), the time running until the receiver has every byte",
            ns.describe(),
            shape.providers,
            pids.join(", "),
            ns.a,
            ns.b,
            ns.b,
            ns.a
        );
        (meta_proc, note)
    }
}
