"""vLLM 0.34's own ``MooncakeStoreConnector`` on ``memcache_rs.mooncake``, against a real cluster.

vLLM's connector code (``vllm/distributed/kv_transfer/kv_connector/v1/mooncake/store/``:
connector.py, scheduler.py, worker.py, layout.py, data.py, ...) runs unchanged; only
``import mooncake.store`` resolves to this project's client (``install_as_mooncake()``, the
in-process form of the PYTHONPATH shim). Both connector roles are built the way vLLM builds
them, ``MooncakeStoreConnector(vllm_config, role, kv_cache_config)``, from real vLLM config
objects (``VllmConfig``, ``ModelConfig``, ``CacheConfig``, ``KVTransferConfig``,
``KVCacheConfig`` / ``KVCacheGroupSpec`` / ``FullAttentionSpec``), with the store configured
by the JSON file ``MOONCAKE_CONFIG_PATH`` names (pointing at the test cluster's MetaService),
in a single-rank gloo process group. One request then goes the way the engine moves it:

- save: the scheduler's ``get_num_new_matched_tokens`` (a lookup over vLLM's ZMQ lookup
  socket, answered by the worker's ``LookupKeyServer`` with ``batch_is_exist``: a miss),
  ``update_state_after_alloc``, ``build_connector_meta`` on a real ``SchedulerOutput``; the
  worker's ``wait_for_save`` hands the request to its sending thread, which dedups with
  ``batch_is_exist`` and writes each block with ``batch_put_from_multi_buffers`` from the
  registered (``register_buffer``) KV cache tensors; ``build_connector_worker_meta`` /
  ``update_connector_output`` report the job back;
- the KV cache is zeroed;
- load: a second request with the same prompt: the lookup now hits every full block,
  ``build_connector_meta`` emits a load, the worker's ``start_load_kv`` hands it to its
  receiving thread (``batch_get_into_multi_buffers`` into other blocks of the cache), and
  ``get_finished`` reports it done; the loaded blocks equal the saved ones byte for byte.

Also: the reset path (``reset_cache`` on the scheduler -> ``LookupKeyServer`` ->
``remove_all(force=True)``, then a miss), and ``shutdown`` (``close``, twice).

What does not run here, and why: the KV cache is CPU memory, as everything in this venv is
(CPU-only torch), so the transfers read and write CPU tensors rather than GPU memory; and
``wait_for_save`` records a ``torch.cuda.Event`` to fence the forward pass, which a CPU-only
torch cannot create: the test replaces ``torch.cuda.Event`` by an event with the same
``record``/``synchronize`` methods that does nothing (on the CPU nothing is asynchronous to
fence), vLLM's code itself is untouched. No model is loaded (the connector only reads the
model's shape from its config): the config names a test architecture registered with vLLM's
``ModelRegistry`` in-process, which spares the model-inspection subprocess and the GPU-side
model dependencies. Not covered: TP > 1 (several worker processes), MLA / hybrid (Mamba)
groups, the selective-lease lookup (``VLLM_MOONCAKE_STORE_SELECTIVE_LEASE``, which calls
``batch_probe_key``; not run for lack of time), the tier log (``batch_get_replica_desc``), the custom GPU memory pools (``custom_mem_pool``: NVLink / Barex allocators) and sleep
mode, which need GPUs and RDMA.
"""

import json
import os
import socket
import threading
import time

import pytest

from conftest import require

torch = require("torch")
from memcache_rs.mooncake import MooncakeDistributedStore, install_as_mooncake  # noqa: E402

install_as_mooncake()
connector_mod = require("vllm.distributed.kv_transfer.kv_connector.v1.mooncake.store.connector")

