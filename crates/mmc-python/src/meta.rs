//! `MetaService`: start a MetaService from Python.
//!
//! ``MetaService.setup(MetaConfig)`` records the configuration (without it
//! ``main`` reads the ``[meta]`` section of the file named by
//! ``MMC_META_CONFIG_PATH``, TOML or the original's ``ock.mmc.*`` format,
//! else the defaults); with ``log_path`` set the service logs to
//! ``<log_path>/logs/mmc-meta.log``, rotated by size; ``MetaService.main()`` binds
//! the ports and serves until SIGINT or SIGTERM (or ``MetaService.stop()``),
//! then shuts down cleanly and returns 0.
//!
//! Signals: on the main thread `main` installs Python handlers for SIGINT
//! and SIGTERM for its duration (restoring the previous ones after), and
//! wakes every 100 ms to let Python run them, so the interpreter's own
//! signal machinery is left intact. On another thread only `stop()` (or
//! the end of the process) ends it.

use crate::code;
use crate::config::MetaConfig;
use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyCFunction, PyDict, PyTuple};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;
use tokio::sync::watch;

static CONFIG: Mutex<Option<mmc_config::MetaConfig>> = Mutex::new(None);
/// The stop switch of the MetaService `main` is running, if any.
static RUNNING: Mutex<Option<watch::Sender<bool>>> = Mutex::new(None);

fn is_main_thread(py: Python<'_>) -> PyResult<bool> {
    let threading = py.import("threading")?;
    let current = threading.call_method0("current_thread")?;
    let main = threading.call_method0("main_thread")?;
    Ok(current.is(&main))
}

/// Python-level SIGINT / SIGTERM handlers that flip the stop switch; the
/// previous handlers are restored on drop.
struct SignalHandlers<'py> {
    py: Python<'py>,
    saved: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
}

impl<'py> SignalHandlers<'py> {
    fn install(py: Python<'py>, stop: watch::Sender<bool>) -> PyResult<Self> {
        let signal = py.import("signal")?;
        let handler = PyCFunction::new_closure(
            py,
            Some(c"memcache_rs_metaservice_stop"),
            None,
            move |_args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| {
                let _ = stop.send(true);
            },
        )?;
        let mut saved = Vec::new();
        for name in ["SIGINT", "SIGTERM"] {
            let num = signal.getattr(name)?;
            let old = signal.call_method1("signal", (&num, &handler))?;
            saved.push((num, old));
        }
        Ok(SignalHandlers { py, saved })
    }
}

impl Drop for SignalHandlers<'_> {
    fn drop(&mut self) {
        let Ok(signal) = self.py.import("signal") else {
            return;
        };
        for (num, old) in self.saved.drain(..) {
            // A handler installed from C reads back as None: restore the default.
            let old = if old.is_none() {
                signal.getattr("SIG_DFL").unwrap_or(old)
            } else {
                old
            };
            let _ = signal.call_method1("signal", (num, old));
        }
    }
}

/// Clears the running switch when `main` returns, however it returns.
struct RunningGuard;

impl Drop for RunningGuard {
    fn drop(&mut self) {
        RUNNING.lock().take();
    }
}

/// The MetaService of this process (static methods only).
#[pyclass(module = "memcache_rs", name = "MetaService", frozen)]
pub struct MetaService;

