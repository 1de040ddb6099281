"""Fixtures of the engine tests: a real MemCache cluster for SGLang / LMCache / vLLM code.

These tests run inference engines' own storage code (installed in the
engine venv that scripts/test-engines.sh builds) against real `mmc`
processes. The cluster is the one of the main suite (tests/conftest.py,
whose `Cluster` class is reused here): one MetaService (`mmc meta`) and two
memory-providing LocalServices (`mmc local`, 256 MB each) on free loopback
ports, started once per session and stopped by PID at the end.

Fixtures: `mmc_cluster` (the Cluster object), `meta_url` (the MetaService
as `tcp://127.0.0.1:PORT`, the original MemCache's spelling), `meta_addr`
(`127.0.0.1:PORT`). `require(module)` imports an engine module; it skips the
test when the module is missing, except under CI=true where it fails (the
engine venv must have been built).
"""

import importlib
import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parents[2]

# The main suite's cluster harness (mmc_bin, free_port, Cluster, stop), loaded
# under its own module name so that pytest does not see two `conftest`s.
_spec = importlib.util.spec_from_file_location("mmc_main_conftest", _HERE.parent / "tests" / "conftest.py")
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
Cluster = _base.Cluster
free_port = _base.free_port
mmc_bin = _base.mmc_bin

SEGMENT = "256MB"

# Engine code must not pick up a developer's configuration by accident.
for _var in ("MMC_LOCAL_CONFIG_PATH", "MMC_META_CONFIG_PATH", "SGLANG_HICACHE_MEMCACHE_CONFIG_PATH"):
    os.environ.pop(_var, None)


def require(module: str):
    """Imports `module`; skips without it, but fails under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{module} is not importable under CI=true (run scripts/test-engines.sh): {e}", pytrace=False)
        pytest.skip(f"{module} not installed (scripts/test-engines.sh builds the engine venv): {e}", allow_module_level=True)


@pytest.fixture(scope="session")
def mmc_cluster():
    with tempfile.TemporaryDirectory(prefix="mmc-engines-") as d:
        c = Cluster(Path(d))
        try:
            c.start_meta()
            c.start_local(SEGMENT)
            c.start_local(SEGMENT)
            yield c
        finally:
            c.stop_all()


@pytest.fixture(scope="session")
def meta_addr(mmc_cluster) -> str:
    return mmc_cluster.meta_addr


@pytest.fixture(scope="session")
def meta_url(mmc_cluster) -> str:
    return f"tcp://{mmc_cluster.meta_addr}"