import vllm.envs as envs  # noqa: E402
from torch import nn  # noqa: E402
from vllm.config import (  # noqa: E402
    CacheConfig,
    DeviceConfig,
    KVTransferConfig,
    ModelConfig,
    VllmConfig,
    set_current_vllm_config,
)
from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole  # noqa: E402
from vllm.model_executor.models import ModelRegistry  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402
from vllm.utils.hashing import sha256  # noqa: E402
from vllm.v1.core.block_pool import BlockPool  # noqa: E402
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash  # noqa: E402
from vllm.v1.core.sched.output import (  # noqa: E402
    CachedRequestData,
    KVConnectorBlockState,
    NewRequestData,
    SchedulerOutput,
)
from vllm.v1.kv_cache_interface import (  # noqa: E402
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
    KVCacheTensor,
)
from vllm.v1.outputs import KVConnectorOutput  # noqa: E402
from vllm.v1.request import Request  # noqa: E402

MooncakeStoreConnector = connector_mod.MooncakeStoreConnector

BLOCK = 16
HEADS = 2
HEAD_SIZE = 16
LAYERS = 2
NUM_BLOCKS = 32
ARCH = "MemcacheTestForCausalLM"


class MemcacheTestForCausalLM(nn.Module):
    """Registered so that ModelConfig accepts the test config; never instantiated."""

    def __init__(self, *, vllm_config=None, prefix: str = "") -> None:  # pragma: no cover
        super().__init__()

    def embed_input_ids(self, input_ids):  # pragma: no cover
        raise NotImplementedError

    def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None):  # pragma: no cover
        raise NotImplementedError

    def compute_logits(self, hidden_states):  # pragma: no cover
        raise NotImplementedError


