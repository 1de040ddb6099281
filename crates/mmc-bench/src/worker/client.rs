//! The hidden `mmc bench-client` process: its flags, and the loop that
//! answers one JSON command per line on stdin with one JSON result per
//! line on stdout.

use super::loops::Worker;
use super::protocol::{Cmd, Res};
use super::raw_tcp::{raw_listen, tcp_op, tcp_serve, WsRegion, RAW_CONGESTION};
use super::targets::{Memcpy, Mmc, Redis, Target};
use mmc_local::BlockingObjectStore;
use std::io::{BufRead, Write};

#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// mmc, redis, memcpy, tcp (raw stream ops only) or tcp-server.
    #[arg(long)]
    target: String,
    /// MetaService address (mmc).
    #[arg(long, default_value = "127.0.0.1:5000")]
    meta: String,
    /// auto or tcp (mmc).
    #[arg(long, default_value = "auto")]
    protocol: String,
    /// Server address (redis), or listen address (tcp-server).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Region of the memcpy target, and of the tcp-server.
    #[arg(long, default_value_t = 256 << 20)]
    ws: u64,
    /// local.spin_wait_us (mmc) [default: the config default].
    #[arg(long)]
    spin_us: Option<u64>,
    /// local.transfer_congestion (mmc), and the congestion control of raw
    /// TCP sockets (tcp, tcp-server) [default: the config default].
    #[arg(long)]
    congestion: Option<String>,
    /// Cluster token file (mmc) [default: $MMC_TOKEN_FILE].
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
}

fn answer(out: &mut impl Write, r: &Res) {
    let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
    let _ = out.flush();
}

fn serve<T: Target>(mut w: Option<Worker<T>>) -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    answer(
        &mut out,
        &Res {
            ok: true,
            info: Some(format!("ready pid {}", std::process::id())),
            ..Res::default()
        },
    );
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let c: Cmd = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                answer(
                    &mut out,
                    &Res {
                        error: Some(format!("bad command: {e}")),
                        ..Res::default()
                    },
                );
                continue;
            }
        };
        if c.op == "quit" {
            answer(
                &mut out,
                &Res {
                    ok: true,
                    ..Res::default()
                },
            );
            break;
        }
        let r = match (c.op.as_str(), w.as_mut()) {
            ("stream_send" | "stream_recv" | "rr_send" | "rr_recv" | "pingpong", _) => tcp_op(&c),
            (_, Some(w)) => w.exec(&c),
            (_, None) => Err(format!("op {} needs a store target", c.op)),
        };
        answer(
            &mut out,
            &r.unwrap_or_else(|e| Res {
                error: Some(e),
                ..Res::default()
            }),
        );
    }
    Ok(())
}

/// `mmc bench-client`: one client process of a multi-client measurement.
pub fn client_main(a: ClientArgs) -> Result<(), String> {
    crate::init_logging("warn");
    let congestion = a
        .congestion
        .clone()
        .unwrap_or_else(|| mmc_config::LocalConfig::default().transfer_congestion);
    let _ = RAW_CONGESTION.set(mmc_local::transfer::Congestion::from_config(&congestion));
    match a.target.as_str() {
        "mmc" => {
            let protocol = match a.protocol.as_str() {
                "tcp" => mmc_config::Protocol::Tcp,
                _ => mmc_config::Protocol::Auto,
            };
            let mut cfg = mmc_config::LocalConfig {
                meta_addr: a.meta.clone(),
                dram_size: mmc_config::ByteSize(0),
                protocol,
                log_level: Some("warn".into()),
                spin_wait_us: a.spin_us.unwrap_or(mmc_config::LocalConfig::default().spin_wait_us),
                transfer_congestion: congestion,
                ..mmc_config::LocalConfig::default()
            };
            if let Some(t) = &a.token_file {
                cfg.security.token = None;
                cfg.security.token_file = Some(t.display().to_string());
            }
            let c = BlockingObjectStore::connect(cfg).map_err(|e| format!("connect to {}: {e}", a.meta))?;
            let r = serve(Some(Worker::new(Mmc(c.clone()), None)));
            c.close();
            r
        }
        "redis" => serve(Some(Worker::new(Redis(crate::redis::Conn::connect(&a.addr)?), None))),
        "memcpy" => serve(Some(Worker::new(Memcpy::new(a.ws), None))),
        "tcp" => serve::<Memcpy>(None),
        "tcp-server" => {
            let l = raw_listen(&a.addr)?;
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            let region = std::sync::Arc::new(WsRegion::new(a.ws)?);
            std::thread::spawn(move || tcp_serve(l, region));
            let mut out = std::io::stdout().lock();
            answer(
                &mut out,
                &Res {
                    ok: true,
                    info: Some(addr.to_string()),
                    ..Res::default()
                },
            );
            drop(out);
            // Serve until the parent closes stdin.
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
            Ok(())
        }
        other => Err(format!(
            "--target {other}: expected mmc, redis, memcpy, tcp or tcp-server"
        )),
    }
}
