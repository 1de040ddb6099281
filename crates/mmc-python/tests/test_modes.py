"""Configuration, pure-client mode, init / close, and the MetaService started
from Python."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import memcache_rs as mc
from conftest import free_port, mmc_bin, run_python, stop, wait_port

# ---- config objects -----------------------------------------------------------


def test_local_config_defaults_and_properties():
    c = mc.LocalConfig()
    assert c.meta_addr == "127.0.0.1:5000"
    assert c.meta_service_url == "tcp://127.0.0.1:5000"
    assert c.dram_size == 1 << 30
    assert c.protocol == "auto"
    assert c.transfer_advertise is None and c.host_id is None
    c.validate()
    c.dram_size = "64MB"
    assert c.dram_size == 64 << 20
    c.dram_size = "2.5G"
    assert c.dram_size == int(2.5 * (1 << 30))
    c.dram_size = 4096 * 1024
    assert c.dram_size == 4 << 20
    c.meta_service_url = "tcp://10.0.0.1:7000"
    assert c.meta_addr == "10.0.0.1:7000"
    c.protocol = "tcp"
    assert c.protocol == "tcp"
    c.protocol = "host_shm"
    assert c.protocol == "auto"
    c.worker_threads = 4
    c.transfer_connections = 8
    assert c.transfer_congestion == "cubic"
    c.transfer_congestion = "system"
    c.rpc_timeout_ms = 1234
    c.transfer_timeout_ms = 5678
    c.heartbeat_interval_ms = 500
    c.log_level = "debug"
    c.host_id = "h1"
    c.transfer_listen = "127.0.0.1:0"
    c.transfer_advertise = "127.0.0.1:9999"
    c.validate()
    text = c.to_toml()
    assert text.startswith("[local]") and 'meta_addr = "10.0.0.1:7000"' in text
    assert "worker_threads = 4" in text
    assert 'transfer_congestion = "system"' in text
    assert "10.0.0.1:7000" in repr(c) and str(c) == c.str() == repr(c)
    k = mc.LocalConfig(meta_addr="127.0.0.1:1", dram_size="128MB", protocol="tcp")
    assert (k.meta_addr, k.dram_size, k.protocol) == ("127.0.0.1:1", 128 << 20, "tcp")


def test_local_config_errors():
    c = mc.LocalConfig()
    with pytest.raises(ValueError, match="12XB"):
        c.dram_size = "12XB"
    with pytest.raises(ValueError, match="protocol"):
        c.protocol = "rdma"
    with pytest.raises(TypeError):
        c.meta_addr = 5
    with pytest.raises(TypeError):
        c.dram_size = 1.5
    with pytest.raises((OverflowError, ValueError)):
        c.worker_threads = -1
    with pytest.raises(TypeError):
        mc.LocalConfig(no_such_key=1)
    c.worker_threads = 0
    with pytest.raises(ValueError, match="local.worker_threads"):
        c.validate()
    s = mc.DistributedObjectStore()
    assert s.setup(c) == mc.INVALID_PARAM
    c.worker_threads = 2
    c.transfer_congestion = "no such; name"
    with pytest.raises(ValueError, match="local.transfer_congestion"):
        c.validate()
    c.transfer_congestion = "cubic"
    c.dram_size = 1000  # below the 1 MB minimum
    assert s.setup(c) == mc.INVALID_PARAM


def test_meta_config_properties():
    m = mc.MetaConfig()
    assert m.listen == "127.0.0.1:5000" and m.http_listen == "127.0.0.1:8000"
    assert (m.evict_high_watermark, m.evict_low_watermark) == (90, 80)
    assert (m.lease_ms, m.put_timeout_ms, m.heartbeat_timeout_ms) == (2000, 30000, 5000)
    assert m.ha_enable is False and m.ha_etcd_endpoints and m.ha_cluster_name and m.ha_lease_ttl_s > 0
    m.meta_service_url = "tcp://127.0.0.1:6000"
    assert m.listen == "127.0.0.1:6000"
    m.metrics_url = "http://127.0.0.1:6001"
    assert m.http_listen == "127.0.0.1:6001" and m.metrics_url == "http://127.0.0.1:6001"
    m.evict_threshold_high = 70
    m.evict_threshold_low = 60
    assert (m.evict_high_watermark, m.evict_low_watermark) == (70, 60)
    m.ha_etcd_endpoints = ["http://a:2379", "http://b:2379"]
    m.ha_cluster_name = "c"
    m.ha_lease_ttl_s = 7
    m.lease_ms = 100
    m.put_timeout_ms = 1000
    m.heartbeat_timeout_ms = 1000
    m.log_level = "warn"
    m.validate()
    assert "[meta]" in m.to_toml() and "lease_ms = 100" in m.to_toml()

    m.evict_low_watermark = 95
    with pytest.raises(ValueError, match="evict_low_watermark"):
        m.validate()
    assert mc.MetaService.setup(m) == mc.INVALID_PARAM
    with pytest.raises(TypeError):
        mc.MetaService.setup(mc.LocalConfig())
    assert mc.MetaConfig(listen="127.0.0.1:1", http_listen="").metrics_url == ""


def test_token_properties():
    token = "py-cluster-token-0123456789"
    for cls, section in ((mc.LocalConfig, "local"), (mc.MetaConfig, "meta")):
        c = cls(token=token, insecure=True)
        assert c.token == token and c.insecure is True and c.token_file is None
        assert token not in repr(c) and token not in str(c) and "token='<set>'" in repr(c)
        c.validate()
        c.token = None
        c.token_file = "/etc/memcache/token"
        assert c.token is None and c.token_file == "/etc/memcache/token"
        c.insecure = False
        assert c.insecure is False
        c.token = "short"
        with pytest.raises(ValueError, match=section + ".security.token"):
            c.validate()


def test_config_load_from_file(tmp_path):
    p = tmp_path / "mmc.toml"
    p.write_text('[meta]\nlisten = "127.0.0.1:7001"\nlease_ms = 500\n[local]\nmeta_addr = "127.0.0.1:7001"\ndram_size = "32MB"\n')
    assert mc.LocalConfig.load(str(p)).dram_size == 32 << 20
    assert mc.MetaConfig.load(str(p)).lease_ms == 500
    bad = tmp_path / "bad.toml"
    bad.write_text("[local]\nbogus = 1\n")
    with pytest.raises(ValueError, match="bogus"):
        mc.LocalConfig.load(str(bad))


# ---- init modes ------------------------------------------------------------------


def test_pure_client(cluster, kp):
    s = mc.DistributedObjectStore()
    assert s.setup(cluster.local_config()) == 0
    assert s.init(0, init_bm=False) == 0
    me = s.get_local_service_id()
    assert me > 0
    src = np.random.randint(0, 256, size=1 << 20, dtype=np.uint8)
    assert s.put_from(kp + "pc", src.ctypes.data, src.nbytes) == 0
    locs = s.get_key_info(kp + "pc").loc_list()
    assert len(locs) == 1 and locs[0] != me  # a pure client holds no replica
    dst = np.zeros_like(src)
    assert s.get_into(kp + "pc", dst.ctypes.data, dst.nbytes) == 0
    assert np.array_equal(src, dst)
    assert s.put("x" + kp, b"v", mc.ReplicateConfig(replicaNum=2)) == 0
    assert me not in s.get_key_info("x" + kp).loc_list()
    assert s.close() == 0
    assert s.get_local_service_id() == mc.NOT_INITIALIZED


def test_close_then_init_again(cluster, kp):
    s = mc.DistributedObjectStore()
    assert s.setup(cluster.local_config(dram_size="16MB")) == 0
    assert s.init(0) == 0
    first = s.get_local_service_id()
    assert s.init(0) == 0  # already initialized: no-op
    assert s.get_local_service_id() == first
    assert s.put(kp + "a", b"1") == 0
    assert s.close() == 0
    assert s.close() == 0
    assert s.put(kp + "b", b"2") == mc.NOT_INITIALIZED
    assert s.init(0) == 0
    assert s.get_local_service_id() != first
    assert s.put(kp + "b", b"2") == 0 and s.get(kp + "b") == b"2"
    assert s.close() == 0


def test_init_from_env_config_file(cluster, tmp_path):
    p = tmp_path / "local.toml"
    p.write_text(f'[local]\nmeta_addr = "{cluster.meta_addr}"\ndram_size = "8MB"\nlog_level = "warn"\n')
    code = """
