"""A drop-in for the original MemCache (memcache_hybrid): its module name, its
config files (``ock.mmc.<key> = value`` through MMC_LOCAL_CONFIG_PATH /
MMC_META_CONFIG_PATH), every attribute of its LocalConfig / MetaConfig, its
protocol names, and one client per process shared by every store."""

import gc
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import memcache_rs as mc
from conftest import free_port, mmc_bin, run_python, stop, wait_port

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "crates" / "mmc-config" / "tests" / "data"

# Every attribute of the original's LocalConfig / MetaConfig (its python
# binding), with a value to set that differs from the default.
LOCAL_ATTRS = {
    "meta_service_url": "tcp://127.0.0.1:5999",
    "config_store_url": "tcp://127.0.0.1:6999",
    "log_level": "debug",
    "world_size": 8,
    "protocol": "device_sdma",
    "hcom_url": "tcp://127.0.0.1:7999",
    "dram_size": 32 << 20,
    "hbm_size": "1GB",
    "max_dram_size": "128GB",
    "max_hbm_size": "2GB",
    "client_retry_milliseconds": 1500,
    "client_timeout_seconds": 7,
    "read_thread_pool_size": 16,
    "write_thread_pool_size": 8,
    "aggregate_io": False,
    "aggregate_num": 64,
    "ubs_io_enable": True,
    "memory_pool_mode": "expanded",
    "log_path": "/tmp/mmc-attr-logs",
    "log_rotation_file_size": 5,
    "log_rotation_file_count": 7,
}
META_ATTRS = {
    "meta_service_url": "tcp://127.0.0.1:5998",
    "config_store_url": "tcp://127.0.0.1:6998",
    "metrics_url": "http://127.0.0.1:8998",
    "ha_enable": False,
    "log_level": "warn",
    "log_path": "/tmp/mmc-attr-meta-logs",
    "log_rotation_file_size": 3,
    "log_rotation_file_count": 4,
    "evict_threshold_high": 70,
    "evict_threshold_low": 60,
    "ubs_io_enable": True,
}
TLS_SUFFIXES = ["ca_path", "ca_crl_path", "cert_path", "key_path", "key_pass_path", "package_path", "decrypter_path"]
for prefix in ("tls_", "config_store_tls_"):
    LOCAL_ATTRS[prefix + "enable"] = True
    META_ATTRS[prefix + "enable"] = True
    for suffix in TLS_SUFFIXES:
        LOCAL_ATTRS[prefix + suffix] = f"/etc/mmc/{prefix}{suffix}.pem"
        META_ATTRS[prefix + suffix] = f"/etc/mmc/{prefix}{suffix}.pem"
LOCAL_ATTRS["hcom_tls_enable"] = True
for suffix in TLS_SUFFIXES:
    if suffix != "package_path":
        LOCAL_ATTRS["hcom_tls_" + suffix] = f"/etc/mmc/hcom_{suffix}.pem"


# ---- the memcache_hybrid module --------------------------------------------------


def test_memcache_hybrid_is_memcache_rs():
    import memcache_hybrid

    for name in ("DistributedObjectStore", "KeyInfo", "LocalConfig", "MetaConfig", "MetaService", "ReplicateConfig"):
        assert getattr(memcache_hybrid, name) is getattr(mc, name), name
        assert name in memcache_hybrid.__all__
    assert set(mc.__all__) <= set(memcache_hybrid.__all__)
    assert memcache_hybrid.__version__ == mc.__version__
    # It ships in the wheel next to memcache_rs.
    pyproject = (ROOT / "crates" / "mmc-python" / "pyproject.toml").read_text()
    assert 'python-packages = ["memcache_hybrid"]' in pyproject
    assert Path(memcache_hybrid.__file__).parent.name == "memcache_hybrid"


