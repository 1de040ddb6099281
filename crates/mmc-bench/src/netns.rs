//! Two simulated hosts for the cross-host workloads: network namespaces
//! `A` and `B` joined by a veth pair (10.R.S.1 in A, 10.R.S.2 in B).
//!
//! They are removed when the [`Pair`] is dropped (on error and panic too).
//! Should the bench be killed outright, a small guard process (its own
//! session, so Ctrl-C does not reach it) notices that the bench is gone and
//! removes them.

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

/// Prefix of every namespace the bench creates (`mmcb<pid>a`, `mmcb<pid>b`).
const PREFIX: &str = "mmcb";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e} (iproute2 is needed for the cross-host workloads)"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {} failed: {} (the cross-host workloads need root and iproute2)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Runs `f` on a new thread that has joined network namespace `name`:
/// sockets it creates live in that namespace.
pub fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let path = format!("/var/run/netns/{name}");
    let file = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    std::thread::Builder::new()
        .name("bench-netns".into())
        .spawn(move || {
            // SAFETY: setns on a namespace fd we own; it changes only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        })
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "netns thread panicked".to_string())?
}

pub struct Pair {
    pub a: String,
    pub b: String,
    pub ip_a: String,
    pub ip_b: String,
    guard: Option<Child>,
}

/// Removes namespaces of earlier bench runs whose process is gone.
fn remove_stale() {
    let Ok(dir) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(['a', 'b']))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

impl Pair {
    pub fn create() -> Result<Pair, String> {
        remove_stale();
        let pid = std::process::id();
        let a = format!("{PREFIX}{pid}a");
        let b = format!("{PREFIX}{pid}b");
        // 10.(200 + pid/250 % 50).(pid % 250): unlikely to collide with a concurrent run.
        let net = format!("10.{}.{}", 200 + (pid / 250) % 50, pid % 250);
        let (ip_a, ip_b) = (format!("{net}.1"), format!("{net}.2"));
        let mut p = Pair {
            a: a.clone(),
            b: b.clone(),
            ip_a: ip_a.clone(),
            ip_b: ip_b.clone(),
            guard: None,
        };
        ip(&["netns", "add", &a])?;
        // From here on, dropping `p` removes what exists.
        ip(&["netns", "add", &b])?;
        p.guard = spawn_guard(pid, &a, &b);
        let (va, vb) = (format!("mmcb{pid}x"), format!("mmcb{pid}y"));
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        if let Err(e) = ip(&["link", "set", &va, "netns", &a]).and_then(|_| ip(&["link", "set", &vb, "netns", &b])) {
            let _ = ip(&["link", "del", &va]);
            return Err(e);
        }
        for (ns, dev, addr) in [(&a, &va, &ip_a), (&b, &vb, &ip_b)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(p)
    }

    pub fn describe(&self) -> String {
        format!(
            "network namespaces {} ({}) and {} ({}) joined by a veth pair",
            self.a, self.ip_a, self.b, self.ip_b
        )
    }
}

/// A process in its own session that deletes the namespaces once `pid`
/// has exited (it is killed by the normal cleanup first).
fn spawn_guard(pid: u32, a: &str, b: &str) -> Option<Child> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; ip netns del {a} 2>/dev/null; ip netns del {b} 2>/dev/null"
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; it detaches the guard from our
    // terminal's process group so that Ctrl-C does not stop it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().ok()
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace also deletes the veth end inside it (and so
        // the pair).
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
        if let Some(mut g) = self.guard.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
    }
}