class _CpuEvent:
    """torch.cuda.Event's record/synchronize on the CPU, where there is nothing to fence."""

    def __init__(self, *a, **k) -> None:
        pass

    def record(self, *a, **k) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_env(meta_addr, tmp_path_factory):
    """VllmConfig + KVCacheConfig + a one-rank process group + Mooncake's config file."""
    d = tmp_path_factory.mktemp("vllm-mooncake")
    model_dir = d / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(
        json.dumps(
            {
                "architectures": [ARCH],
                "model_type": "llama",
                "hidden_size": HEADS * 2 * HEAD_SIZE,
                "intermediate_size": 128,
                "num_attention_heads": HEADS * 2,
                "num_key_value_heads": HEADS,
                "head_dim": HEAD_SIZE,
                "num_hidden_layers": LAYERS,
                "vocab_size": 1000,
                "max_position_embeddings": 1024,
                "torch_dtype": "float32",
            }
        )
    )
    cfg = d / "mooncake.json"
    cfg.write_text(
        json.dumps(
            {
                "local_hostname": "127.0.0.1",
                "metadata_server": "P2PHANDSHAKE",
                "master_server_address": meta_addr,
                "protocol": "tcp",
                "device_name": "",
                "global_segment_size": "64MB",
                "local_buffer_size": "16MB",
            }
        )
    )
    saved = {k: os.environ.get(k) for k in ("MOONCAKE_CONFIG_PATH", "VLLM_RPC_BASE_PATH", "HF_HUB_OFFLINE")}
    os.environ["MOONCAKE_CONFIG_PATH"] = str(cfg)
    os.environ["VLLM_RPC_BASE_PATH"] = str(d)  # the lookup socket's directory
    os.environ["HF_HUB_OFFLINE"] = "1"
    ModelRegistry.register_model(ARCH, MemcacheTestForCausalLM)

    model_config = ModelConfig(
        model=str(model_dir), tokenizer=str(model_dir), skip_tokenizer_init=True, dtype="float32", max_model_len=512
    )
    vllm_config = VllmConfig(
        model_config=model_config,
        cache_config=CacheConfig(block_size=BLOCK),
        device_config=DeviceConfig("cpu"),
        kv_transfer_config=KVTransferConfig(
            kv_connector="MooncakeStoreConnector",
            kv_role="kv_both",
            kv_connector_extra_config={"lookup_timeout_s": 10.0},
        ),
    )
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=HEADS, head_size=HEAD_SIZE, dtype=torch.float32)
    layers = [f"model.layers.{i}.self_attn.attn" for i in range(LAYERS)]
    per_layer = NUM_BLOCKS * spec.page_size_bytes
    kv_cache_config = KVCacheConfig(
        num_blocks=NUM_BLOCKS,
        kv_cache_tensors=[
            KVCacheTensor(size=per_layer, layers=[name], layer_stride=per_layer, block_stride=spec.page_size_bytes)
            for name in layers
        ],
        kv_cache_groups=[KVCacheGroupSpec(layers, spec)],
    )

    from vllm.distributed import parallel_state as ps

    with set_current_vllm_config(vllm_config):
        ps.init_distributed_environment(
            world_size=1,
            rank=0,
            distributed_init_method=f"tcp://127.0.0.1:{_free_port()}",
            local_rank=0,
            backend="gloo",
        )
        ps.ensure_model_parallel_initialized(1, 1)
        init_none_hash(sha256)
        try:
            yield vllm_config, kv_cache_config, layers, spec
        finally:
            ps.destroy_model_parallel()
            ps.destroy_distributed_environment()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class Engine:
    """Both connector roles, the KV cache, and the scheduler-side bookkeeping of one step."""

    def __init__(self, vllm_env, monkeypatch) -> None:
        self.vllm_config, self.kv_cache_config, self.layers, spec = vllm_env
        monkeypatch.setattr(torch.cuda, "Event", _CpuEvent)
        self.worker = MooncakeStoreConnector(self.vllm_config, KVConnectorRole.WORKER, self.kv_cache_config)
        self.sched = MooncakeStoreConnector(self.vllm_config, KVConnectorRole.SCHEDULER, self.kv_cache_config)
        self.pool = BlockPool(NUM_BLOCKS, enable_caching=True, hash_block_size=BLOCK)
        self.sched.connector_scheduler.bind_gpu_block_pool(self.pool)
        # Blocks first, as vLLM's kv-cache layouts put them: (blocks, K/V, tokens, heads, head_size).
        self.kv = {
            name: torch.zeros((NUM_BLOCKS, 2, BLOCK, HEADS, HEAD_SIZE), dtype=torch.float32) for name in self.layers
        }
        self.worker.register_kv_caches(self.kv)
        self.hasher = get_request_block_hasher(BLOCK, sha256)
        self._next = 0
        self._recving: set = set()

    def request(self, prompt: list) -> Request:
        self._next += 1
        return Request(
            request_id=f"req-{self._next}",
            prompt_token_ids=prompt,
            sampling_params=SamplingParams(max_tokens=1),
            pooling_params=None,
            block_hasher=self.hasher,
        )

    def schedule(self, req: Request, block_ids: list) -> SchedulerOutput:
        """One scheduler step that prefills the whole of `req` (new) into `block_ids`."""
        new = NewRequestData.from_request(req, (list(block_ids),), list(req.prompt_token_ids))
        out = self._output([new], {req.request_id: req.num_tokens})
        tables = {req.request_id: (list(block_ids),)}
        out.kv_connector_block_state = KVConnectorBlockState(
            req_ids=set(tables), resolve_block_ids=tables.__getitem__, boundary_state_offloads={}
        )
        return out

    def empty_step(self) -> SchedulerOutput:
        return self._output([], {})

    def _output(self, new: list, tokens: dict, finished=()) -> SchedulerOutput:
        return SchedulerOutput(
            scheduled_new_reqs=new,
            scheduled_cached_reqs=CachedRequestData.make_empty(),
            num_scheduled_tokens=tokens,
            total_num_scheduled_tokens=sum(tokens.values()),
            scheduled_spec_decode_tokens={},
            scheduled_encoder_inputs={},
            finished_req_ids=set(finished),
            free_encoder_mm_hashes=[],
        )

    def step(self, meta, save: bool = False, load: bool = False) -> None:
        """The worker side of one step, in the model runner's order (load before the
        forward pass, save after it), then the worker's report to the scheduler."""
        self.worker.bind_connector_metadata(meta)
        try:
            if load:
                self.worker.start_load_kv(None)
            if save:
                self.worker.wait_for_save()
                send = self.worker.connector_worker.kv_send_thread
                _wait(lambda: send.request_queue.unfinished_tasks == 0, "the save job")
            self._recving |= self.worker.get_finished(set())[1] or set()
        finally:
            self.worker.clear_connector_metadata()
        self.sched.update_connector_output(
            KVConnectorOutput(
                finished_recving=None, kv_connector_worker_meta=self.worker.build_connector_worker_meta()
            )
        )

    def finished_recving(self) -> set:
        self.worker.bind_connector_metadata(self.sched.build_connector_meta(self.empty_step()))
        try:
            self._recving |= self.worker.get_finished(set())[1] or set()
        finally:
            self.worker.clear_connector_metadata()
        return self._recving

    def blocks(self, ids: list):
        return torch.stack([torch.stack([self.kv[n][i] for i in ids]) for n in self.layers])

    def close(self) -> None:
        self.worker.shutdown()
        self.sched.shutdown()