import memcache_rs as mc
s = mc.DistributedObjectStore()
rc = s.init(0)
print("init", rc, s.get_local_service_id() > 0)
print("put", s.put("env-key", b"v"), s.get("env-key"))
print("info", s.get_key_info("env-key").loc_list() == [s.get_local_service_id()])
s.remove("env-key")
s.close()
"""
    r = run_python(code, env={"MMC_LOCAL_CONFIG_PATH": str(p)})
    assert r.returncode == 0, r.stderr
    assert "init 0 True" in r.stdout and "put 0 b'v'" in r.stdout and "info True" in r.stdout
    p.write_text("[local]\ndram_size = 'lots'\n")
    r = run_python("import memcache_rs as mc; print('init', mc.DistributedObjectStore().init(0))", env={"MMC_LOCAL_CONFIG_PATH": str(p)})
    assert "init -3000" in r.stdout, r.stdout + r.stderr
    assert "lots" in r.stderr  # the reason is logged


def test_init_defaults_target_127_0_0_1_5000():
    """With no setup() and no MMC_LOCAL_CONFIG_PATH, init() uses the defaults."""
    code = """
import logging, memcache_rs as mc
logging.basicConfig(level=logging.INFO)
s = mc.DistributedObjectStore()
rc = s.init(0, init_bm=False)
print("rc", rc)
s.close()
"""
    r = run_python(code, env={"MMC_LOCAL_CONFIG_PATH": ""})
    assert r.returncode == 0, r.stderr
    # Either a MetaService happens to run on the default address (rc 0), or
    # the failure names it.
    assert "rc 0" in r.stdout or ("rc -3017" in r.stdout and "127.0.0.1:5000" in r.stderr), r.stdout + r.stderr


def test_unreachable_meta_is_not_connected_meta():
    s = mc.DistributedObjectStore()
    assert s.setup(mc.LocalConfig(meta_addr=f"127.0.0.1:{free_port()}", dram_size=0)) == 0
    assert s.init(0) == mc.NOT_CONNECTED_META
    assert s.init(-1) == mc.INVALID_PARAM



def test_a_token_cluster_serves_only_clients_with_the_token(tmp_path):
    token = "py-cluster-token-0123456789"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    port = free_port()
    meta_addr = f"127.0.0.1:{port}"
    meta = subprocess.Popen(
        [mmc_bin(), "meta", "--listen", meta_addr, "--http", "", "--token-file", str(token_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    local = None
    try:
        wait_port(port, meta)
        local = subprocess.Popen(
            [mmc_bin(), "local", "--meta", meta_addr, "--dram-size", "16MB", "--token-file", str(token_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for cfg in (
            mc.LocalConfig(meta_addr=meta_addr, dram_size=0, log_level="warn"),
            mc.LocalConfig(meta_addr=meta_addr, dram_size=0, log_level="warn", token="py-cluster-token-wrong-one"),
        ):
            s = mc.DistributedObjectStore()
            assert s.setup(cfg) == 0
            assert s.init(0) == mc.NOT_CONNECTED_META
        for cfg in (
            mc.LocalConfig(meta_addr=meta_addr, dram_size=0, log_level="warn", token=token),
            mc.LocalConfig(meta_addr=meta_addr, dram_size=0, log_level="warn", token_file=str(token_file)),
        ):
            s = mc.DistributedObjectStore()
            assert s.setup(cfg) == 0
            assert s.init(0) == 0
            deadline = time.monotonic() + 10
            while s.put("tok", b"with the token") not in (0,):  # until the provider registered
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert s.get("tok") == b"with the token"
            assert s.close() == 0
    finally:
        if local is not None:
            stop(local)
        stop(meta)


# ---- MetaService from Python ----------------------------------------------------------


META_SCRIPT = """
import sys, memcache_rs as mc
cfg = mc.MetaConfig(listen=sys.argv[1], http_listen="", log_level="warn")
assert mc.MetaService.setup(cfg) == 0
print("starting", flush=True)
rc = mc.MetaService.main()
print("main returned", rc, flush=True)
"""


def start_python_meta(port: int, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen(
        [sys.executable, "-c", META_SCRIPT, f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
    )
    wait_port(port, p)
    return p


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_meta_service_main_from_python(sig):
    port = free_port()
    meta = start_python_meta(port)
    local = None
    try:
        # a memory provider and a client joined to the Python-started MetaService
        local = subprocess.Popen(
            [mmc_bin(), "local", "--meta", f"127.0.0.1:{port}", "--dram-size", "16MB"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        s = mc.DistributedObjectStore()
        assert s.setup(mc.LocalConfig(meta_addr=f"127.0.0.1:{port}", dram_size=0, log_level="warn")) == 0
        assert s.init(0, False) == 0
        deadline = time.monotonic() + 10
        while s.put("pm", b"via python meta") != 0:  # until the memory provider registered
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert s.get("pm") == b"via python meta"
        assert s.close() == 0
        os.kill(meta.pid, sig)
        out, err = meta.communicate(timeout=15)
        assert meta.returncode == 0, err
        assert "main returned 0" in out, out + err
    finally:
        if local is not None:
            stop(local)
        stop(meta, signal.SIGKILL)


def test_meta_service_main_reads_env_config(tmp_path):
    port = free_port()
    p = tmp_path / "meta.toml"
    p.write_text(f'[meta]\nlisten = "127.0.0.1:{port}"\nhttp_listen = ""\nlog_level = "warn"\n')
    code = "import memcache_rs as mc; print('rc', mc.MetaService.main(), flush=True)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MMC_META_CONFIG_PATH": str(p)},
    )
    try:
        wait_port(port, proc)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "rc 0" in out, out + err
    finally:
        stop(proc, signal.SIGKILL)


def test_meta_service_in_a_thread_with_stop():
    port = free_port()
    assert mc.MetaService.stop() == mc.NOT_STARTED
    assert mc.MetaService.setup(mc.MetaConfig(listen=f"127.0.0.1:{port}", http_listen="", log_level="warn")) == 0
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("rc", mc.MetaService.main()))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert mc.MetaService.main() == mc.ERROR  # one per process
        s = mc.DistributedObjectStore()
        assert s.setup(mc.LocalConfig(meta_addr=f"127.0.0.1:{port}", dram_size="8MB", log_level="warn")) == 0
        assert s.init(0) == 0
        assert s.put("t", b"thread meta") == 0 and s.get("t") == b"thread meta"
        assert s.close() == 0
    finally:
        assert mc.MetaService.stop() == 0
        t.join(timeout=15)
    assert not t.is_alive() and result["rc"] == 0


def test_meta_service_port_in_use():
    port = free_port()
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        r = run_python(
            "import memcache_rs as mc\n"
            f"assert mc.MetaService.setup(mc.MetaConfig(listen='127.0.0.1:{port}', http_listen='')) == 0\n"
            "print('rc', mc.MetaService.main())\n"
        )
    assert "rc -1" in r.stdout, r.stdout + r.stderr
    assert "cannot listen" in r.stderr
