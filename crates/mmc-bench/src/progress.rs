//! Progress of a bench run: an `indicatif` bar on a terminal (one step per
//! measurement phase, with the elapsed time and an estimate of what is
//! left), plain `mmc bench: ...` lines on stderr otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);
static START: OnceLock<Instant> = OnceLock::new();

fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Starts the bar with `steps` planned steps (a bar only on a terminal).
pub fn start(steps: u64) {
    elapsed();
    if !std::io::stderr().is_terminal() {
        return;
    }
    let pb = ProgressBar::with_draw_target(Some(steps.max(1)), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} (eta {eta}) {wide_msg}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(pb);
}

/// One step done; `msg` says what runs next.
pub fn step(msg: &str) {
    match BAR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(pb) => {
            if pb.position() + 1 >= pb.length().unwrap_or(0) {
                pb.inc_length(1);
            }
            pb.inc(1);
            pb.set_message(msg.to_owned());
        }
        None => eprintln!("mmc bench [{:6.1} s]: {msg}", elapsed()),
    }
}

/// A line that should stay visible (warnings).
pub fn note(msg: &str) {
    match BAR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(pb) => pb.println(format!("mmc bench: {msg}")),
        None => eprintln!("mmc bench: {msg}"),
    }
}

pub fn finish() {
    if let Some(pb) = BAR.lock().unwrap_or_else(|e| e.into_inner()).take() {
        pb.finish_and_clear();
    }
}
