//! Logs of `mmc meta` written to a file: no ANSI colour codes, one JSON
//! object per line with `log_format = "json"`, and an audit line for every
//! membership change (join, leave, declared dead).

mod common;

use common::{Cluster, Opts};
use mmc_local::Protocol;
use std::time::{Duration, Instant};

fn meta_log(c: &Cluster) -> String {
    std::fs::read_to_string(c.dir.join("meta.log")).unwrap_or_default()
}

/// Waits until the MetaService's log satisfies `pred`; returns the log.
fn wait_log(c: &Cluster, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = meta_log(c);
        if pred(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {what} in the meta log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn audit_lines<'a>(log: &'a str, event: &str) -> Vec<&'a str> {
    let text = format!("event=\"{event}\"");
    let json = format!("\"event\":\"{event}\"");
    log.lines()
        .filter(|l| l.contains("membership") && (l.contains(&text) || l.contains(&json)))
        .collect()
}

#[test]
fn text_log_file_has_no_ansi_codes_and_audits_membership() {
    let mut c = Cluster::start(Opts {
        locals: 2,
        ..Opts::default()
    });
    let log = wait_log(&c, "two join audit lines", |l| audit_lines(l, "join").len() >= 2);
    for line in audit_lines(&log, "join") {
        assert!(
            line.contains("INFO") && line.contains("host=") && line.contains("transfer="),
            "{line}"
        );
    }
    // A client that closes leaves.
    let client = c.client(Protocol::Tcp, 0);
    client.close();
    wait_log(&c, "a leave audit line", |l| !audit_lines(l, "leave").is_empty());
    // A provider killed is declared dead after the heartbeat timeout.
    c.kill_local(0);
    let log = wait_log(&c, "a dead audit line", |l| !audit_lines(l, "dead").is_empty());
    assert!(!log.contains('\x1b'), "ANSI escape codes in a log file:\n{log}");
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let c = Cluster::start(Opts {
        locals: 1,
        meta_extra: "log_format = \"json\"\n",
        local_extra: "log_format = \"json\"\n",
        ..Opts::default()
    });
    let log = wait_log(&c, "a join audit line", |l| !audit_lines(l, "join").is_empty());
    let mut n = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
        n += 1;
    }
    assert!(n > 0);
    let local = std::fs::read_to_string(c.dir.join("local0.log")).unwrap_or_default();
    for line in local.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}
