"""Helpers the LMCache integrations share: object names and LocalService configuration.

This module owns what ``memcache_rs.integrations.lmcache`` (the remote
storage plugin) and ``memcache_rs.integrations.lmcache_l2`` (the L2 adapter
of LMCache's multiprocess server) have in common, and depends on nothing
but ``memcache_rs``:

- ``fit_key``: a name within MemCache's 256-byte key limit (longer names
  are stored under ``<prefix><sha256 of the name>``);
- ``local_config``: a ``memcache_rs.LocalConfig`` from an optional config
  file plus attribute settings, with errors that name the setting as the
  user wrote it;
- ``parse_replicas``: a replica count checked against 1..=8.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Optional, Tuple

import memcache_rs as _mmc

__all__ = ["MAX_KEY_BYTES", "fit_key", "is_local_config_attr", "local_config", "parse_replicas"]

MAX_KEY_BYTES = 256


def fit_key(name: str, hashed_prefix: str) -> str:
    """``name``, or ``hashed_prefix + sha256(name)`` when its UTF-8 form is longer than 256 bytes."""
    b = name.encode("utf-8")
    if len(b) <= MAX_KEY_BYTES:
        return name
    return hashed_prefix + hashlib.sha256(b).hexdigest()


def is_local_config_attr(attr: str) -> bool:
    """Whether ``attr`` is a settable ``memcache_rs.LocalConfig`` attribute (not a method)."""
    if attr.startswith("_") or not hasattr(_mmc.LocalConfig, attr):
        return False
    return not callable(getattr(_mmc.LocalConfig, attr))


def local_config(
    path: Optional[Any],
    path_key: str,
    settings: Iterable[Tuple[str, str, Any]],
    what: str,
) -> "_mmc.LocalConfig":
    """The LocalService configuration: the file ``path`` (TOML or the original's
    ``ock.mmc.*`` format) when given, else ``$MMC_LOCAL_CONFIG_PATH``, else the
    defaults; then each ``(key as the user wrote it, LocalConfig attribute,
    value)`` of ``settings`` set on it; then validated.

    Raises ValueError naming ``path_key`` for a file that cannot be read, the
    user's key for an unknown attribute or a bad value, and ``what`` for a
    configuration that does not validate as a whole.
    """
    try:
        cfg = _mmc.LocalConfig.load(str(path)) if path else _mmc.LocalConfig.load()
    except ValueError as e:
        raise ValueError(f"{path_key}: {e}") from None
    for key, attr, value in settings:
        if not is_local_config_attr(attr):
            raise ValueError(f"{key}: memcache_rs.LocalConfig has no attribute {attr!r}")
        try:
            setattr(cfg, attr, value)
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"{key}: {e}") from None
    try:
        cfg.validate()
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    return cfg


def parse_replicas(value: Any, key: str) -> int:
    """``value`` as a replica count in 1..=8; ValueError naming ``key`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{key}: {value!r} is not an int")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: {value!r} is not an int") from None
    if not 1 <= n <= 8:
        raise ValueError(f"{key}: {n} is outside 1..=8")
    return n
