"""Fixtures: a real MemCache cluster of `mmc` processes on loopback.

The session cluster is one MetaService (`mmc meta`) and two memory-providing
LocalServices (`mmc local`, 64 MB segments each) on free loopback ports.
Every process is started here and stopped by its PID at teardown. The
binary is $MMC_BIN, else target/debug/mmc of the workspace (built with
`cargo build -p mmc-cli` when missing).
"""

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import memcache_rs

ROOT = Path(__file__).resolve().parents[3]
SEGMENT = "64MB"

# The tests choose their configuration explicitly.
os.environ.pop("MMC_LOCAL_CONFIG_PATH", None)
os.environ.pop("MMC_META_CONFIG_PATH", None)


def mmc_bin() -> str:
    env = os.environ.get("MMC_BIN")
    if env:
        return env
    path = ROOT / "target" / "debug" / "mmc"
    if not path.exists():
        subprocess.run(["cargo", "build", "-p", "mmc-cli"], cwd=ROOT, check=True)
    return str(path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stops one process we started, by its PID."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    for f in (proc.stdout, proc.stderr):
        if f:
            f.close()


class Cluster:
    """Processes of a test cluster; `meta_addr` is the MetaService address."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs = []
        self.meta_proc = None
        self.meta_addr = ""
        self.http_addr = ""  # the MetaService's HTTP endpoint, when started with http=True
        self.local_ids = []  # service ids of the memory-providing LocalServices
        self.local_procs = []
        self.config = workdir / "cluster.toml"
        self.config.write_text('[meta]\nlog_level = "warn"\n[local]\nlog_level = "warn"\n')

    def _log(self, name: str):
        return open(self.workdir / f"{name}.log", "ab")

    def start_meta(self, http: bool = False) -> None:
        """Starts `mmc meta`; with `http`, also its HTTP endpoint at `http_addr`."""
        port = free_port()
        self.meta_addr = f"127.0.0.1:{port}"
        self.http_addr = f"127.0.0.1:{free_port()}" if http else ""
        p = subprocess.Popen(
            [mmc_bin(), "meta", "--config", str(self.config), "--listen", self.meta_addr, "--http", self.http_addr],
            stdout=self._log("meta"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(p)
        self.meta_proc = p
        wait_port(port, p)

    def start_local(self, size: str = SEGMENT, extra=()) -> tuple:
        """Starts `mmc local`; returns (process, service id)."""
        p = subprocess.Popen(
            [mmc_bin(), "local", "--config", str(self.config), "--meta", self.meta_addr, "--dram-size", size, *extra],
            stdout=subprocess.PIPE,
            stderr=self._log("local"),
        )
        self.procs.append(p)
        line = b""
        deadline = time.monotonic() + 20
        while b"ready" not in line:
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError(f"mmc local did not start: {line!r}")
            r, _, _ = select.select([p.stdout], [], [], 0.2)
            if r:
                line = p.stdout.readline()
        sid = int(line.split()[1])  # "localservice N ready (transfer ADDR)"
        self.local_procs.append(p)
        self.local_ids.append(sid)
        return p, sid

    def stop_local(self, proc: subprocess.Popen) -> None:
        """Stops one LocalService (SIGTERM: it leaves the cluster gracefully)."""
        i = self.local_procs.index(proc)
        self.local_procs.pop(i)
        self.local_ids.pop(i)
        stop(proc)

    def local_config(self, **overrides) -> memcache_rs.LocalConfig:
        cfg = memcache_rs.LocalConfig(meta_addr=self.meta_addr, dram_size=SEGMENT, log_level="warn")
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            stop(p)


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="mmc-pytest-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def cluster(workdir):
    c = Cluster(workdir)
    try:
        c.start_meta()
        c.start_local()
        c.start_local()
        yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="session")
def store(cluster):
    """A store that also contributes a 64 MB segment (init_bm=True)."""
    s = memcache_rs.DistributedObjectStore()
    assert s.setup(cluster.local_config()) == 0
    assert s.init(0) == 0
    yield s
    assert s.close() == 0


@pytest.fixture
def kp():
    """A unique key prefix for one test."""
    return f"t-{uuid.uuid4().hex[:12]}-"


def run_python(code: str, env=None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (for process-wide behaviour)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=timeout)
