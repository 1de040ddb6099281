//! `mmc up`: the single-node cluster honours its config file's [meta] and
//! [local] sections, explicit flags override the file, and the hint it
//! prints names the running binary and the MetaService address.

mod common;

use common::{free_port, MMC};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An `mmc up` child, killed (by PID) when dropped.
struct Up {
    child: Child,
    /// Lines printed on stdout up to and including the hint.
    banner: Vec<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_up(config: &std::path::Path, extra: &[&str], log: &std::path::Path) -> Up {
    let mut child = Command::new(MMC)
        .args(["up", "--config"])
        .arg(config)
        .args(extra)
        .env_remove("MMC_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn mmc up");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = Vec::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "mmc up exited before its banner: {banner:?}; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        let hint = line.starts_with("try:");
        banner.push(line.trim_end().to_owned());
        if hint {
            break;
        }
    }
    Up { child, banner }
}

fn stat(meta: &str) -> String {
    let out = Command::new(MMC)
        .args(["stat", "--meta", meta])
        .output()
        .expect("run mmc stat");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn up_honours_the_config_files_local_section_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("mmc-up-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let meta = format!("127.0.0.1:{}", free_port());
    let config = dir.join("up.toml");
    std::fs::write(
        &config,
        format!(
            "[meta]\nlisten = \"{meta}\"\nhttp_listen = \"\"\nlog_level = \"warn\"\n\n[local]\ndram_size = \"64MB\"\nlog_level = \"warn\"\nheartbeat_interval_ms = 200\n"
        ),
    )
    .unwrap();
    let log = dir.join("up.log");
    {
        let up = start_up(&config, &[], &log);
        let text = up.banner.join("\n");
        assert!(text.contains("64MB segment"), "{text}");
        let hint = up.banner.last().unwrap();
        assert!(hint.contains(MMC), "hint does not name the binary {MMC}: {hint}");
        assert!(hint.contains(&format!("--meta {meta}")), "{hint}");
        let st = stat(&meta);
        assert!(
            st.contains(&format!("total capacity {} bytes", 64u64 << 20)),
            "capacity is not the file's 64MB:\n{st}"
        );
        // Objects are immutable: a second put exits 0, keeps the first
        // value and says so on stderr.
        let put = |v: &str| {
            let mut c = Command::new(MMC)
                .args(["put", "--meta", &meta, "k", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut c.stdin.take().unwrap(), v.as_bytes()).unwrap();
            c.wait_with_output().unwrap()
        };
        let first = put("one");
        assert!(first.status.success() && first.stderr.is_empty(), "{first:?}");
        let second = put("two");
        assert!(second.status.success(), "{second:?}");
        let note = String::from_utf8_lossy(&second.stderr);
        assert!(note.contains("already existed") && note.contains("immutable"), "{note}");
        let got = Command::new(MMC).args(["get", "--meta", &meta, "k"]).output().unwrap();
        assert_eq!(got.stdout, b"one");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Both sections say warn: nothing was logged at INFO.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("INFO"), "info lines logged at warn level:\n{logged}");
    assert!(!logged.contains('\x1b'), "ANSI codes in a log file:\n{logged}");

    // An explicit flag still wins over the file.
    let up = start_up(&config, &["--dram-size", "32MB"], &log);
    assert!(up.banner.join("\n").contains("32MB segment"), "{:?}", up.banner);
    let st = stat(&meta);
    assert!(st.contains(&format!("total capacity {} bytes", 32u64 << 20)), "{st}");
    drop(up);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_help_says_what_it_starts() {
    let out = Command::new(MMC).args(["up", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("MetaService") && help.contains("LocalService"), "{help}");
    assert!(help.contains("[local]"), "{help}");
    for cmd in ["put", "get", "rm"] {
        let out = Command::new(MMC).args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Key to"), "{cmd} --help has no KEY description: {help}");
    }
}
