//! Typed identifiers of result rows: which system did which operation
//! ([`Kind`]) at which object size or client count ([`At`]). A typo in an
//! id is a compile error; the id prints (and serializes) as the same
//! string the JSON has always carried, e.g. `shm.put.1MiB`,
//! `scale.mmc.get.n2`, `layers.redis.set`.

use super::report::fmt_size;
use std::fmt;
use std::str::FromStr;

/// The short form of a size inside ids: `4KiB`, `1MiB`, `1.5MiB`.
pub fn size_tag(size: u64) -> String {
    fmt_size(size).replace(' ', "")
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $v:ident => $name:literal,)*) => {
        /// What a row measured: system and operation (and, for baselines,
        /// which phase they stand beside). Its [`Kind::name`] is the id
        /// without the size or client count.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($(#[$doc])* $v,)*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$v,)*];

            /// The id's first part, e.g. `shm.put`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$v => $name,)*
                }
            }
        }
    };
}

kinds! {
    /// memcpy between two cache-hot buffers.
    MemcpyHot => "memcpy.hot",
    /// memcpy from a hot buffer into slots rotating over a private working set.
    MemcpyWsWrite => "memcpy.wswrite",
    /// memcpy out of the private working set into a hot buffer.
    MemcpyWsRead => "memcpy.wsread",
    /// The store's own copy routine into the working set.
    MemcpyMmcWrite => "memcpy.mmcwrite",
    /// The store's own copy routine out of the working set.
    MemcpyMmcRead => "memcpy.mmcread",
    /// MemCache put_from, same host.
    ShmPut => "shm.put",
    /// MemCache get_into, same host.
    ShmGet => "shm.get",
    /// MemCache put_from with `async_commit`.
    ShmPutAc => "shm.putac",
    /// memcpy into the provider's segment, interleaved with the puts.
    ShmWsWrite => "shm.wswrite",
    /// memcpy out of the provider's segment, interleaved with the gets.
    ShmWsRead => "shm.wsread",
    /// memcpy into the segment, interleaved with the async_commit puts.
    ShmWsWriteAc => "shm.wswriteac",
    /// The first puts that touch the segment's pages.
    ShmPretouch => "shm.pretouch",
    /// Redis SET, same host.
    RedisSet => "redis.set",
    /// Redis GET, same host.
    RedisGet => "redis.get",
    /// Mooncake put_from, same host.
    MooncakePut => "mooncake.put",
    /// Mooncake get_into, same host.
    MooncakeGet => "mooncake.get",
    /// A raw loopback TCP stream.
    TcpRaw => "tcp.raw",
    /// MemCache put_from over loopback TCP.
    TcpPut => "tcp.put",
    /// MemCache get_into over loopback TCP.
    TcpGet => "tcp.get",
    /// MemCache put_batch.
    BatchPut => "batch.put",
    /// MemCache put of one key.
    BatchPut1 => "batch.put1",
    /// MemCache put_batch with `async_commit`.
    BatchPutAc => "batch.putac",
    /// MemCache get_into_batch.
    BatchGet => "batch.get",
    /// MemCache get_into of one key.
    BatchGet1 => "batch.get1",
    /// MemCache exist_batch.
    BatchExist => "batch.exist",
    /// MemCache exist of one key.
    BatchExist1 => "batch.exist1",
    /// MemCache exist of one key through the async API.
    BatchExistAsync => "batch.existasync",
    /// Raw loopback TCP ping-pong.
    BatchRtt => "batch.rtt",
    /// Redis MSET of a batch.
    RedisMset => "redis.mset",
    /// Redis MGET of a batch.
    RedisMget => "redis.mget",
    /// Redis EXISTS of a batch.
    RedisExists => "redis.exists",
    /// Mooncake batch_put_from.
    MooncakePutB => "mooncake.putb",
    /// Mooncake batch_get_into.
    MooncakeGetB => "mooncake.getb",
    /// Mooncake batch_is_exist.
    MooncakeExistB => "mooncake.existb",
    /// MemCache put_from_layers of the layered block.
    LayersPut => "layers.put",
    /// MemCache get_into_layers of the layered block.
    LayersGet => "layers.get",
    /// memcpy gather of the layered block.
    LayersMemcpyPut => "layers.memcpy.put",
    /// memcpy scatter of the layered block.
    LayersMemcpyGet => "layers.memcpy.get",
    /// Redis SET of the layered block.
    LayersRedisSet => "layers.redis.set",
    /// Redis GET of the layered block.
    LayersRedisGet => "layers.redis.get",
    /// Mooncake put of the layered block (multi buffers).
    LayersMooncakePut => "layers.mooncake.put",
    /// Mooncake get of the layered block (multi buffers).
    LayersMooncakeGet => "layers.mooncake.get",
    /// MemCache put_from of N client processes.
    ScaleMmcPut => "scale.mmc.put",
    /// MemCache get_into of N client processes.
    ScaleMmcGet => "scale.mmc.get",
    /// memcpy ws-write of N processes.
    ScaleMemcpyPut => "scale.memcpy.put",
    /// memcpy ws-read of N processes.
    ScaleMemcpyGet => "scale.memcpy.get",
    /// Redis SET of N clients.
    ScaleRedisSet => "scale.redis.set",
    /// Redis GET of N clients.
    ScaleRedisGet => "scale.redis.get",
    /// Mooncake put_from of N clients.
    ScaleMooncakePut => "scale.mooncake.put",
    /// Mooncake get_into of N clients.
    ScaleMooncakeGet => "scale.mooncake.get",
    /// Raw TCP ping-pong between the namespaces.
    CrossRtt => "cross.rtt",
    /// MemCache exist of one key across hosts.
    CrossExist1 => "cross.exist1",
    /// MemCache get_into of one small object across hosts.
    CrossGet1 => "cross.get1",
    /// MemCache put_from across hosts.
    CrossPut => "cross.put",
    /// MemCache get_into across hosts.
    CrossGet => "cross.get",
    /// MemCache put_batch across hosts.
    CrossPutB => "cross.putb",
    /// MemCache get_batch across hosts.
    CrossGetB => "cross.getb",
    /// Raw TCP stream B -> A.
    CrossRawSend => "cross.raw.send",
    /// Raw TCP stream A -> B.
    CrossRawRecv => "cross.raw.recv",
    /// Raw TCP request + ack B -> A.
    CrossRrSend => "cross.rr.send",
    /// Raw TCP request + reply A -> B.
    CrossRrRecv => "cross.rr.recv",
    /// Redis SET across hosts.
    CrossRedisSet => "cross.redis.set",
    /// Redis GET across hosts.
    CrossRedisGet => "cross.redis.get",
    /// Redis MSET across hosts.
    CrossRedisMset => "cross.redis.mset",
    /// Redis MGET across hosts.
    CrossRedisMget => "cross.redis.mget",
    /// Mooncake put_from across hosts.
    CrossMooncakePut => "cross.mooncake.put",
    /// Mooncake get_into across hosts.
    CrossMooncakeGet => "cross.mooncake.get",
    /// Mooncake batch_put_from across hosts.
    CrossMooncakePutB => "cross.mooncake.putb",
    /// Mooncake batch_get_into across hosts.
    CrossMooncakeGetB => "cross.mooncake.getb",
}

