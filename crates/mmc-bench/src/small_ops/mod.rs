//! `mmc-bench small-ops`: the small operations an inference engine makes
//! (one `exist`, one 4 KiB `get_into`, and both as 32-key batches) in two
//! process shapes, measured in the same run:
//!
//! - **in process** (the baseline): MetaService, client and the memory
//!   provider's mapping in this process, as `--workload batch` measures;
//! - **separate processes**, as an engine runs them: a MetaService process
//!   (`mmc meta`), a memory-provider process (`mmc local`) and a client
//!   process that is this binary (Rust), a C program on the C API
//!   (`crates/mmc-capi/bench/small_ops.c`, compiled here with `cc`), or
//!   Python on `memcache_rs` (`crates/mmc-python/bench/small_ops.py`).
//!
//! Every client runs the same loop ([`measure`] here, and its copies in C
//! and Python): 256 keys of 4 KiB are put, then each operation is timed
//! in `--rounds` rounds of at least `--round-s` seconds after one warm-up
//! round, rotating over the keys; the figure is the median round's mean
//! time per call. The bytes of the last batch read are checked. A client
//! process prints one JSON line: `{"client": .., "exist1_us": ..,
//! "get1_us": .., "exist32_us": .., "get32_us": ..}`.

mod table;

use super::cluster::{self, Cluster, Provider};
use clap::builder::TypedValueParser;
use clap::Args;
use mmc_config::{ByteSize, Protocol};
use mmc_local::{BlockingObjectStore, PutOptions};
use serde::{Deserialize, Serialize};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use table::{Column, Pass};

/// Keys each client puts and rotates over.
pub const KEYS: usize = 256;
/// Bytes of each value.
pub const VALUE: usize = 4096;
/// Keys of a batch call.
pub const BATCH: usize = 32;

/// Microseconds per call of the four operations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub exist1_us: f64,
    pub get1_us: f64,
    pub exist32_us: f64,
    pub get32_us: f64,
}

/// One client's figures, as a client process prints them.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ClientLine {
    pub client: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// How long the timed rounds run.
#[derive(Clone, Copy, Debug)]
pub struct Rounds {
    pub round_s: f64,
    pub rounds: usize,
}

/// The median of `rounds` timed rounds (after one untimed warm-up round)
/// of `op`, in microseconds per call; `op(i)` makes call number `i`.
fn timed(r: Rounds, mut op: impl FnMut(usize) -> Result<(), String>) -> Result<f64, String> {
    let mut per_call = Vec::with_capacity(r.rounds);
    let mut i = 0usize;
    for round in 0..=r.rounds {
        let start = Instant::now();
        let mut calls = 0u64;
        loop {
            for _ in 0..16 {
                op(i)?;
                i = i.wrapping_add(1);
            }
            calls += 16;
            if start.elapsed().as_secs_f64() >= r.round_s {
                break;
            }
        }
        if round > 0 {
            per_call.push(start.elapsed().as_secs_f64() * 1e6 / calls as f64);
        }
    }
    per_call.sort_by(f64::total_cmp);
    Ok(per_call[per_call.len() / 2])
}

/// The value of key `j`: its index in the first 8 bytes, then `j` as a byte.
pub fn value_of(j: usize) -> Vec<u8> {
    let mut v = vec![j as u8; VALUE];
    v[..8].copy_from_slice(&(j as u64).to_le_bytes());
    v
}

