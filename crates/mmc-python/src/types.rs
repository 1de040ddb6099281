//! `ReplicateConfig` and `KeyInfo`.

use mmc_local::{Medium, PutOptions};
use pyo3::prelude::*;
use pyo3::types::PyAny;

/// Replica policy of a put.
///
/// ``ReplicateConfig(replicaNum=1, preferredLocalServiceIDs=[])``.
/// ``replicaNum`` is the number of replicas (1..=8), each stored on a
/// different LocalService. ``preferredLocalServiceIDs`` lists service ids
/// to place replicas on first (at most ``replicaNum`` distinct ids; negative
/// entries mean "unset" and are ignored). Values are checked when the config
/// is used: an invalid one makes the put return INVALID_PARAM (-3000).
#[pyclass(module = "memcache_rs", name = "ReplicateConfig")]
#[derive(Clone, Debug)]
pub struct ReplicateConfig {
    /// Number of replicas, 1..=8 (default 1).
    #[pyo3(get, set, name = "replicaNum")]
    pub replica_num: i64,
    /// Service ids to place replicas on first.
    #[pyo3(get, set, name = "preferredLocalServiceIDs")]
    pub preferred: Vec<i64>,
}

impl Default for ReplicateConfig {
    fn default() -> Self {
        ReplicateConfig {
            replica_num: 1,
            preferred: Vec::new(),
        }
    }
}

impl ReplicateConfig {
    /// The put options, or `None` when the values are invalid.
    pub fn options(&self) -> Option<PutOptions> {
        if !(1..=mmc_wire::MAX_REPLICAS as i64).contains(&self.replica_num) {
            return None;
        }
        let mut preferred: Vec<u32> = Vec::new();
        for &id in &self.preferred {
            if id < 0 {
                continue;
            }
            let id = u32::try_from(id).ok()?;
            if preferred.contains(&id) {
                return None;
            }
            preferred.push(id);
        }
        if preferred.len() as i64 > self.replica_num {
            return None;
        }
        Some(PutOptions {
            replicas: self.replica_num as u32,
            preferred,
        })
    }

    /// Parses an optional `replicateConfig` argument: `None` / omitted gives
    /// the defaults, anything but a `ReplicateConfig` is a `TypeError`.
    /// The inner `None` means invalid values.
    pub fn from_arg(arg: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PutOptions>> {
        match arg {
            None => Ok(Some(PutOptions::default())),
            Some(a) if a.is_none() => Ok(Some(PutOptions::default())),
            Some(a) => match a.cast::<ReplicateConfig>() {
                Ok(c) => Ok(c.borrow().options()),
                Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "replicateConfig must be ReplicateConfig, not {}",
                    a.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                ))),
            },
        }
    }
}

#[pymethods]
impl ReplicateConfig {
    #[new]
    #[pyo3(signature = (replicaNum = 1, preferredLocalServiceIDs = None))]
    #[allow(non_snake_case)]
    fn py_new(replicaNum: i64, preferredLocalServiceIDs: Option<Vec<i64>>) -> Self {
        ReplicateConfig {
            replica_num: replicaNum,
            preferred: preferredLocalServiceIDs.unwrap_or_default(),
        }
    }

    /// Alias of ``replicaNum`` (the Mooncake spelling).
    #[getter]
    fn get_replica_num(&self) -> i64 {
        self.replica_num
    }

    #[setter]
    fn set_replica_num(&mut self, v: i64) {
        self.replica_num = v;
    }

    fn __repr__(&self) -> String {
        format!(
            "ReplicateConfig(replicaNum={}, preferredLocalServiceIDs={:?})",
            self.replica_num, self.preferred
        )
    }
}

/// Where an object is stored: its size and, for each replica, the service
/// id (rank) of the LocalService holding it and the medium (0 = DRAM,
/// 1 = HBM, 2 = SSD). An absent key gives size 0 and empty lists.
#[pyclass(module = "memcache_rs", name = "KeyInfo", frozen)]
#[derive(Clone, Debug, Default)]
pub struct KeyInfo {
    size: u64,
    locs: Vec<u32>,
    types: Vec<u32>,
    gvas: Vec<u64>,
}

impl KeyInfo {
    /// From the MetaService's record and the replicas' pool addresses.
    pub fn from_info(info: &mmc_local::KeyInfo, gvas: Vec<u64>) -> Self {
        KeyInfo {
            size: info.size,
            locs: info.replicas.iter().map(|r| r.0).collect(),
            types: info.replicas.iter().map(|r| u32::from(r.1.as_u8())).collect(),
            gvas,
        }
    }
}

fn medium_name(t: u32) -> &'static str {
    Medium::ALL
        .iter()
        .find(|m| u32::from(m.as_u8()) == t)
        .map(|m| m.name())
        .unwrap_or("unknown")
}

#[pymethods]
impl KeyInfo {
    /// Object size in bytes (0 when the key is absent).
    fn size(&self) -> u64 {
        self.size
    }

    /// Service id of the LocalService holding each replica.
    fn loc_list(&self) -> Vec<u32> {
        self.locs.clone()
    }

    /// Medium of each replica: 0 = DRAM, 1 = HBM, 2 = SSD.
    fn type_list(&self) -> Vec<u32> {
        self.types.clone()
    }

    /// Pool address of each replica, nearest first (0: not reachable from
    /// here); the first is the one ``batch_add_lease`` leases and
    /// ``batch_copy`` reads. An address in a segment mapped in this process
    /// is its mapped address; one on another host is a tag only
    /// ``batch_copy`` resolves.
    fn gva_list(&self) -> Vec<u64> {
        self.gvas.clone()
    }

    /// Number of replicas.
    fn replica_num(&self) -> usize {
        self.locs.len()
    }

    fn __str__(&self) -> String {
        let media: Vec<&str> = self.types.iter().map(|&t| medium_name(t)).collect();
        format!(
            "KeyInfo(size={}, replicas={}, loc_list={:?}, type_list={:?}, media=[{}])",
            self.size,
            self.locs.len(),
            self.locs,
            self.types,
            media.join(", ")
        )
    }

    fn __repr__(&self) -> String {
        self.__str__()
    }
}
