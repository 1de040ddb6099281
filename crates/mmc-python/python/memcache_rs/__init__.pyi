"""Type stubs for memcache_rs, the memcache_hybrid-compatible MemCache API.

Return conventions: 0 or a negative result code; ``is_exist`` 1 / 0 /
negative; ``get`` ``b""`` when absent; one int per key for batch calls; a put
of an existing key returns 0. Bad values give INVALID_PARAM (-3000) in the
usual return shape; only arguments of the wrong Python type raise
``TypeError``. Every blocking call releases the GIL.
"""

import enum
from typing import Any, List, Optional, Sequence, Union

__version__: str

# Any object exporting the buffer protocol (bytes, bytearray, memoryview,
# numpy arrays, ...). Written-into buffers must be writable and contiguous.
_Buffer = Any
# A key: str (bytes holding UTF-8 are accepted too), 1..=256 bytes.
_Key = Union[str, bytes]
# An address (int, e.g. tensor.data_ptr() or ctypes.addressof(x)) or a
# buffer-protocol object used in place.
# Caller contract for an int address (it cannot be checked): it must point at
# `size` bytes that stay allocated until the call returns, readable for puts,
# writable and used by nothing else for gets (and, within one batch, not
# overlapping another key's buffer). A wrong address corrupts this process's
# memory or crashes it, as with memcache_hybrid. Buffer objects are checked.
_Ptr = Union[int, _Buffer]

OK: int
ERROR: int
INVALID_PARAM: int
NOT_STARTED: int
TIMEOUT: int
DUPLICATED_OBJECT: int
OBJECT_NOT_EXISTS: int
NOT_INITIALIZED: int
NOT_ENOUGH_MEMORY: int
NOT_CONNECTED_META: int
NOT_CONNECTED_LOCAL: int
UNMATCHED_KEY: int
LEASE_EXPIRED: int
NO_PROVIDER: int
NOT_LEADER: int

class MmcCopyDirect(enum.IntEnum):
    """Values of ``direct``. Without an accelerator backend every address is host memory."""

    SMEMB_COPY_L2G = 0
    SMEMB_COPY_G2L = 1
    SMEMB_COPY_G2H = 2
    SMEMB_COPY_H2G = 3
    SMEMB_COPY_AUTO = 9

class ReplicateConfig:
    """Replica policy of a put.

    ``replicaNum``: number of replicas, 1..=8 (default 1), each on a
    different LocalService. ``preferredLocalServiceIDs``: service ids to place
    replicas on first (at most ``replicaNum`` distinct ids; negative entries
    are ignored). Checked when used: invalid values make the put return
    INVALID_PARAM.
    """

    replicaNum: int
    preferredLocalServiceIDs: List[int]
    replica_num: int
    """Alias of ``replicaNum`` (the Mooncake spelling)."""

    def __init__(self, replicaNum: int = 1, preferredLocalServiceIDs: Optional[List[int]] = None) -> None: ...

class KeyInfo:
    """Size and replica locations of an object (size 0, empty lists when absent)."""

    def size(self) -> int:
        """Object size in bytes."""
    def loc_list(self) -> List[int]:
        """Service id (rank) of the LocalService holding each replica."""
    def type_list(self) -> List[int]:
        """Medium of each replica: 0 = DRAM, 1 = HBM, 2 = SSD."""
    def replica_num(self) -> int:
        """Number of replicas."""
    def gva_list(self) -> List[int]:
        """Pool address of each replica, nearest first (0: not reachable from here); the first is
        the one ``batch_add_lease`` leases and ``batch_copy`` reads. A replica in a segment mapped in
        this process (own or same-host provider) has its mapped address; one on another host has a
        tag (bit 62 set) that only ``batch_copy`` resolves, over TCP. Empty when absent."""
    def __str__(self) -> str: ...

