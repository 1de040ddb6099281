"""``mooncake.store`` served by MemCache: the names of ``memcache_rs.mooncake``."""

from memcache_rs.mooncake import *  # noqa: F401,F403
from memcache_rs.mooncake import (  # noqa: F401
    BufferHandle,
    Descriptor,
    MemoryDescriptor,
    MooncakeDistributedStore,
    ReplicaDescriptor,
    ReplicaStatus,
    ReplicateConfig,
    SoftPinAction,
)