/// Runs the loop on `store`: puts the keys (named after `tag`), times the
/// four operations, checks bytes, removes the keys.
pub fn measure(store: &BlockingObjectStore, tag: &str, r: Rounds) -> Result<Figures, String> {
    let keys: Vec<String> = (0..KEYS).map(|j| format!("small-ops-{tag}-{j}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values: Vec<Vec<u8>> = (0..KEYS).map(value_of).collect();
    for (k, v) in refs.chunks(BATCH).zip(values.chunks(BATCH)) {
        let vr: Vec<&[u8]> = v.iter().map(Vec::as_slice).collect();
        for (key, res) in k.iter().zip(
            store
                .put_batch(k, &vr, &PutOptions::default())
                .map_err(|e| e.to_string())?,
        ) {
            res.map_err(|e| format!("put {key}: {e}"))?;
        }
    }
    let result = run_ops(store, &refs, r);
    let removed = store.remove_batch(&refs);
    let f = result?;
    removed.map_err(|e| format!("remove_batch: {e}"))?;
    Ok(f)
}

const PAGE: usize = 4096;

/// The first `len` bytes of `mem` from its first page boundary: every
/// client reads into page-aligned buffers, as an engine's KV pool is (a
/// buffer 16 bytes past a page makes each 4 KiB copy slower, see
/// `mmc_local::copy::SHORT_AHEAD_MIN`). `mem` has `len + PAGE` bytes.
fn page_aligned(mem: &mut [u8], len: usize) -> &mut [u8] {
    let at = mem.as_ptr().align_offset(PAGE);
    &mut mem[at..at + len]
}

fn run_ops(store: &BlockingObjectStore, keys: &[&str], r: Rounds) -> Result<Figures, String> {
    let exist1_us = timed(r, |i| match store.exist(keys[i % KEYS]) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("exist {}: absent", keys[i % KEYS])),
        Err(e) => Err(format!("exist {}: {e}", keys[i % KEYS])),
    })?;
    let mut one_mem = vec![0u8; VALUE + PAGE];
    let one = page_aligned(&mut one_mem, VALUE);
    let get1_us = timed(r, |i| {
        store
            .get_into(keys[i % KEYS], one)
            .map_err(|e| format!("get_into {}: {e}", keys[i % KEYS]))
    })?;
    let window = |i: usize| {
        let at = (i * BATCH) % KEYS;
        &keys[at..at + BATCH]
    };
    let exist32_us = timed(r, |i| {
        let found = store.exist_batch(window(i)).map_err(|e| format!("exist_batch: {e}"))?;
        match found.iter().all(|&f| f) {
            true => Ok(()),
            false => Err("exist_batch: a key is absent".into()),
        }
    })?;
    let mut buf_mem = vec![0u8; BATCH * VALUE + PAGE];
    let buf = page_aligned(&mut buf_mem, BATCH * VALUE);
    let mut last = 0;
    let get32_us = timed(r, |i| {
        let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(VALUE).collect();
        last = (i * BATCH) % KEYS;
        for res in store
            .get_into_batch(window(i), &mut bufs)
            .map_err(|e| format!("get_into_batch: {e}"))?
        {
            res.map_err(|e| format!("get_into_batch: {e}"))?;
        }
        Ok(())
    })?;
    for (n, got) in buf.chunks(VALUE).enumerate() {
        if got != value_of(last + n).as_slice() {
            return Err(format!(
                "get_into_batch: {} returned other bytes than were put",
                keys[last + n]
            ));
        }
    }
    Ok(Figures {
        exist1_us,
        get1_us,
        exist32_us,
        get32_us,
    })
}

/// `mmc-bench small-ops`.
#[derive(Args, Debug)]
pub struct SmallOpsArgs {
    /// Seconds of each timed round.
    #[arg(long, default_value_t = 0.3)]
    round_s: f64,
    /// Timed rounds per operation (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Python with memcache_rs installed [default: .venv/bin/python]; "" skips the Python client.
    // clap's own PathBuf parser refuses an empty value, which is how the
    // Python client is skipped.
    #[arg(long, value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    python: Option<PathBuf>,
    /// C compiler for the C client; "" skips it.
    #[arg(long, default_value = "cc")]
    cc: String,
    /// Segment of the memory-provider process.
    #[arg(long, default_value = "256MB")]
    segment_size: String,
    /// Passes of the whole sequence (in process, then each client
    /// process); with more than one, each figure is the median over the
    /// passes and each ratio the median of the ratios within a pass, so
    /// that the machine's drift between the baseline and a client cancels.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The hidden `small-ops-client` command: a client process of `small-ops`
/// (configuration from `$MMC_LOCAL_CONFIG_PATH`).
#[derive(Args, Debug)]
pub struct ClientArgs {
    #[arg(long, default_value_t = 0.3)]
    round_s: f64,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

impl Rounds {
    fn checked(round_s: f64, rounds: usize) -> Result<Rounds, String> {
        if !(round_s > 0.0 && round_s.is_finite()) {
            return Err("--round-s: must be a positive number of seconds".into());
        }
        if rounds == 0 {
            return Err("--rounds: must be at least 1".into());
        }
        Ok(Rounds { round_s, rounds })
    }

