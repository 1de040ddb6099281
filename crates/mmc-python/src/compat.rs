//! Attributes of the original `memcache_hybrid` config objects that have no
//! effect here (config store, HCOM, HBM, thread pools, I/O aggregation,
//! UBS-IO, TLS options this TLS stack does not use): the macro that puts
//! them on `LocalConfig` / `MetaConfig` as plain readable and settable
//! attributes with the original's defaults, and the once-per-process
//! warnings about them.
//!
//! Such an attribute warns (on the ``memcache_rs`` logger, once per process
//! per attribute) when a config that sets it to something other than its
//! default is used (``setup``), and reads back what was set.

use parking_lot::Mutex;
use pyo3::prelude::*;
use std::collections::HashSet;

/// Logs `msg` as a warning on the `memcache_rs` logger, once per process
/// per `key`.
pub(crate) fn warn_once(py: Python<'_>, key: &str, msg: &str) {
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let first = SAID.lock().get_or_insert_with(HashSet::new).insert(key.to_owned());
    if first {
        crate::log_warning(py, msg);
    }
}

/// Logs what reading a config file had to say (keys of the original's
/// format without effect, protocol fallbacks), each message once.
pub(crate) fn warn_file(py: Python<'_>, warnings: &[String]) {
    for w in warnings {
        warn_once(py, w, w);
    }
}

/// Defines a config pyclass: `inner` (the TOML section it mirrors), plain
/// `extra` fields, and the original's attributes without effect here, each
/// with its default and the reason its warning gives. Generates `Default`,
/// `set_no_effect` (by name, for keyword construction) and `warn_no_effect`.
macro_rules! config_class {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $(#[$inner_attr:meta])*
            pub inner: $inner:ty,
            $( $(#[$extra_attr:meta])* $extra:ident: $extra_ty:ty = $extra_default:expr, )*
        }
        no_effect {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $ty:ty = $default:expr => $why:literal;
            )*
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $(#[$inner_attr])*
            pub inner: $inner,
            $( $(#[$extra_attr])* $extra: $extra_ty, )*
            $(
                $(#[doc = $doc])*
                #[pyo3(get, set)]
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    inner: Default::default(),
                    $( $extra: $extra_default, )*
                    $( $field: $default, )*
                }
            }
        }

        impl $name {
            /// Sets one of the attributes without effect by name; `None`
            /// when `name` is not one of them.
            fn set_no_effect(&mut self, name: &str, v: &Bound<'_, PyAny>) -> Option<PyResult<()>> {
                match name {
                    $( stringify!($field) => Some(v.extract::<$ty>().map(|x| self.$field = x).map_err(Into::into)), )*
                    _ => None,
                }
            }

            /// Warns (once per process per attribute) about each attribute
            /// without effect that is set to something other than its
            /// default.
            pub(crate) fn warn_no_effect(&self, py: Python<'_>) {
                let d = Self::default();
                $(
                    if self.$field != d.$field {
                        let key = concat!(stringify!($name), ".", stringify!($field));
                        crate::compat::warn_once(
                            py,
                            key,
                            &format!("{key} has no effect in memcache_rs: {}", $why),
                        );
                    }
                )*
            }

            /// Names and values of the attributes without effect that
            /// differ from their defaults (for `repr`).
            fn no_effect_changed(&self) -> Vec<String> {
                let d = Self::default();
                let mut out = Vec::new();
                $(
                    if self.$field != d.$field {
                        out.push(format!("{}={:?}", stringify!($field), self.$field));
                    }
                )*
                out
            }
        }
    };
}

pub(crate) use config_class;

/// A size the original accepts as a string (`"64GB"`) or an integer number
/// of bytes, for attributes without effect here: kept as the text given
/// (an integer as its decimal digits) and read back as a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeText(pub String);

impl From<&str> for SizeText {
    fn from(s: &str) -> Self {
        SizeText(s.to_owned())
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for SizeText {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.extract::<String>() {
            return Ok(SizeText(s));
        }
        match obj.extract::<u64>() {
            Ok(n) => Ok(SizeText(n.to_string())),
            Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(
                "a size is a string such as \"64GB\" or an integer number of bytes",
            )),
        }
    }
}

impl<'py> IntoPyObject<'py> for SizeText {
    type Target = pyo3::types::PyString;
    type Output = Bound<'py, pyo3::types::PyString>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(pyo3::types::PyString::new(py, &self.0))
    }
}