@pytest.fixture()
def engine(vllm_env, monkeypatch):
    e = Engine(vllm_env, monkeypatch)
    try:
        yield e
    finally:
        e.close()


def _wait(pred, what: str, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_store_then_load_round_trip(engine):
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks

    sched = engine.sched
    gen = torch.Generator().manual_seed(7)
    n_blocks = 3
    prompt = torch.randint(0, 1000, (n_blocks * BLOCK + 5,), generator=gen).tolist()

    # --- first request: a miss, computed "by the forward pass", saved by the worker ---
    req = engine.request(prompt)
    assert sched.get_num_new_matched_tokens(req, 0) == (0, False)
    src = [4, 9, 2, 7]  # one partial tail block, not saved
    for name in engine.layers:
        engine.kv[name][src] = torch.randn((len(src), 2, BLOCK, HEADS, HEAD_SIZE), generator=gen)
    saved = engine.blocks(src[:n_blocks]).clone()
    sched.update_state_after_alloc(req, KVCacheBlocks(([engine.pool.blocks[i] for i in src],)), 0)
    engine.step(sched.build_connector_meta(engine.schedule(req, src)), save=True)
    worker = engine.worker.connector_worker

    store: MooncakeDistributedStore = worker.store
    keys = [db.store_layout.key_for(0, h) for db in worker.token_dbs for h in req.block_hashes[:n_blocks]]
    assert store.batch_is_exist(keys) == [1] * n_blocks

    # --- the KV cache is wiped ---
    for name in engine.layers:
        engine.kv[name].zero_()

    # --- second request, same prompt: the lookup hits every full block, the worker loads ---
    req2 = engine.request(prompt)
    need, load_async = sched.get_num_new_matched_tokens(req2, 0)
    assert need == n_blocks * BLOCK and load_async is True
    dst = [11, 5, 20]
    # The request now waits for its KV: the load goes to the blocks allocated for it.
    sched.update_state_after_alloc(req2, KVCacheBlocks(([engine.pool.blocks[i] for i in dst],)), need)
    meta = sched.build_connector_meta(engine.empty_step())
    assert [r.req_id for r in meta.requests if r.load_spec is not None and r.load_spec.can_load] == [req2.request_id]
    engine.step(meta, load=True)
    _wait(lambda: req2.request_id in engine.finished_recving(), "the load")
    assert engine.worker.get_block_ids_with_load_errors() == set()
    assert torch.equal(engine.blocks(dst), saved), "loaded KV differs from the saved KV"
    assert not engine.blocks(src).any(), "blocks outside the load were written"


def test_reset_cache_removes_everything_and_shutdown_closes(engine):
    """reset_cache -> the worker's LookupKeyServer -> remove_all(force=True); shutdown -> close."""
    store: MooncakeDistributedStore = engine.worker.connector_worker.store
    assert store.put("vllm-reset-probe", b"x" * 64) == 0
    assert engine.sched.reset_cache() is True
    assert store.is_exist("vllm-reset-probe") == 0
    req = engine.request(list(range(2 * BLOCK)))
    assert engine.sched.get_num_new_matched_tokens(req, 0) == (0, False)
    engine.worker.shutdown()
    assert engine.worker.connector_worker.store is None
    engine.worker.shutdown()  # idempotent, as vLLM's __del__ backstop calls it again
