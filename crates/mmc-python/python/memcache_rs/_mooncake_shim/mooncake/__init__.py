"""Stand-in for the ``mooncake`` package: put this directory's parent on PYTHONPATH
(``python -m memcache_rs.mooncake`` prints it) and ``mooncake.store`` is memcache_rs's
Mooncake-compatible client in every process, spawned workers included.
Do not use it next to a real Mooncake installation."""