/// Where in its series a row stands: nowhere (one row of its kind), at an
/// object size (`.4KiB`) or at a client-process count (`.n2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum At {
    One,
    Size(u64),
    Procs(usize),
}

/// A row's identifier: [`Kind`] at [`At`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId {
    pub kind: Kind,
    pub at: At,
}

impl Kind {
    /// The row of this kind at object size `size`.
    pub fn size(self, size: u64) -> RowId {
        RowId {
            kind: self,
            at: At::Size(size),
        }
    }

    /// The row of this kind with `n` client processes.
    pub fn procs(self, n: usize) -> RowId {
        RowId {
            kind: self,
            at: At::Procs(n),
        }
    }

    /// The row of this kind at `at`.
    pub fn at(self, at: At) -> RowId {
        RowId { kind: self, at }
    }

    /// The single row of this kind.
    pub fn one(self) -> RowId {
        RowId {
            kind: self,
            at: At::One,
        }
    }
}

impl fmt::Display for At {
    /// The id's suffix after the kind's name (without the dot).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::One => Ok(()),
            At::Size(s) => f.write_str(&size_tag(*s)),
            At::Procs(n) => write!(f, "n{n}"),
        }
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            At::One => f.write_str(self.kind.name()),
            at => write!(f, "{}.{at}", self.kind.name()),
        }
    }
}