class LocalConfig:
    """LocalService configuration (the ``[local]`` TOML section).

    ``LocalConfig(**properties)`` starts from the defaults: MetaService at
    127.0.0.1:5000, a 1 GiB DRAM segment, protocol ``auto``.
    """

    meta_addr: str
    """MetaService control address, ``host:port``."""
    meta_service_url: str
    """``tcp://host:port`` spelling of ``meta_addr`` (memcache_hybrid name)."""
    dram_size: int
    """Segment size in bytes; set as an int or a string such as ``"64MB"``. 0 = pure client."""
    protocol: str
    """``auto`` (shm with LocalServices of this host, TCP otherwise) or ``tcp``; memcache_hybrid names too: ``host_shm`` (auto), ``host_tcp`` (tcp), ``host_rdma`` / ``host_urma`` / ``device_rdma`` / ``device_sdma`` (auto, with a warning; read back as set)."""
    transfer_listen: str
    """Transfer server listen address (port 0: any)."""
    transfer_advertise: Optional[str]
    """Transfer address advertised to peers (None: the bound address)."""
    host_id: Optional[str]
    """Host id override (None: machine id + network namespace)."""
    async_commit: bool
    """Return from a put once its commit is sent (one round trip instead of two); others see it a moment later."""
    spin_wait_us: int
    """Microseconds the caller polls for the MetaService's answer to a data-path request before sleeping, 0..=10000."""
    prefault_segments: bool
    """Allocate the segment at start and pre-map peer segments (no page faults on the data path)."""
    worker_threads: int
    """Threads of the LocalService runtime, 1..=256."""
    transfer_connections: int
    transfer_congestion: str
    """TCP connections per peer for large transfers, 1..=64."""
    rpc_timeout_ms: int
    """Control RPC timeout."""
    transfer_timeout_ms: int
    """Data transfer timeout."""
    heartbeat_interval_ms: int
    """Heartbeat interval."""
    etcd_endpoints: List[str]
    """etcd endpoints of an HA cluster: the MetaService leader named there is used instead of ``meta_addr`` (and found again after a failover)."""
    cluster_name: str
    """HA cluster name (the etcd key prefix), with ``etcd_endpoints``."""
    leader_wait_ms: int
    """How long a call waits for an HA leader before failing."""
    log_level: str
    """error, warn, info, debug or trace."""
    token: Optional[str]
    """Cluster token (at least 16 bytes) proved on every connection; None: none (loopback only unless ``insecure``). Not shown by ``str()``."""
    token_file: Optional[str]
    """File whose first line is the cluster token (used when ``token`` is unset)."""
    insecure: bool
    """Allow a non-loopback listen address without a cluster token."""

    # ---- memcache_hybrid attributes that map onto this project's keys ----
    client_timeout_seconds: int
    """Request timeout in seconds (1..=3600): sets ``rpc_timeout_ms`` and ``transfer_timeout_ms``."""
    client_retry_milliseconds: int
    """Keep retrying an unreachable MetaService every 200 ms for this long before NOT_CONNECTED_META (``local.meta_retry_ms``; 0: fail at once)."""
    log_path: str
    """Log to ``<log_path>/logs/mmc-local.log`` (rotated by size) instead of stderr; ``""``: stderr."""
    log_rotation_file_size: int
    """MB at which a log file is rotated, 1..=500 (20)."""
    log_rotation_file_count: int
    """Rotated log files kept (50)."""
    tls_enable: bool
    """TLS with client certificates to the MetaService (``local.security.tls.enable`` and ``mutual``)."""
    tls_ca_path: str
    """CA bundle (PEM) trusted for the MetaService (``local.security.tls.ca``)."""
    tls_cert_path: str
    """Client certificate chain (PEM) (``local.security.tls.cert``)."""
    tls_key_path: str
    """Unencrypted private key (PEM) (``local.security.tls.key``)."""
    hcom_tls_enable: bool
    """TLS on transfer connections, with the ``tls_*`` files (``local.security.tls.transfer``)."""

    # ---- memcache_hybrid attributes without effect here (read back as set; warn once at setup) ----
    config_store_url: str
    """No effect: there is no config store."""
    world_size: int
    """No effect: service ids come from the MetaService."""
    hcom_url: str
    """No effect: no HCOM transport (``transfer_listen`` sets the TCP transfer server)."""
    hbm_size: str  # set from str or int
    """No effect: no accelerator memory medium."""
    max_dram_size: str
    """No effect."""
    max_hbm_size: str
    """No effect."""
    read_thread_pool_size: int
    """No effect (``worker_threads`` sizes the runtime)."""
    write_thread_pool_size: int
    """No effect (``worker_threads`` sizes the runtime)."""
    aggregate_io: bool
    """No effect: batch calls are one control request already."""
    aggregate_num: int
    """No effect."""
    ubs_io_enable: bool
    """No effect: no UBS-IO tier."""
    memory_pool_mode: str
    """No effect."""
    tls_ca_crl_path: str
    """No effect: CRLs are not checked."""
    tls_key_pass_path: str
    """No effect: encrypted keys are not supported."""
    tls_package_path: str
    """No effect: TLS is built in."""
    tls_decrypter_path: str
    """No effect."""
    config_store_tls_enable: bool
    """No effect: there is no config store."""
    config_store_tls_ca_path: str
    """No effect."""
    config_store_tls_ca_crl_path: str
    """No effect."""
    config_store_tls_cert_path: str
    """No effect."""
    config_store_tls_key_path: str
    """No effect."""
    config_store_tls_key_pass_path: str
    """No effect."""
    config_store_tls_package_path: str
    """No effect."""
    config_store_tls_decrypter_path: str
    """No effect."""
    hcom_tls_ca_path: str
    """No effect: transfer TLS uses ``tls_ca_path``."""
    hcom_tls_ca_crl_path: str
    """No effect."""
    hcom_tls_cert_path: str
    """No effect: transfer TLS uses ``tls_cert_path``."""
    hcom_tls_key_path: str
    """No effect: transfer TLS uses ``tls_key_path``."""
    hcom_tls_key_pass_path: str
    """No effect."""
    hcom_tls_decrypter_path: str
    """No effect."""

    def __init__(self, **properties: Any) -> None: ...
    @staticmethod
    def load(path: Optional[str] = None) -> "LocalConfig":
        """Reads ``[local]`` from ``path``, else ``$MMC_LOCAL_CONFIG_PATH``, else defaults (TOML or the original's ``ock.mmc.*`` format); ValueError names a bad key."""
    def validate(self) -> None:
        """Raises ValueError naming the first invalid key."""
    def to_toml(self) -> str:
        """The config as a TOML ``[local]`` section."""
    def str(self) -> str:
        """All properties as one string."""

