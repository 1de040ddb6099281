//! Process-wide state behind the C API: the configuration given to
//! `mmc_setup`, the client started by `mmc_init`, the logger, the
//! per-thread last error message, and the panic guard every export runs in.

use mmc_config::LocalConfig;
use mmc_local::BlockingObjectStore;
use mmc_wire::error::code;
use mmc_wire::{Error, ErrorKind, Result};
use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Registry};

pub(crate) struct Global {
    /// Set by `mmc_setup`; kept across `mmc_uninit` so `mmc_init` may run again.
    pub config: Option<LocalConfig>,
    /// Set by `mmc_init`, taken by `mmc_uninit`.
    pub client: Option<BlockingObjectStore>,
    /// Whether `mmc_setup` was ever called (successfully or not): only a
    /// program that never calls it gets `$MMC_LOCAL_CONFIG_PATH` read by
    /// `mmc_init`.
    pub setup_called: bool,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    config: None,
    client: None,
    setup_called: false,
});

/// The global state. A panic while it was held (which the guard turned into
/// an error code) does not make it unusable.
pub(crate) fn lock() -> MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running client, or `NotInitialized` before `mmc_init` / after
/// `mmc_uninit`. The clone shares the client, so the lock is not held while
/// the operation runs.
pub(crate) fn client() -> Result<BlockingObjectStore> {
    lock().client.clone().ok_or(Error::from(ErrorKind::NotInitialized))
}

// ---- logging --------------------------------------------------------------

type LevelHandle = reload::Handle<LevelFilter, Registry>;

static LOGGER: OnceLock<Option<LevelHandle>> = OnceLock::new();

/// Parses a log level name: `off`, `error`, `warn`, `info`, `debug`, `trace`.
pub(crate) fn parse_level(level: &str) -> Result<LevelFilter> {
    match level.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(LevelFilter::OFF),
        "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err(Error::invalid(format!(
            "log level `{level}` is not one of off, error, warn, info, debug, trace"
        ))),
    }
}

/// Installs the stderr logger on first use (unless the process already has
/// a global subscriber) and sets its level.
pub(crate) fn set_log_level(level: LevelFilter) {
    let handle = LOGGER.get_or_init(|| {
        use std::io::IsTerminal;
        let (filter, handle) = reload::Layer::new(level);
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init()
            .ok()
            .map(|_| handle)
    });
    if let Some(h) = handle {
        let _ = h.reload(level);
    }
}

// ---- last error -----------------------------------------------------------

/// Capacity of the per-thread message buffer, NUL included.
const LAST_ERROR_CAP: usize = 1024;

thread_local! {
    /// A fixed buffer, so the pointer `mmc_last_error` hands out stays valid
    /// for the life of the thread (only its contents change).
    static LAST_ERROR: RefCell<[u8; LAST_ERROR_CAP]> = const { RefCell::new([0; LAST_ERROR_CAP]) };
}

/// Stores `msg` (truncated at a character boundary, NULs replaced) as this
/// thread's last error message.
pub(crate) fn set_last_error(msg: &str) {
    let _ = LAST_ERROR.try_with(|e| {
        let Ok(mut buf) = e.try_borrow_mut() else {
            return;
        };
        let mut n = 0;
        for ch in msg.chars() {
            let ch = if ch == '\0' { ' ' } else { ch };
            let w = ch.len_utf8();
            if n + w >= LAST_ERROR_CAP {
                break;
            }
            ch.encode_utf8(&mut buf[n..n + w]);
            n += w;
        }
        buf[n] = 0;
    });
}

/// Pointer to this thread's last error message (NUL-terminated, never NULL).
pub(crate) fn last_error_ptr() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    LAST_ERROR
        .try_with(|e| e.as_ptr() as *const c_char)
        .unwrap_or(EMPTY.as_ptr() as *const c_char)
}

// ---- the guard around every export ----------------------------------------

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Runs the body of exported function `name`: a panic becomes `MMC_ERROR`,
/// an `Err` its result code; both leave a message for `mmc_last_error`.
/// `Ok(code)` is returned as is (per-key failures of a batch set the
/// message themselves through [`note_key_errors`]).
pub(crate) fn guard(name: &str, f: impl FnOnce() -> Result<i32>) -> i32 {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            set_last_error(&format!("{name}: {e}"));
            tracing::debug!(call = name, code = e.code(), error = %e, "call failed");
            e.code()
        }
        Err(p) => {
            let msg = format!("{name}: internal error (panic): {}", panic_message(p.as_ref()));
            set_last_error(&msg);
            tracing::error!("{msg}");
            code::ERROR
        }
    }
}

/// Records the first failing key of a batch as the last error message.
pub(crate) fn note_key_errors<T>(name: &str, results: &[Result<T>]) {
    if let Some((i, Err(e))) = results.iter().enumerate().find(|(_, r)| r.is_err()) {
        let failed = results.iter().filter(|r| r.is_err()).count();
        set_last_error(&format!(
            "{name}: {failed} of {} keys failed; key {i}: {e}",
            results.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's last error message, copied out.
    fn last_error() -> String {
        // SAFETY: `last_error_ptr` is never NULL and points to this thread's
        // NUL-terminated message buffer, which lives as long as the thread;
        // the text is copied before anything else can change it.
        let msg = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        msg.to_str().unwrap().to_owned()
    }

    #[test]
    fn guard_turns_panics_and_errors_into_codes() {
        assert_eq!(guard("t", || Ok(7)), 7);
        assert_eq!(
            guard("t", || Err(Error::from(ErrorKind::UnmatchedKey))),
            code::UNMATCHED_KEY
        );
        let msg = last_error();
        assert!(msg.contains("key not found"), "{msg}");
        assert_eq!(guard("t", || panic!("boom {}", 1)), code::ERROR);
        let msg = last_error();
        assert!(msg.contains("panic") && msg.contains("boom 1"), "{msg}");
        assert_eq!(guard("t", || Ok(0)), 0);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn last_error_is_truncated_at_a_char_boundary() {
        let p = last_error_ptr();
        set_last_error(&"é".repeat(2000));
        let msg = last_error();
        assert_eq!(msg.len(), LAST_ERROR_CAP - 2);
        set_last_error("a\0b");
        assert_eq!(last_error(), "a b");
        assert_eq!(p, last_error_ptr()); // the pointer never changes
    }

    #[test]
    fn poisoned_state_stays_usable() {
        let r = std::thread::spawn(|| {
            let _g = lock();
            panic!("poison");
        })
        .join();
        assert!(r.is_err());
        drop(lock());
    }

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("WARN").unwrap(), LevelFilter::WARN);
        assert_eq!(parse_level("off").unwrap(), LevelFilter::OFF);
        assert!(parse_level("loud").is_err());
    }
}
