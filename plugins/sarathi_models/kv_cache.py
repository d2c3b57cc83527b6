"""Sizing and allocating the paged KV cache.

Per layer a key and a value cache of shape [num_blocks, block_size, num_kv_heads, head_dim], carved out
of one zeroed tensor. Zeroed, not empty: padded gathers multiply masked (zero-weight) positions by
whatever the cache holds, and 0 * NaN would poison the output. On the CPU the zeros come from `calloc`
(through numpy), whose pages the OS commits only when first written: a cache sized for the worst
case costs resident memory only for the blocks actually used.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from sarathi_sdk import ConfigError, EngineConfig, KVCacheSpec

from .model_config import ModelConfig

CPU_TOKEN_BUDGET = 256
"""The CPU's default per-step token budget: the smallest chunk whose prefill costs no more per token
than one whole 1024-token prompt step (`sarathi bench micro`, docs/benchmarks.md: 2 cores, 256-token
chunks 0.95x, 128-token 1.15x, 64-token 1.55x). A larger budget gains no throughput there and makes
every step, which is what each running decode waits for, proportionally longer: 512 takes ~0.5 s.

Prefix caching defaults on for CUDA only: there the cache is allocated up front, while on the CPU its
zeroed pages are committed as first written, and cached blocks kept after free would grow resident
memory towards the whole cache."""


def bytes_per_block(model: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    """K and V of every layer for `block_size` tokens."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return 2 * model.num_layers * block_size * model.num_kv_heads * model.head_dim * itemsize


def max_model_len(model: ModelConfig, config: EngineConfig) -> int:
    """`config.max_model_len`, or the model's own limit; longer than the model's limit is refused."""
    if config.max_model_len is None:
        return model.max_position_embeddings
    if config.max_model_len > model.max_position_embeddings:
        raise ConfigError(
            f"max_model_len ({config.max_model_len}) exceeds the model's max_position_embeddings "
            f"({model.max_position_embeddings})"
        )
    return config.max_model_len


def kv_cache_spec(model: ModelConfig, config: EngineConfig, device: torch.device, dtype: torch.dtype) -> KVCacheSpec:
    """How many blocks fit in `kv_cache_memory_fraction` of the free memory.

    On CUDA the free memory is measured after the weights were loaded. On the CPU it is the available
    RAM, capped at what `max_num_seqs` requests of `max_model_len` tokens can ever use: the CPU shares
    its memory with everything else, so the cache takes no more than it can need.
    """
    per_block = bytes_per_block(model, config.block_size, dtype)
    model_len = max_model_len(model, config)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        num_blocks = int(free * config.kv_cache_memory_fraction) // per_block
    else:
        num_blocks = int(_available_ram() * config.kv_cache_memory_fraction) // per_block
        blocks_per_seq = -(-model_len // config.block_size)
        max_num_seqs = config.max_num_seqs or 128  # None: token_budget="auto", whose default is at most 128
        num_blocks = min(num_blocks, max_num_seqs * blocks_per_seq)
    return KVCacheSpec(
        bytes_per_block=per_block, num_blocks=num_blocks, max_model_len=model_len, vocab_size=model.vocab_size,
        default_token_budget=CPU_TOKEN_BUDGET if device.type == "cpu" else None,
        default_prefix_caching=True if device.type == "cuda" else None,
    )


def allocate_kv_cache(
    model: ModelConfig, num_blocks: int, block_size: int, device: torch.device, dtype: torch.dtype
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (k_cache, v_cache), each [num_blocks, block_size, Hkv, D]."""
    if num_blocks < 1:
        raise ConfigError(f"the KV cache needs at least one block, got num_blocks={num_blocks}")
    shape = (model.num_layers, 2, num_blocks, block_size, model.num_kv_heads, model.head_dim)
    if device.type == "cpu":
        itemsize = torch.empty((), dtype=dtype).element_size()
        raw = np.zeros(shape[:-1] + (shape[-1] * itemsize,), dtype=np.uint8)  # calloc: lazily committed
        cache = torch.from_numpy(raw).view(dtype)  # [L, 2, num_blocks, block_size, Hkv, D]
    else:
        cache = torch.zeros(shape, device=device, dtype=dtype)  # [L, 2, num_blocks, block_size, Hkv, D]
    return [(cache[i, 0], cache[i, 1]) for i in range(model.num_layers)]


def _available_ram() -> int:
    """MemAvailable from /proc/meminfo (Linux); free physical pages elsewhere."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