class MetaConfig:
    """MetaService configuration (the ``[meta]`` TOML section).

    ``MetaConfig(**properties)`` starts from the defaults: listen on
    127.0.0.1:5000, HTTP on 127.0.0.1:8000.
    """

    listen: str
    """Control-RPC listen address."""
    meta_service_url: str
    """``tcp://host:port`` spelling of ``listen`` (memcache_hybrid name)."""
    http_listen: str
    """HTTP listen address (health, metrics); empty disables it."""
    metrics_url: str
    """``http://host:port`` spelling of ``http_listen``."""
    evict_high_watermark: int
    """Percent used above which background eviction starts (90)."""
    evict_threshold_high: int
    """Alias of ``evict_high_watermark``."""
    evict_low_watermark: int
    """Percent used eviction brings a medium down to (80)."""
    evict_threshold_low: int
    """Alias of ``evict_low_watermark``."""
    lease_ms: int
    """Read lease in milliseconds (2000)."""
    put_timeout_ms: int
    """Uncommitted writes are reclaimed after this long (30000)."""
    heartbeat_timeout_ms: int
    """A LocalService silent this long is dead (5000)."""
    spin_wait_us: int
    """Microseconds a connection is polled for its next request before the server sleeps, 0..=10000 (200)."""
    log_level: str
    """error, warn, info, debug or trace."""
    ha_enable: bool
    """HA mode (several MetaServices, leader through etcd)."""
    ha_etcd_endpoints: List[str]
    ha_cluster_name: str
    ha_lease_ttl_s: int
    token: Optional[str]
    """Cluster token (at least 16 bytes) proved on every connection; None: none (loopback only unless ``insecure``). Not shown by ``str()``."""
    token_file: Optional[str]
    """File whose first line is the cluster token (used when ``token`` is unset)."""
    insecure: bool
    """Allow a non-loopback listen address without a cluster token."""

    # ---- memcache_hybrid attributes that map onto this project's keys ----
    log_path: str
    """Log to ``<log_path>/logs/mmc-meta.log`` (rotated by size) instead of stderr; ``""``: stderr."""
    log_rotation_file_size: int
    """MB at which a log file is rotated, 1..=500 (20)."""
    log_rotation_file_count: int
    """Rotated log files kept (50)."""
    tls_enable: bool
    """TLS requiring client certificates on the control port and HTTP endpoint (``meta.security.tls.enable`` and ``mutual``)."""
    tls_ca_path: str
    """CA bundle (PEM) client certificates must chain to (``meta.security.tls.ca``)."""
    tls_cert_path: str
    """Server certificate chain (PEM) (``meta.security.tls.cert``)."""
    tls_key_path: str
    """Unencrypted private key (PEM) (``meta.security.tls.key``)."""

    # ---- memcache_hybrid attributes without effect here (read back as set; warn once at setup) ----
    config_store_url: str
    """No effect: there is no config store."""
    ubs_io_enable: bool
    """No effect: no UBS-IO tier."""
    tls_ca_crl_path: str
    """No effect: CRLs are not checked."""
    tls_key_pass_path: str
    """No effect: encrypted keys are not supported."""
    tls_package_path: str
    """No effect: TLS is built in."""
    tls_decrypter_path: str
    """No effect."""
    config_store_tls_enable: bool
    """No effect: there is no config store."""
    config_store_tls_ca_path: str
    """No effect."""
    config_store_tls_ca_crl_path: str
    """No effect."""
    config_store_tls_cert_path: str
    """No effect."""
    config_store_tls_key_path: str
    """No effect."""
    config_store_tls_key_pass_path: str
    """No effect."""
    config_store_tls_package_path: str
    """No effect."""
    config_store_tls_decrypter_path: str
    """No effect."""

    def __init__(self, **properties: Any) -> None: ...
    @staticmethod
    def load(path: Optional[str] = None) -> "MetaConfig":
        """Reads ``[meta]`` from ``path``, else ``$MMC_META_CONFIG_PATH``, else defaults (TOML or the original's ``ock.mmc.*`` format); ValueError names a bad key."""
    def validate(self) -> None:
        """Raises ValueError naming the first invalid key."""
    def to_toml(self) -> str:
        """The config as a TOML ``[meta]`` section."""
    def str(self) -> str:
        """All properties as one string."""