def test_original_style_program_with_an_original_config_file(cluster, tmp_path):
    """A program written for the original (import memcache_hybrid, no setup,
    MMC_LOCAL_CONFIG_PATH naming an ock.mmc.* file) runs unchanged."""
    conf = tmp_path / "mmc-local.conf"
    conf.write_text((DATA / "mmc-local.conf").read_text().replace("127.0.0.1:5000", cluster.meta_addr))
    code = textwrap.dedent(
        """
        from memcache_hybrid import DistributedObjectStore, ReplicateConfig
        store = DistributedObjectStore()
        print("init", store.init(0))
        me = store.get_local_service_id()
        print("put", store.put("hybrid-key", b"hybrid value", ReplicateConfig()))
        print("get", store.get("hybrid-key"))
        print("exist", store.batch_is_exist(["hybrid-key", "hybrid-nope"]))
        print("local", store.get_key_info("hybrid-key").loc_list() != [])
        print("remove", store.remove("hybrid-key"))
        print("close", store.close())
        """
    )
    r = run_python(code, env={"MMC_LOCAL_CONFIG_PATH": str(conf)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == [
        "init 0",
        "put 0",
        "get b'hybrid value'",
        "exist [1, 0]",
        "local True",
        "remove 0",
        "close 0",
    ], r.stdout + r.stderr
    # One warning per key without effect, naming it, and the protocol fallback.
    for key in ("ock.mmc.local_service.world_size", "ock.mmc.local_service.hcom_url", "ock.mmc.client.aggregate.io"):
        assert r.stderr.count(key) == 1, (key, r.stderr)
    assert "`host_rdma` is not available here" in r.stderr, r.stderr


def test_bad_original_config_file_names_line_and_key(tmp_path):
    conf = tmp_path / "mmc-local.conf"
    conf.write_text("ock.mmc.log_level = info\nock.mmc.local_service.world_size = lots\n")
    r = run_python(
        "import memcache_hybrid as m; print('init', m.DistributedObjectStore().init(0))",
        env={"MMC_LOCAL_CONFIG_PATH": str(conf)},
    )
    assert r.returncode == 0, r.stderr
    assert "init -3000" in r.stdout
    assert f"{conf}:2: `ock.mmc.local_service.world_size`" in r.stderr and "lots" in r.stderr, r.stderr
    with pytest.raises(ValueError, match="world_size"):
        mc.LocalConfig.load(str(conf))


def test_meta_service_from_an_original_meta_file(tmp_path):
    """MetaService.main() reads MMC_META_CONFIG_PATH in the original's format
    (address, HTTP address, log_path with log files)."""
    port, http = free_port(), free_port()
    logs = tmp_path / "mmc-logs"
    conf = tmp_path / "mmc-meta.conf"
    conf.write_text(
        (DATA / "mmc-meta.conf")
        .read_text()
        .replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        .replace("127.0.0.1:8000", f"127.0.0.1:{http}")
        .replace("LOG_DIR", str(logs))
    )
    env = dict(os.environ, MMC_META_CONFIG_PATH=str(conf))
    meta = subprocess.Popen(
        [sys.executable, "-c", "import memcache_hybrid as m; print('rc', m.MetaService.main(), flush=True)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_port(port, meta)
        wait_port(http, meta)
        s = mc.DistributedObjectStore()
        assert s.setup(mc.LocalConfig(meta_addr=f"127.0.0.1:{port}", dram_size="8MB", log_level="warn")) == 0
        assert s.init(0) == 0
        assert s.put("via-ock-meta", b"v") == 0 and s.get("via-ock-meta") == b"v"
        assert s.close() == 0
        os.kill(meta.pid, signal.SIGTERM)
        out, err = meta.communicate(timeout=15)
        assert "rc 0" in out, err
    finally:
        stop(meta)
    log = (logs / "logs" / "mmc-meta.log").read_text()
    assert "membership" in log and 'event="join"' in log and 'event="leave"' in log, log
    assert "ock.mmc.meta_service.config_store_url" in err, err


# ---- attributes -----------------------------------------------------------------


@pytest.mark.parametrize("cls,attrs", [(mc.LocalConfig, LOCAL_ATTRS), (mc.MetaConfig, META_ATTRS)], ids=["local", "meta"])
def test_every_original_attribute_is_settable_and_reads_back(cls, attrs):
    c = cls()
    for name, value in attrs.items():
        setattr(c, name, value)
    for name, value in attrs.items():
        assert getattr(c, name) == value, name
    # The keyword constructor takes them too.
    k = cls(**attrs)
    for name, value in attrs.items():
        assert getattr(k, name) == value, name
    assert repr(k) == repr(c)


def test_attributes_with_an_effect_change_the_config():
    c = mc.LocalConfig()
    c.client_timeout_seconds = 7
    c.client_retry_milliseconds = 1500
    c.log_path = "/tmp/somewhere"
    c.log_rotation_file_size = 5
    c.log_rotation_file_count = 7
    c.tls_enable = True
    c.tls_ca_path, c.tls_cert_path, c.tls_key_path = "/c/ca.pem", "/c/cert.pem", "/c/key.pem"
    c.hcom_tls_enable = True
    assert (c.rpc_timeout_ms, c.transfer_timeout_ms) == (7000, 7000)
    t = c.to_toml()
    for line in (
        "meta_retry_ms = 1500",
        'log_path = "/tmp/somewhere"',
        'log_rotation_size = "5MB"',
        "log_rotation_count = 7",
        "enable = true",
        "mutual = true",
        "transfer = true",
        'ca = "/c/ca.pem"',
        'cert = "/c/cert.pem"',
        'key = "/c/key.pem"',
    ):
        assert line in t, (line, t)
    c.validate()
    m = mc.MetaConfig(log_path="/tmp/m", log_rotation_file_size=2, tls_enable=True, tls_ca_path="/c/ca.pem")
    t = m.to_toml()
    assert 'log_path = "/tmp/m"' in t and 'log_rotation_size = "2MB"' in t and "mutual = true" in t, t
    with pytest.raises(ValueError, match="meta.security.tls.cert"):
        m.validate()
    for bad in (0, 501):
        with pytest.raises(ValueError, match="log_rotation_file_size"):
            m.log_rotation_file_size = bad
    with pytest.raises(ValueError, match="client_timeout_seconds"):
        c.client_timeout_seconds = 0
    with pytest.raises(TypeError):
        c.world_size = "eight"
    # Sizes are strings or integers (SGLang's npu_memcache README: "string / integer").
    c.hbm_size = 5
    assert c.hbm_size == "5"
    c.max_dram_size = 1 << 30
    assert c.max_dram_size == str(1 << 30)
    with pytest.raises(TypeError, match="a size is a string"):
        c.max_hbm_size = [1]


@pytest.mark.parametrize(
    "name,used",
    [
        ("host_rdma", "auto"),
        ("host_urma", "auto"),
        ("device_rdma", "auto"),
        ("device_sdma", "auto"),
        ("host_shm", "auto"),
        ("host_tcp", "tcp"),
        ("auto", "auto"),
        ("tcp", "tcp"),
    ],
)
def test_protocol_names(name, used):
    c = mc.LocalConfig(protocol=name)
    assert f'protocol = "{used}"' in c.to_toml()
    # Transports not built in read back as set; the others as the path used.
    assert c.protocol == (name if name in ("host_rdma", "host_urma", "device_rdma", "device_sdma") else used)


def test_bad_protocol_names_the_value():
    with pytest.raises(ValueError, match="carrier_pigeon"):
        mc.LocalConfig().protocol = "carrier_pigeon"


def test_no_effect_attributes_and_device_protocols_warn_once_per_process():
    code = textwrap.dedent(
        """
        import memcache_hybrid as m
        c = m.LocalConfig(dram_size=0, meta_addr="127.0.0.1:1")
        c.protocol = "device_sdma"
        c.protocol = "device_sdma"
        c.world_size = 8
        c.aggregate_num = 64
        c.read_thread_pool_size = 32  # the default: nothing to warn about
        s = m.DistributedObjectStore()
        assert s.setup(c) == 0 and s.setup(c) == 0
        m.DistributedObjectStore().setup(c)
        mc = m.MetaConfig(config_store_url="tcp://10.0.0.1:6000")
        assert m.MetaService.setup(mc) == 0 and m.MetaService.setup(mc) == 0
        print("done")
        """
    )
    r = run_python(code)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr
    err = r.stderr
    assert err.count("device_sdma") == 1, err
    assert err.count("LocalConfig.world_size has no effect") == 1, err
    assert err.count("LocalConfig.aggregate_num has no effect") == 1, err
    assert "read_thread_pool_size" not in err, err
    assert err.count("MetaConfig.config_store_url has no effect") == 1, err


def test_client_retry_milliseconds_waits_for_the_metaservice():
    port = free_port()
    cfg = mc.LocalConfig(meta_addr=f"127.0.0.1:{port}", dram_size=0, log_level="error")
    s = mc.DistributedObjectStore()
    assert s.setup(cfg) == 0
    assert s.init(0) == mc.NOT_CONNECTED_META  # no retry by default
    cfg.client_retry_milliseconds = 600_000
    assert s.setup(cfg) == 0
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("rc", s.init(0)))
    t.start()
    meta = subprocess.Popen(
        [mmc_bin(), "meta", "--listen", f"127.0.0.1:{port}", "--http", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, meta)
        t.join(timeout=120)
        assert result.get("rc") == 0
        assert s.get_local_service_id() > 0
        assert s.close() == 0
    finally:
        stop(meta)


def test_log_path_gives_the_client_a_log_file(cluster, tmp_path):
    code = textwrap.dedent(
        f"""
        import memcache_rs as m
        c = m.LocalConfig(meta_addr={cluster.meta_addr!r}, dram_size="8MB", log_level="info",
                          log_path={str(tmp_path)!r}, log_rotation_file_count=2)
        s = m.DistributedObjectStore()
        assert s.setup(c) == 0
        print("init", s.init(0))
        print("close", s.close())
        """
    )
    r = run_python(code)
    assert r.returncode == 0 and "init 0" in r.stdout and "close 0" in r.stdout, r.stdout + r.stderr
    log = tmp_path / "logs" / "mmc-local.log"
    assert log.exists() and log.stat().st_size > 0, list(tmp_path.rglob("*"))
    text = log.read_text()
    assert "registered" in text and "INFO" in text and "\x1b" not in text, text


# ---- one client per process -------------------------------------------------------------


def test_two_stores_share_one_client_and_lose_nothing(cluster, store, kp):
    cfg = dict(dram_size="16MB")  # a configuration of its own (not the session store's)
    a = mc.DistributedObjectStore()
    assert a.setup(cluster.local_config(**cfg)) == 0
    assert a.init(0) == 0
    me = a.get_local_service_id()
    assert me != store.get_local_service_id()
    here = mc.ReplicateConfig(1, [me])
    vals = {f"{kp}{i}": np.full(4096, i, dtype=np.uint8) for i in range(64)}
    for k, v in vals.items():
        assert a.put(k, v, here) == 0
    assert all(a.get_key_info(k).loc_list() == [me] for k in vals)

    # A second store with the same configuration shares the client: same
    # service id, every object still there.
    b = mc.DistributedObjectStore()
    assert b.setup(cluster.local_config(**cfg)) == 0
    assert b.init(0) == 0
    assert b.get_local_service_id() == me
    assert b.batch_is_exist(list(vals)) == [1] * len(vals)
    assert b.put(kp + "from-b", b"b", here) == 0 and a.get(kp + "from-b") == b"b"

    # Closing one store does not take the client from the other.
    assert a.close() == 0
    assert a.get_local_service_id() == mc.NOT_INITIALIZED
    assert b.get_local_service_id() == me
    for k, v in vals.items():
        assert b.get(k) == v.tobytes()

    # A store collected without close() does not make the client leave:
    # the next store shares it, objects intact.
    c = mc.DistributedObjectStore()
    assert c.setup(cluster.local_config(**cfg)) == 0
    assert c.init(0) == 0
    del c
    gc.collect()
    assert store.batch_is_exist(list(vals)) == [1] * len(vals)
    d = mc.DistributedObjectStore()
    assert d.setup(cluster.local_config(**cfg)) == 0
    assert d.init(0) == 0
    assert d.get_local_service_id() == me

    # The last close() leaves the cluster: its segment's objects go with it.
    assert b.close() == 0
    assert store.is_exist(kp + "0") == 1  # d still holds the client
    assert d.close() == 0
    assert store.batch_is_exist(list(vals) + [kp + "from-b"]) == [0] * (len(vals) + 1)


def test_a_store_whose_object_was_collected_keeps_its_objects_in_a_fresh_interpreter(cluster):
    code = textwrap.dedent(
        f"""
        import gc, memcache_hybrid as m
        def cfg():
            return m.LocalConfig(meta_addr={cluster.meta_addr!r}, dram_size="8MB", log_level="warn")
        def first():
            s = m.DistributedObjectStore()
            assert s.setup(cfg()) == 0 and s.init(0) == 0
            me = s.get_local_service_id()
            assert s.put("collected-key", b"kept", m.ReplicateConfig(1, [me])) == 0
            return me
        me = first()
        gc.collect()
        t = m.DistributedObjectStore()
        assert t.setup(cfg()) == 0 and t.init(0) == 0
        print("same", t.get_local_service_id() == me)
        print("get", t.get("collected-key"))
        print("remove", t.remove("collected-key"))
        """
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["same True", "get b'kept'", "remove 0"], r.stdout + r.stderr


def make_pki(d: Path) -> dict:
    """A CA, a server certificate for 127.0.0.1 and a client certificate,
    made with the openssl command (PEM, unencrypted PKCS#8 keys)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=mmc test ca", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "subjectAltName=DNS:mmc-client\nextendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" + ext)
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=mmc {name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_tls_attributes_secure_the_metaservice_connection(tmp_path):
    """MetaConfig / LocalConfig tls_* attributes turn on TLS with client
    certificates, as the original's do."""
    pki = make_pki(tmp_path)
    port = free_port()
    code = textwrap.dedent(
        f"""
        import memcache_hybrid as m
        c = m.MetaConfig(meta_service_url="tcp://127.0.0.1:{port}", metrics_url="", log_level="warn")
        c.tls_enable = True
        c.tls_ca_path, c.tls_cert_path, c.tls_key_path = {pki["ca.pem"]!r}, {pki["server.pem"]!r}, {pki["server.key"]!r}
        assert m.MetaService.setup(c) == 0
        print("rc", m.MetaService.main(), flush=True)
        """
    )
    meta = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, meta)
        plain = mc.DistributedObjectStore()
        assert plain.setup(mc.LocalConfig(meta_addr=f"127.0.0.1:{port}", dram_size=0, rpc_timeout_ms=1000,
                                          log_level="error")) == 0
        assert plain.init(0) in (mc.TIMEOUT, mc.NOT_CONNECTED_META)  # a TLS port refuses plain TCP
        cfg = mc.LocalConfig(meta_addr=f"127.0.0.1:{port}", dram_size="8MB", log_level="warn")
        cfg.tls_enable = True
        cfg.tls_ca_path, cfg.tls_cert_path, cfg.tls_key_path = pki["ca.pem"], pki["client.pem"], pki["client.key"]
        s = mc.DistributedObjectStore()
        assert s.setup(cfg) == 0
        assert s.init(0) == 0
        assert s.put("tls-attr", b"secret") == 0 and s.get("tls-attr") == b"secret"
        assert s.close() == 0
        os.kill(meta.pid, signal.SIGTERM)
        out, err = meta.communicate(timeout=15)
        assert "rc 0" in out, err
    finally:
        stop(meta)