    fn args(&self) -> [String; 4] {
        [
            "--round-s".into(),
            self.round_s.to_string(),
            "--rounds".into(),
            self.rounds.to_string(),
        ]
    }
}

pub fn client_main(a: ClientArgs) -> Result<(), String> {
    let r = Rounds::checked(a.round_s, a.rounds)?;
    let file = mmc_config::ConfigFile::load_or_env(None, mmc_config::LOCAL_CONFIG_ENV).map_err(|e| e.to_string())?;
    let mut cfg = file.local;
    cfg.dram_size = ByteSize(0);
    let store = BlockingObjectStore::connect(cfg).map_err(|e| format!("cannot connect: {e}"))?;
    let f = measure(&store, &format!("rust-{}", std::process::id()), r)?;
    store.close();
    let line = ClientLine {
        client: "rust".into(),
        figures: f,
    };
    println!("{}", serde_json::to_string(&line).map_err(|e| e.to_string())?);
    Ok(())
}

/// A MetaService child process (`mmc meta`) on a free loopback port.
struct MetaProcess {
    child: Child,
    addr: String,
}

impl MetaProcess {
    fn spawn(token_file: &Path, log: &Path) -> Result<MetaProcess, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = cluster::mmc_command(None)?;
        cmd.arg("meta")
            .arg("--listen")
            .arg(&addr)
            .arg("--http")
            .arg("")
            .arg("--token-file")
            .arg(token_file)
            .arg("--spin-wait-us")
            .arg(cluster::meta_spin_us().to_string())
            .env_remove(mmc_config::META_CONFIG_ENV)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(log)?);
        cluster::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("cannot start mmc meta: {e}"))?;
        let mut m = MetaProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&m.addr).is_err() {
            if let Ok(Some(st)) = m.child.try_wait() {
                return Err(format!("mmc meta exited early ({st}); see {}", log.display()));
            }
            if Instant::now() > deadline {
                return Err(format!("mmc meta does not listen on {} after 20 s", m.addr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(m)
    }
}

impl Drop for MetaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// The repository root (where the C and Python clients live), from this
/// binary's place in `target/<profile>/`.
fn repo_root() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|d| d.join("crates/mmc-capi/bench/small_ops.c").is_file())
        .map(Path::to_path_buf)
}

/// Runs one client process (its stdout's last JSON line is the result).
fn run_client(label: &str, mut cmd: Command, config: &Path, log: &Path) -> Result<Figures, String> {
    cmd.env(mmc_config::LOCAL_CONFIG_ENV, config)
        .env_remove(mmc_config::TOKEN_FILE_ENV)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(log)?);
    cluster::die_with_parent(&mut cmd);
    let out = cmd
        .spawn()
        .and_then(|c| c.wait_with_output())
        .map_err(|e| format!("cannot run the {label} client: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the {label} client failed ({}); see {}",
            out.status,
            log.display()
        ));
    }
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("the {label} client printed no result; see {}", log.display()))?;
    let parsed: ClientLine =
        serde_json::from_str(line).map_err(|e| format!("the {label} client's result `{line}`: {e}"))?;
    Ok(parsed.figures)
}

