"""The memcache_hybrid-compatible surface: names, argument order, defaults,
type stubs and docstrings."""

import ast
import inspect
from pathlib import Path

import memcache_rs as mc

STORE_METHODS = {
    "setup": ["config"],
    "init": ["device_id", "init_bm"],
    "close": [],
    "get_local_service_id": [],
    "put": ["key", "buf", "replicateConfig"],
    "put_batch": ["keys", "values", "replicateConfig"],
    "get": ["key"],
    "get_batch": ["keys"],
    "put_from": ["key", "buffer_ptr", "size", "direct", "replicateConfig"],
    "batch_put_from": ["keys", "buffer_ptrs", "sizes", "direct", "replicateConfig"],
    "get_into": ["key", "buffer_ptr", "size", "direct"],
    "batch_get_into": ["keys", "buffer_ptrs", "sizes", "direct"],
    "put_from_layers": ["key", "buffer_ptrs", "sizes", "direct", "replicateConfig"],
    "batch_put_from_layers": ["keys", "buffer_ptrs", "sizes", "direct", "replicateConfig"],
    "get_into_layers": ["key", "buffer_ptrs", "sizes", "direct"],
    "batch_get_into_layers": ["keys", "buffer_ptrs", "sizes", "direct"],
    "batch_put_from_multi_buffers": ["keys", "all_buffer_ptrs", "all_sizes", "config", "direct"],
    "batch_get_into_multi_buffers": ["keys", "all_buffer_ptrs", "all_sizes", "prefer_alloc_in_same_node", "direct"],
    "is_exist": ["key"],
    "batch_is_exist": ["keys"],
    "remove": ["key"],
    "remove_batch": ["keys"],
    "remove_all": [],
    "get_key_info": ["key"],
    "batch_get_key_info": ["keys"],
    "register_buffer": ["buffer_ptr", "size"],
    "unregister_buffer": ["buffer_ptr", "size"],
}

DEFAULTS = {
    ("init", "device_id"): 0,
    ("init", "init_bm"): True,
    ("put_from", "direct"): 3,
    ("batch_put_from", "direct"): 3,
    ("put_from_layers", "direct"): 3,
    ("batch_put_from_layers", "direct"): 3,
    ("get_into", "direct"): 2,
    ("batch_get_into", "direct"): 2,
    ("get_into_layers", "direct"): 2,
    ("batch_get_into_layers", "direct"): 2,
    ("put", "replicateConfig"): None,
    ("put_from", "replicateConfig"): None,
}


def params(fn):
    return [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def test_module_names():
    for name in ("DistributedObjectStore", "LocalConfig", "MetaConfig", "MetaService", "ReplicateConfig", "KeyInfo"):
        assert hasattr(mc, name), name
    assert mc.__version__
    assert (mc.OK, mc.ERROR, mc.INVALID_PARAM, mc.NOT_ENOUGH_MEMORY, mc.LEASE_EXPIRED) == (0, -1, -3000, -3016, -3106)
    assert mc.NO_PROVIDER == -3019 and "NO_PROVIDER" in mc.__all__
    assert int(mc.MmcCopyDirect.SMEMB_COPY_H2G) == 3 and int(mc.MmcCopyDirect.SMEMB_COPY_G2H) == 2
    for name in mc.__all__:
        assert hasattr(mc, name), name


def test_store_argument_names_order_and_defaults():
    for method, names in STORE_METHODS.items():
        fn = getattr(mc.DistributedObjectStore, method)
        got = [p.name for p in params(fn)]
        assert got == names, (method, got)
        for p in params(fn):
            key = (method, p.name)
            if key in DEFAULTS:
                assert p.default == DEFAULTS[key], key


def test_keyword_calls_work(store, kp):
    import numpy as np

    a = np.arange(64, dtype=np.uint8)
    rc = mc.ReplicateConfig(replicaNum=1)
    assert store.put_from(key=kp + "k", buffer_ptr=a.ctypes.data, size=64, direct=3, replicateConfig=rc) == 0
    b = np.zeros(64, dtype=np.uint8)
    assert store.get_into(key=kp + "k", buffer_ptr=b.ctypes.data, size=64, direct=2) == 0
    assert np.array_equal(a, b)
    assert store.batch_is_exist(keys=[kp + "k"]) == [1]
    assert store.put(key=kp + "p", buf=b"x", replicateConfig=rc) == 0
    assert store.put_batch(keys=[kp + "q"], values=[b"y"], replicateConfig=rc) == 0


def test_meta_service_and_config_surface():
    assert callable(mc.MetaService.setup) and callable(mc.MetaService.main) and callable(mc.MetaService.stop)
    for cls in (mc.LocalConfig, mc.MetaConfig):
        c = cls()
        assert c.str() == str(c)
    for m in ("size", "loc_list", "type_list", "__str__"):
        assert hasattr(mc.KeyInfo, m)


def stub_classes():
    stub = Path(mc.__file__).with_name("__init__.pyi")
    tree = ast.parse(stub.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            out[node.name] = names
    return out


def test_type_stubs_cover_every_public_name():
    assert Path(mc.__file__).with_name("py.typed").exists()
    stubs = stub_classes()
    for cls_name in ("DistributedObjectStore", "LocalConfig", "MetaConfig", "MetaService", "ReplicateConfig", "KeyInfo"):
        cls = getattr(mc, cls_name)
        public = {n for n in dir(cls) if not n.startswith("_")}
        assert public <= stubs[cls_name], (cls_name, public - stubs[cls_name])
        assert stubs[cls_name] - {"__init__", "__str__"} <= public, (cls_name, stubs[cls_name] - public)


def test_docstrings_everywhere():
    assert mc.__doc__ and "memcache_hybrid" in mc.__doc__
    for cls_name in ("DistributedObjectStore", "LocalConfig", "MetaConfig", "MetaService", "ReplicateConfig", "KeyInfo"):
        cls = getattr(mc, cls_name)
        assert cls.__doc__, cls_name
        for n in dir(cls):
            if n.startswith("_") or n in ("replicaNum", "preferredLocalServiceIDs"):
                continue
            assert getattr(cls, n).__doc__, f"{cls_name}.{n} has no docstring"