#[pymethods]
impl MetaService {
    /// Records the configuration ``main`` uses. Returns 0, or INVALID_PARAM
    /// (-3000) when it is invalid (the reason is logged on the
    /// ``memcache_rs`` logger). Attributes of the original that have no
    /// effect here, when set, are logged once per process.
    #[staticmethod]
    fn setup(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<i32> {
        let cfg = match config.cast::<MetaConfig>() {
            Ok(c) => {
                let c = c.borrow();
                c.warn_no_effect(py);
                c.inner.clone()
            }
            Err(_) => return Err(PyTypeError::new_err("MetaService.setup() takes a MetaConfig")),
        };
        if let Err(e) = cfg.validate() {
            crate::log_error(py, &format!("MetaService.setup: {e}"));
            return Ok(code::INVALID_PARAM);
        }
        *CONFIG.lock() = Some(cfg);
        Ok(code::OK)
    }

    /// Runs the MetaService: binds its ports and serves until SIGINT or
    /// SIGTERM (or ``MetaService.stop()``), then shuts down and returns 0.
    /// Returns a negative code when it cannot start (INVALID_PARAM for a bad
    /// config, ERROR when a port cannot be bound or one is already running
    /// in this process).
    #[staticmethod]
    fn main(py: Python<'_>) -> PyResult<i32> {
        let cfg = match CONFIG.lock().clone() {
            Some(c) => c,
            None => match mmc_config::ConfigFile::load_or_env(None, mmc_config::META_CONFIG_ENV) {
                Ok(f) => {
                    crate::compat::warn_file(py, &f.warnings);
                    f.meta
                }
                Err(e) => {
                    crate::log_error(py, &format!("MetaService.main: {e}"));
                    return Ok(code::INVALID_PARAM);
                }
            },
        };
        if let Err(e) = cfg.validate() {
            crate::log_error(py, &format!("MetaService.main: {e}"));
            return Ok(code::INVALID_PARAM);
        }
        if let Err(e) = crate::init_logging(&cfg.log_level, cfg.log_format, &crate::LogTarget::meta(&cfg)) {
            crate::log_error(py, &format!("MetaService.main: {e}"));
            return Ok(code::INVALID_PARAM);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        {
            let mut r = RUNNING.lock();
            if r.is_some() {
                crate::log_error(py, "MetaService.main: a MetaService is already running in this process");
                return Ok(code::ERROR);
            }
            *r = Some(stop_tx.clone());
        }
        let _running = RunningGuard;
        // Handlers go in before the ports are bound: a signal sent as soon as
        // the port answers must already stop the service cleanly.
        let handlers = if is_main_thread(py)? {
            Some(SignalHandlers::install(py, stop_tx.clone())?)
        } else {
            None
        };
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mmc-meta")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                crate::log_error(py, &format!("MetaService.main: cannot start a runtime: {e}"));
                return Ok(code::ERROR);
            }
        };
        let rt_ref = &rt;
        let bound = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| rt_ref.block_on(mmc_meta::MetaService::bind(&cfg))))
                .unwrap_or_else(|_| Err("panic while binding".into()))
        });
        let svc = match bound {
            Ok(s) => s,
            Err(e) => {
                crate::log_error(py, &format!("MetaService.main: {e}"));
                return Ok(code::ERROR);
            }
        };
        crate::log_info(
            py,
            &format!(
                "metaservice listening on {}{}",
                svc.local_addr(),
                svc.http_addr().map(|h| format!(" (http {h})")).unwrap_or_default()
            ),
        );
        let mut rx = stop_rx;
        let mut task = rt.spawn(svc.run(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }));
        let mut interrupted: Option<PyErr> = None;
        let result = loop {
            let task_ref = &mut task;
            let polled = py.detach(|| {
                catch_unwind(AssertUnwindSafe(|| {
                    rt_ref.block_on(async { tokio::time::timeout(Duration::from_millis(100), task_ref).await })
                }))
            });
            match polled {
                Ok(Ok(joined)) => break joined,
                Ok(Err(_elapsed)) => {}
                Err(_) => {
                    let _ = stop_tx.send(true);
                    break Ok(Err(std::io::Error::other("panic in the metaservice")));
                }
            }
            // Runs Python signal handlers (ours flip the stop switch); another
            // handler raising (KeyboardInterrupt from a custom one) stops too.
            if let Err(e) = py.check_signals() {
                let _ = stop_tx.send(true);
                interrupted.get_or_insert(e);
            }
        };
        drop(handlers);
        py.detach(move || rt.shutdown_timeout(Duration::from_secs(2)));
        crate::log_info(py, "metaservice stopped");
        if let Some(e) = interrupted {
            return Err(e);
        }
        Ok(match result {
            Ok(Ok(())) => code::OK,
            Ok(Err(e)) => {
                crate::log_error(py, &format!("MetaService.main: {e}"));
                code::ERROR
            }
            Err(e) => {
                crate::log_error(py, &format!("MetaService.main: {e}"));
                code::ERROR
            }
        })
    }

    /// Asks the running ``main`` to shut down. Returns 0, or NOT_STARTED
    /// (-3003) when no MetaService is running in this process.
    #[staticmethod]
    fn stop() -> i32 {
        match RUNNING.lock().as_ref() {
            Some(tx) => {
                let _ = tx.send(true);
                code::OK
            }
            None => code::NOT_STARTED,
        }
    }
}