/// Compiles the C client against the C library beside this binary.
fn build_c_client(cc: &str, root: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let lib_dir = exe.parent().ok_or("the binary has no directory")?;
    if !lib_dir.join("libmemcache.so").is_file() {
        return Err(format!(
            "{} has no libmemcache.so (build it: cargo build --release -p mmc-capi)",
            lib_dir.display()
        ));
    }
    let bin = out_dir.join("small_ops_c");
    let st = Command::new(cc)
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(root.join("crates/mmc-capi/bench/small_ops.c"))
        .arg("-I")
        .arg(root.join("include"))
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lmemcache")
        .status()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !st.success() {
        return Err(format!("{cc} failed to compile the C client ({st})"));
    }
    Ok(bin)
}

pub fn run(a: SmallOpsArgs) -> Result<(), String> {
    let r = Rounds::checked(a.round_s, a.rounds)?;
    if a.repeat == 0 {
        return Err("--repeat: must be at least 1".into());
    }
    let segment = mmc_config::parse_size(&a.segment_size).map_err(|e| format!("--segment-size: {e}"))?;
    let dir = std::env::temp_dir().join(format!("mmc-bench-small-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let root = repo_root();

    let mut passes = Vec::with_capacity(a.repeat);
    let mut failed = None;
    for n in 1..=a.repeat {
        if a.repeat > 1 {
            eprintln!("== pass {n} of {}", a.repeat);
        }
        let pass = one_pass(&a, r, segment, &dir, root.as_deref())?;
        failed = pass
            .columns
            .iter()
            .find_map(|c| c.figures.as_ref().err().filter(|e| !e.starts_with("skipped")))
            .cloned();
        passes.push(pass);
        if failed.is_some() {
            break;
        }
    }
    println!("{}", table::render(&passes, r));
    if let Some(path) = &a.json {
        let doc = serde_json::to_string_pretty(&table::json(&passes)).map_err(|e| e.to_string())?;
        std::fs::write(path, doc + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    failed.map_or(Ok(()), Err)
}

/// One pass: the in-process baseline, then each client process against a
/// MetaService process and a memory-provider process started for it.
fn one_pass(a: &SmallOpsArgs, r: Rounds, segment: u64, dir: &Path, root: Option<&Path>) -> Result<Pass, String> {
    eprintln!("== in process: MetaService and client in this process, provider child");
    let inproc = {
        let c = Cluster::start(segment)?;
        let store = c.client(Protocol::Auto)?;
        let f = measure(&store, "inproc", r);
        store.close();
        f?
    };

    eprintln!("== separate processes: mmc meta, mmc local, one client process at a time");
    let token = mmc_wire::auth::generate_token().map_err(|e| format!("cannot make a cluster token: {e}"))?;
    let token_file = dir.join("token");
    cluster::write_private(&token_file, &token)?;
    let meta = MetaProcess::spawn(&token_file, &dir.join("meta.log"))?;
    let _provider = Provider::spawn_in(None, &meta.addr, segment, None, Some(&token_file))?;
    let config = dir.join("client.toml");
    std::fs::write(
        &config,
        format!(
            "[local]\nmeta_addr = \"{}\"\nlog_level = \"warn\"\nspin_wait_us = {}\n\n[local.security]\ntoken_file = \"{}\"\n",
            meta.addr,
            cluster::local_spin_us(),
            token_file.display()
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;

    let mut columns = Vec::new();
    let mut rust = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    rust.arg("small-ops-client").args(r.args());
    columns.push(Column {
        label: "Rust",
        figures: run_client("Rust", rust, &config, &dir.join("client-rust.log")),
    });
    let c_figures = match (a.cc.is_empty(), root) {
        (true, _) => Err("skipped (--cc \"\")".into()),
        (false, None) => Err("skipped: crates/mmc-capi/bench/small_ops.c not found above this binary".into()),
        (false, Some(root)) => build_c_client(&a.cc, root, dir).and_then(|bin| {
            let mut c = Command::new(bin);
            c.args(r.args());
            run_client("C", c, &config, &dir.join("client-c.log"))
        }),
    };
    columns.push(Column {
        label: "C",
        figures: c_figures,
    });
    let py_figures = python_client(a.python.as_deref(), root).and_then(|(p, script)| {
        let mut c = Command::new(p);
        c.arg(script).args(r.args());
        run_client("Python", c, &config, &dir.join("client-python.log"))
    });
    columns.push(Column {
        label: "Python",
        figures: py_figures,
    });
    drop(meta);
    Ok(Pass { inproc, columns })
}

/// The Python interpreter and script of the Python client, or why it is
/// skipped: `--python ""`, or no interpreter (the flag's, else the
/// repository's `.venv/bin/python`) or no repository script to run.
fn python_client(flag: Option<&Path>, root: Option<&Path>) -> Result<(PathBuf, PathBuf), String> {
    if flag.is_some_and(|p| p.as_os_str().is_empty()) {
        return Err("skipped (--python \"\")".into());
    }
    let python = flag
        .map(Path::to_path_buf)
        .or_else(|| root.map(|r| r.join(".venv/bin/python")));
    match (python, root) {
        (Some(p), Some(root)) if p.exists() => Ok((p, root.join("crates/mmc-python/bench/small_ops.py"))),
        _ => Err("skipped: no Python with memcache_rs (.venv/bin/python, or --python)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        a: SmallOpsArgs,
    }

    #[test]
    fn an_empty_python_flag_parses_and_skips_the_python_client() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["small-ops", "--python", ""]).expect("--python \"\" parses");
        let root = std::env::temp_dir();
        let e = python_client(cli.a.python.as_deref(), Some(&root)).unwrap_err();
        assert_eq!(e, "skipped (--python \"\")");
    }

    #[test]
    fn the_python_client_needs_an_interpreter_and_the_repository_script() {
        let root = std::env::temp_dir().join(format!("mmc-small-ops-root-{}", std::process::id()));
        let missing = root.join(".venv/bin/python");
        assert!(python_client(None, Some(&root)).unwrap_err().contains("no Python"));
        assert!(python_client(Some(&missing), Some(&root))
            .unwrap_err()
            .contains("no Python"));
        let here = std::env::current_exe().unwrap();
        assert!(python_client(Some(&here), None).unwrap_err().contains("no Python"));
        let (p, script) = python_client(Some(&here), Some(&root)).unwrap();
        assert_eq!(p, here);
        assert_eq!(script, root.join("crates/mmc-python/bench/small_ops.py"));
    }

    #[test]
    fn the_median_round_is_reported() {
        let mut n = 0;
        let us = timed(
            Rounds {
                round_s: 0.001,
                rounds: 3,
            },
            |_| {
                n += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(us > 0.0 && us < 1000.0, "{us}");
        assert!(
            n >= 4 * 16,
            "a warm-up round and three timed rounds of at least 16 calls: {n}"
        );
    }

    #[test]
    fn a_failing_call_stops_the_measurement_with_its_message() {
        let e = timed(
            Rounds {
                round_s: 0.001,
                rounds: 3,
            },
            |i| if i == 5 { Err("call 5 failed".into()) } else { Ok(()) },
        )
        .unwrap_err();
        assert_eq!(e, "call 5 failed");
    }

    #[test]
    fn values_carry_their_index() {
        let v = value_of(300);
        assert_eq!(v.len(), VALUE);
        assert_eq!(u64::from_le_bytes(v[..8].try_into().unwrap()), 300);
        assert!(v[8..].iter().all(|&b| b == 300u16 as u8));
    }

    #[test]
    fn bad_round_arguments_name_the_flag() {
        assert!(Rounds::checked(0.0, 5).unwrap_err().contains("--round-s"));
        assert!(Rounds::checked(f64::NAN, 5).unwrap_err().contains("--round-s"));
        assert!(Rounds::checked(0.1, 0).unwrap_err().contains("--rounds"));
    }
}