impl serde::Serialize for RowId {
    /// As its string, the form the JSON has always had.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses a size tag that [`size_tag`] prints exactly: `4KiB`, `1MiB`,
/// `2GiB`, `512B`. (Sizes printed with a decimal fraction are not exact and
/// are refused.)
fn parse_size_tag(t: &str) -> Option<u64> {
    let (num, shift) = [("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)]
        .iter()
        .find_map(|&(unit, shift)| t.strip_suffix(unit).map(|n| (n, shift)))?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let size = num.parse::<u64>().ok()?.checked_mul(1 << shift)?;
    // Only the canonical spelling: `1024KiB` prints as `1MiB`.
    (size_tag(size) == t).then_some(size)
}

impl FromStr for At {
    type Err = String;

    fn from_str(s: &str) -> Result<At, String> {
        if let Some(n) = s.strip_prefix('n').and_then(|n| n.parse::<usize>().ok()) {
            if format!("n{n}") == s {
                return Ok(At::Procs(n));
            }
        }
        parse_size_tag(s)
            .map(At::Size)
            .ok_or_else(|| format!("`{s}` is neither a size (4KiB) nor a client count (n2)"))
    }
}

impl FromStr for RowId {
    type Err = String;

    /// The inverse of `Display` (for every size that prints exactly).
    fn from_str(s: &str) -> Result<RowId, String> {
        let mut found = Kind::ALL.iter().filter_map(|&kind| {
            let rest = s.strip_prefix(kind.name())?;
            if rest.is_empty() {
                return Some(kind.one());
            }
            rest.strip_prefix('.')?.parse::<At>().ok().map(|at| kind.at(at))
        });
        match (found.next(), found.next()) {
            (Some(id), None) => Ok(id),
            (Some(a), Some(b)) => Err(format!("row id `{s}` is ambiguous ({a:?}, {b:?})")),
            (None, _) => Err(format!("`{s}` is not a row id")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_the_json_always_had_them() {
        assert_eq!(Kind::ShmPut.size(1 << 20).to_string(), "shm.put.1MiB");
        assert_eq!(Kind::BatchExist1.size(4096).to_string(), "batch.exist1.4KiB");
        assert_eq!(Kind::ScaleMmcGet.procs(2).to_string(), "scale.mmc.get.n2");
        assert_eq!(Kind::CrossRawSend.procs(4).to_string(), "cross.raw.send.n4");
        assert_eq!(Kind::LayersRedisSet.one().to_string(), "layers.redis.set");
        assert_eq!(Kind::BatchRtt.one().to_string(), "batch.rtt");
        assert_eq!(Kind::MemcpyHot.size(64 << 20).to_string(), "memcpy.hot.64MiB");
        assert_eq!(Kind::CrossGet1.size(4096).to_string(), "cross.get1.4KiB");
        assert_eq!(Kind::TcpRaw.size(1536).to_string(), "tcp.raw.1536B");
        assert_eq!(Kind::RedisSet.size(1 << 30).to_string(), "redis.set.1GiB");
        // A size that is not a whole number of MiB prints rounded, as before.
        assert_eq!(Kind::ShmPut.size(1_500_000).to_string(), "shm.put.1.4MiB");
        assert_eq!(
            serde_json::to_value(Kind::CrossMooncakePutB.size(16 << 20)).unwrap(),
            serde_json::json!("cross.mooncake.putb.16MiB")
        );
    }

    #[test]
    fn every_id_parses_back() {
        let ats = [
            At::One,
            At::Size(4096),
            At::Size(128 << 10),
            At::Size(1 << 20),
            At::Size(64 << 20),
            At::Size(3 << 30),
            At::Size(1000),
            At::Size(1),
            At::Procs(1),
            At::Procs(64),
        ];
        for &kind in Kind::ALL {
            for &at in &ats {
                let id = kind.at(at);
                assert_eq!(id.to_string().parse::<RowId>(), Ok(id), "{id}");
            }
        }
    }

    #[test]
    fn kind_names_are_unique() {
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "shm",
            "shm.put.",
            "shm.put.4KB",
            "shm.put.1024KiB",
            "shm.put.1.5MiB",
            "shm.put.n",
            "shm.put.n02",
            "shm.puts.4KiB",
            "shm.put.4KiB.x",
            "nosuch.1MiB",
            "batch.rtt.x",
        ] {
            assert!(bad.parse::<RowId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn size_tags_parse_only_their_canonical_spelling() {
        assert_eq!(parse_size_tag("4KiB"), Some(4096));
        assert_eq!(parse_size_tag("1536B"), Some(1536));
        assert_eq!(parse_size_tag("2GiB"), Some(2 << 30));
        assert_eq!(parse_size_tag("2048B"), None, "prints as 2KiB");
        assert_eq!(parse_size_tag("0B"), None, "0 prints as -");
        assert_eq!(parse_size_tag("-1B"), None);
        assert_eq!(parse_size_tag("KiB"), None);
    }
}
