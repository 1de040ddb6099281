"""LocalConfig's HA client settings (etcd_endpoints, cluster_name,
leader_wait_ms) and DistributedObjectStore.drain against real processes."""

import time

import memcache_rs as mc
from conftest import free_port


def test_ha_settings_on_local_config():
    c = mc.LocalConfig()
    assert c.etcd_endpoints == []
    assert c.cluster_name == "memcache"
    assert c.leader_wait_ms == 10_000
    assert "etcd_endpoints" not in repr(c)
    c.etcd_endpoints = ["http://10.0.0.21:2379", "http://10.0.0.22:2379"]
    c.cluster_name = "kv-prod"
    c.leader_wait_ms = 500
    assert c.etcd_endpoints == ["http://10.0.0.21:2379", "http://10.0.0.22:2379"]
    assert (c.cluster_name, c.leader_wait_ms) == ("kv-prod", 500)
    assert "etcd_endpoints=" in repr(c) and "kv-prod" in repr(c)
    c.validate()
    k = mc.LocalConfig(etcd_endpoints=["http://127.0.0.1:2379"], cluster_name="a", leader_wait_ms=20)
    assert (k.etcd_endpoints, k.cluster_name, k.leader_wait_ms) == (["http://127.0.0.1:2379"], "a", 20)


def test_no_leader_in_etcd_is_a_clear_error_within_leader_wait(cluster):
    # Nothing listens on this port: no leader can be found there.
    cfg = cluster.local_config(
        dram_size=0, etcd_endpoints=[f"http://127.0.0.1:{free_port()}"], cluster_name="nobody", leader_wait_ms=300
    )
    s = mc.DistributedObjectStore()
    rc = s.setup(cfg)
    if rc == 0:
        rc = s.init(0)
    assert rc == mc.NOT_CONNECTED_META
    s.close()


def test_drain_from_python(cluster, store, kp):
    bad = store.drain(4000)
    assert bad["code"] == mc.INVALID_PARAM and "not a member" in bad["message"], bad
    proc, sid = cluster.start_local()
    key = kp + "x"
    assert store.put(key, b"v" * 5000) == 0
    r = store.drain(sid)
    assert r["code"] == 0, r
    assert r["state"] == "done" and r["unmoved"] == [], r
    # The drained provider leaves and its process exits by itself.
    deadline = time.monotonic() + 30
    while proc.poll() is None:
        assert time.monotonic() < deadline, "drained mmc local did not exit"
        time.sleep(0.05)
    assert proc.returncode == 0
    i = cluster.local_procs.index(proc)
    cluster.local_procs.pop(i)
    cluster.local_ids.pop(i)
    assert store.get(key) == b"v" * 5000