class MetaService:
    """The MetaService of this process."""

    @staticmethod
    def setup(config: MetaConfig) -> int:
        """Records the config ``main`` uses (else ``$MMC_META_CONFIG_PATH``, else defaults). 0 or INVALID_PARAM."""
    @staticmethod
    def main() -> int:
        """Serves until SIGINT / SIGTERM (or ``stop()``), shuts down cleanly, returns 0; negative if it cannot start."""
    @staticmethod
    def stop() -> int:
        """Asks a running ``main`` to return. 0, or NOT_STARTED when none runs."""

class DistributedObjectStore:
    """Distributed object store client (memcache_hybrid's ``DistributedObjectStore``)."""

    def __init__(self) -> None: ...
    def setup(self, config: LocalConfig) -> int:
        """Sets the config ``init`` uses. 0, or INVALID_PARAM when invalid."""
    def init(self, device_id: int = 0, init_bm: bool = True) -> int:
        """Joins the cluster (``init_bm=False``: pure client), or shares this process's client started with the same configuration (one client per process). 0 or a negative code."""
    def close(self) -> int:
        """Releases this store's share of the process client; the last ``close()`` leaves the cluster. 0."""
    def get_local_service_id(self) -> int:
        """This LocalService's service id (rank), NOT_INITIALIZED before init."""
    def put(self, key: _Key, buf: _Buffer, replicateConfig: Optional[ReplicateConfig] = None) -> int:
        """Stores a buffer-protocol object (read in place). 0 (also if the key exists) or negative."""
    def put_batch(
        self, keys: Sequence[_Key], values: Sequence[_Buffer], replicateConfig: Optional[ReplicateConfig] = None
    ) -> int:
        """Stores each buffer under its key. 0, or the first failure code."""
    def get(self, key: _Key) -> bytes:
        """The value, ``b""`` when absent or on error."""
    def get_batch(self, keys: Sequence[_Key]) -> List[bytes]:
        """The values, ``b""`` for each absent or failed key."""
    def put_from(
        self,
        key: _Key,
        buffer_ptr: _Ptr,
        size: int,
        direct: int = 3,
        replicateConfig: Optional[ReplicateConfig] = None,
    ) -> int:
        """Stores ``size`` bytes at ``buffer_ptr`` without an intermediate copy."""
    def batch_put_from(
        self,
        keys: Sequence[_Key],
        buffer_ptrs: Sequence[_Ptr],
        sizes: Sequence[int],
        direct: int = 3,
        replicateConfig: Optional[ReplicateConfig] = None,
    ) -> List[int]:
        """``put_from`` per key; one code per key."""
    def get_into(self, key: _Key, buffer_ptr: _Ptr, size: int, direct: int = 2) -> int:
        """Copies the object into ``size`` bytes at ``buffer_ptr`` (``size`` == object size)."""
    def batch_get_into(
        self, keys: Sequence[_Key], buffer_ptrs: Sequence[_Ptr], sizes: Sequence[int], direct: int = 2
    ) -> List[int]:
        """``get_into`` per key; one code per key."""
    def put_from_layers(
        self,
        key: _Key,
        buffer_ptrs: Sequence[_Ptr],
        sizes: Sequence[int],
        direct: int = 3,
        replicateConfig: Optional[ReplicateConfig] = None,
    ) -> int:
        """Stores the concatenation of the layer buffers as one object."""
    def batch_put_from_layers(
        self,
        keys: Sequence[_Key],
        buffer_ptrs: Sequence[Sequence[_Ptr]],
        sizes: Sequence[Sequence[int]],
        direct: int = 3,
        replicateConfig: Optional[ReplicateConfig] = None,
    ) -> List[int]:
        """``put_from_layers`` per key; one code per key."""
    def get_into_layers(self, key: _Key, buffer_ptrs: Sequence[_Ptr], sizes: Sequence[int], direct: int = 2) -> int:
        """Scatters the object into the layer buffers (sizes sum to the object size)."""
    def batch_get_into_layers(
        self,
        keys: Sequence[_Key],
        buffer_ptrs: Sequence[Sequence[_Ptr]],
        sizes: Sequence[Sequence[int]],
        direct: int = 2,
    ) -> List[int]:
        """``get_into_layers`` per key; one code per key."""
    def batch_put_from_multi_buffers(
        self,
        keys: Sequence[_Key],
        all_buffer_ptrs: Sequence[Sequence[_Ptr]],
        all_sizes: Sequence[Sequence[int]],
        config: Union[ReplicateConfig, int, None] = None,
        direct: int = 3,
    ) -> List[int]:
        """Mooncake-style alias of ``batch_put_from_layers``."""
    def batch_get_into_multi_buffers(
        self,
        keys: Sequence[_Key],
        all_buffer_ptrs: Sequence[Sequence[_Ptr]],
        all_sizes: Sequence[Sequence[int]],
        prefer_alloc_in_same_node: bool = False,
        direct: int = 2,
    ) -> List[int]:
        """Mooncake-style alias of ``batch_get_into_layers``."""
    def is_exist(self, key: _Key) -> int:
        """1 if present, 0 if not, negative on error."""
    def batch_is_exist(self, keys: Sequence[_Key]) -> List[int]:
        """``is_exist`` per key, one RPC."""
    def remove(self, key: _Key) -> int:
        """0, UNMATCHED_KEY when absent, or negative."""
    def remove_batch(self, keys: Sequence[_Key]) -> List[int]:
        """``remove`` per key."""
    def remove_all(self) -> int:
        """Removes every key. 0 or negative."""
    def drain(self, service_id: int) -> dict:
        """Drain the memory provider ``service_id`` (graceful scale-in) and wait for the end: ``{"code", "state", "moved", "dropped_replicas", "unmoved": [{"key", "size", "reason"}], "message"}``; ``code`` is negative when the drain could not run (e.g. an unknown service id)."""
    def get_key_info(self, key: _Key) -> KeyInfo:
        """Size and replica locations."""
    def batch_get_key_info(self, keys: Sequence[_Key]) -> List[KeyInfo]:
        """``get_key_info`` per key, one RPC."""
    # The layer-wise, direct-address calls (vllm-ascend's layer-wise mode). See docs/integrations.md.
    def batch_alloc(self, keys: Sequence[_Key], sizes: Sequence[int]) -> List[int]:
        """Reserves one single-replica object per key; per key its pool address (> 0) or a negative
        code (DUPLICATED_OBJECT -3006, NOT_ENOUGH_MEMORY -3016, INVALID_PARAM -3000 for a bad key,
        a size of 0 or lists of different lengths). Fill it with ``batch_copy(direct=0 or 3)`` (or,
        when the address is mapped here, by writing there), then ``batch_write_finish``. Invisible to
        readers until finished; never finished, it is freed after the MetaService's put timeout."""
    def batch_write_finish(self, keys: Sequence[_Key], results: Sequence[int]) -> List[int]:
        """Ends writes begun by ``batch_alloc`` in this process: result 0 commits the key, anything
        else revokes it (space freed). One code per key; OBJECT_NOT_EXISTS (-3007): no write pending."""
    def batch_add_lease(self, keys: Sequence[_Key], lease_ttl_ms: int = 0) -> List[int]:
        """Read lease of ``lease_ttl_ms`` (0: the MetaService's ``lease_ms``; at most an hour) per key:
        not evicted nor freed while it lasts; ``batch_copy(direct=1 or 2)`` may then read it. One code
        per key; OBJECT_NOT_EXISTS (-3007) for an absent key or one still being written."""
    def batch_remove_lease(self, keys: Sequence[_Key]) -> int:
        """Removes one lease per key: 0, LEASE_EXPIRED (-3106) when a lease had run out (bytes read
        under it may have been overwritten: discard them), INVALID_PARAM when none is held here."""
    def batch_copy(self, gvas: Sequence[int], addrs: Sequence[_Ptr], sizes: Sequence[int], direct: int) -> int:
        """Copies ``sizes[i]`` bytes between ``addrs[i]`` and pool address ``gvas[i]`` (from
        ``batch_alloc`` or ``gva_list()``, possibly offset): ``direct`` 0 / 3 into an object allocated
        and not finished here, 1 / 2 out of an object leased here. 0, LEASE_EXPIRED (-3106) when a
        lease ran out before the copy ended, or INVALID_PARAM (a range outside such an object)."""
    def register_buffer(self, buffer_ptr: _Ptr, size: int) -> int:
        """No registration is needed for host memory: checks the arguments, 0 or INVALID_PARAM."""
    def unregister_buffer(self, buffer_ptr: _Ptr, size: int) -> int:
        """Counterpart of ``register_buffer``."""
