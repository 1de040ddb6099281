"""SGLang host KV pools on CPU for the HiCache storage-backend tests, and byte checks on them.

The host pools are SGLang's own (`MHATokenToKVPoolHost`, `MLATokenToKVPoolHost`),
built from SGLang's own device pools (`MHATokenToKVPool`, `MLATokenToKVPool`)
allocated on the CPU, unpinned (no CUDA here). The one stand-in is the device
side of MLA `page_first_kv_split`: that layout mirrors the Ascend NPU device
pool's separate k / v / indexer buffers (`MLASplitBuffers`), which only exists
on NPUs, so it is described here with CPU tensors of the same shapes; the host
pool built from it is SGLang's unchanged.
"""

import uuid

import torch

from sglang.srt.mem_cache.device_pool_info import MLABufferInfo, MLASplitBuffers
from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, MLATokenToKVPool
from sglang.srt.mem_cache.pool_host.mha import MHATokenToKVPoolHost
from sglang.srt.mem_cache.pool_host.mla import MLATokenToKVPoolHost

PAGE_SIZE = 4
LAYERS = 3
TOKENS = 64 * PAGE_SIZE  # device pool size; the host pool is twice that
HEADS, HEAD_DIM = 2, 8  # MHA
KV_LORA_RANK, ROPE_DIM = 16, 8  # MLA
INDEX_DIM = 8  # MLA kv_split: DSA indexer K width
DTYPE = torch.bfloat16


def mha_host_pool(layout: str) -> MHATokenToKVPoolHost:
    dev = MHATokenToKVPool(TOKENS, PAGE_SIZE, DTYPE, HEADS, HEAD_DIM, LAYERS, "cpu", False)
    info = dev.get_device_pool_infos()[0].buffer_info
    return MHATokenToKVPoolHost(
        info,
        2.0,
        0,
        PAGE_SIZE,
        layout,
        pin_memory=False,
        device="cpu",
        device_capacity_tokens=dev.size,
        start_layer=dev.start_layer,
        end_layer=dev.end_layer,
    )


def mla_host_pool(layout: str) -> MLATokenToKVPoolHost:
    dev = MLATokenToKVPool(TOKENS, PAGE_SIZE, DTYPE, KV_LORA_RANK, ROPE_DIM, LAYERS, "cpu", False)
    info = dev.get_device_pool_infos()[0].buffer_info
    if layout == "page_first_kv_split":
        # Device stand-in: the NPU pool's separate buffers, as CPU tensors.
        rows = TOKENS + PAGE_SIZE
        info = MLABufferInfo(
            buffers=MLASplitBuffers(
                k=torch.zeros((LAYERS, rows, 1, KV_LORA_RANK), dtype=DTYPE),
                v=torch.zeros((LAYERS, rows, 1, ROPE_DIM), dtype=DTYPE),
                index_k=torch.zeros((LAYERS, rows, 1, INDEX_DIM), dtype=DTYPE),
                index_scales=torch.zeros((LAYERS, rows, 1, 1), dtype=torch.float32),
                index_layer_indices=tuple(range(LAYERS)),
                k_width=KV_LORA_RANK,
                v_width=ROPE_DIM,
                index_width=INDEX_DIM,
            ),
            data_ptrs=None,
            layer_indices=tuple(range(LAYERS)),
            device_layer_num=LAYERS,
            page_size=PAGE_SIZE,
            kv_lora_rank=KV_LORA_RANK,
            qk_rope_head_dim=ROPE_DIM,
            kv_cache_dim=KV_LORA_RANK + ROPE_DIM,
            dtype=DTYPE,
            device=torch.device("cpu"),
        )
    return MLATokenToKVPoolHost(
        info,
        2.0,
        0,
        PAGE_SIZE,
        layout,
        pin_memory=False,
        device="cpu",
        device_capacity_tokens=dev.size,
        start_layer=dev.start_layer,
        end_layer=dev.end_layer,
        target_layer_num=dev.layer_num,
        override_kv_cache_dim=dev.kv_cache_dim,
    )


def host_pool(model: str, layout: str):
    pool = mha_host_pool(layout) if model == "mha" else mla_host_pool(layout)
    for buf in pool_buffers(pool):  # random bytes everywhere
        b = buf.view(torch.uint8).view(-1)
        b.copy_(torch.randint(0, 256, (b.numel(),), dtype=torch.uint8))
    return pool


def pool_buffers(pool):
    if getattr(pool, "layout", None) == "page_first_kv_split":
        names = ("k_buffer", "v_buffer", "index_k_buffer", "index_k_scale_buffer")
        return [getattr(pool, n) for n in names if getattr(pool, n, None) is not None]
    return [pool.kv_buffer]


def page_bytes(pool, index: int) -> bytes:
    """The bytes of the page starting at host index `index`, through SGLang's accessors."""
    if pool.layout == "page_first_kv_split":
        p = index // pool.page_size
        return b"".join(bytes(buf[p].contiguous().view(torch.uint8).view(-1).numpy()) for buf in pool_buffers(pool))
    return bytes(pool.get_data_page(index, flat=True).contiguous().view(torch.uint8).numpy())


def pages_bytes(pool, indices: torch.Tensor):
    return [page_bytes(pool, int(i)) for i in indices[:: pool.page_size]]


def storage_config(mla: bool, layout: str, extra: dict, **overrides) -> HiCacheStorageConfig:
    args = dict(
        tp_rank=0,
        tp_size=1,
        pp_rank=0,
        pp_size=1,
        attn_cp_rank=0,
        attn_cp_size=1,
        is_mla_model=mla,
        enable_storage_metrics=True,
        is_page_first_layout=layout.startswith("page_first"),
        model_name=f"test/model-{uuid.uuid4().hex[:8]}",
        extra_config=dict(extra),
    )
    args.update(overrides)
    return HiCacheStorageConfig(**args)


def page_keys(n: int):
    return [uuid.uuid4().hex for _ in range(n)]
