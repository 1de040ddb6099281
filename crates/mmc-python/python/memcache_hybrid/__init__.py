"""memcache_hybrid: the original MemCache's Python module name, served by memcache_rs.

Code written for the original MemCache (its examples, SGLang's
``npu_memcache`` storage backend, vllm-ascend's MemCache backend) imports
``memcache_hybrid`` and runs unchanged: every name here is the
``memcache_rs`` object of the same name (``memcache_hybrid.LocalConfig is
memcache_rs.LocalConfig``). The module ships in the same wheel as
``memcache_rs`` (see crates/mmc-python/pyproject.toml) and
docs/integrations.md explains what changes when switching: configuration
files and attributes, protocols, one client per process.
"""

from memcache_rs import *  # noqa: F401,F403 (the whole public API)
from memcache_rs import __all__ as _rs_all
from memcache_rs import __version__  # noqa: F401

# The original's names first (its __all__), then this project's additions.
__all__ = list(_rs_all)
