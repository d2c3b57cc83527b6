"""The "triton" attention backend: the torch model backend's attention layers call it once per layer.

`prepare` turns the step's attention context into per-sequence arrays every layer shares (prefill
chunks first, then decodes, as the flat step orders their tokens); `forward` writes the layer's new K/V
into its cache, then attends every sequence in one launch. The wrappers check shapes, strides and
dtypes before launching: a Triton kernel reads out of range silently.

The context object is the bundled model backend's `AttentionContext`, read by attribute only, so this
plugin imports nothing but the public API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import triton

from sarathi_sdk import ConfigError

from . import kernels
from .interpreter import interpreting

NO_WINDOW = 1 << 30
MAX_HEAD_DIM = 256


@dataclass(frozen=True, slots=True)
class StepSequences:
    """Every sequence of a step, prefill chunks then decodes; tensors int32 on the model's device."""

    q_starts: torch.Tensor  # [S] first query token of each sequence in the flat step
    q_lens: torch.Tensor  # [S] query tokens of each sequence (1 for a decode)
    context_lens: torch.Tensor  # [S] positions the last query sees, itself included
    block_tables: torch.Tensor  # [S, max_blocks] physical blocks, padded with 0 (never read unmasked)
    max_q_len: int


def step_sequences(context: Any) -> StepSequences:
    """The sequences of an `AttentionContext` (see the model backend's `context.py`)."""
    device = context.slot_mapping.device
    num_decodes = context.num_decodes
    q_starts = list(context.prefill_query_starts) + [context.num_prefill_tokens + i for i in range(num_decodes)]
    q_lens = list(context.prefill_query_lens) + [1] * num_decodes
    prefill_tables = context.prefill_block_tables  # [P, B1]
    decode_tables = context.decode_block_tables  # [N, B2]
    width = max(int(prefill_tables.shape[1]) if context.num_prefills else 0,
                int(decode_tables.shape[1]) if num_decodes else 0, 1)
    tables = torch.zeros(len(q_lens), width, dtype=torch.int32, device=device)  # [S, width]
    if context.num_prefills:
        tables[: context.num_prefills, : prefill_tables.shape[1]] = prefill_tables[: context.num_prefills]
    if num_decodes:
        tables[context.num_prefills :, : decode_tables.shape[1]] = decode_tables
    context_lens = torch.cat([
        torch.tensor(context.prefill_context_lens, dtype=torch.int32, device=device),
        context.decode_context_lens.to(device=device, dtype=torch.int32),
    ])
    return StepSequences(
        q_starts=torch.tensor(q_starts, dtype=torch.int32, device=device),
        q_lens=torch.tensor(q_lens, dtype=torch.int32, device=device),
        context_lens=context_lens,
        block_tables=tables,
        max_q_len=max(q_lens, default=0),
    )


def write_kv(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
             slot_mapping: torch.Tensor) -> None:
    """Scatter k, v [T, Hkv, D] into the caches [num_blocks, block_size, Hkv, D] at slot_mapping [T]
    (flat slots, `block * block_size + offset`; negative slots are skipped)."""
    tokens, kv_heads, head_dim = k.shape
    _check(k.shape == v.shape, f"k {tuple(k.shape)} and v {tuple(v.shape)} differ")
    _check(k_cache.shape == v_cache.shape and k_cache.shape[2:] == (kv_heads, head_dim),
           f"caches {tuple(k_cache.shape)} do not hold [.., .., {kv_heads}, {head_dim}]")
    _check(k.dtype == k_cache.dtype == v.dtype == v_cache.dtype, "k, v and the caches must share a dtype")
    _check(slot_mapping.shape == (tokens,), f"slot_mapping {tuple(slot_mapping.shape)} is not [{tokens}]")
    _check(k.stride(2) == 1 and v.stride(2) == 1 and k_cache.is_contiguous() and v_cache.is_contiguous(),
           "head_dim must be contiguous and the caches contiguous")
    if tokens == 0:
        return
    flat_k = k_cache.view(-1, kv_heads, head_dim)  # [num_slots, Hkv, D]
    flat_v = v_cache.view(-1, kv_heads, head_dim)
    kernels.write_kv_kernel[(tokens, kv_heads)](
        k, v, flat_k, flat_v, slot_mapping,
        k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        flat_k.stride(0), flat_k.stride(1),
        HEAD_DIM=head_dim, BLOCK_D=triton.next_power_of_2(head_dim),
    )


def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, sequences: StepSequences,
                    scale: float, sliding_window: int | None, softcap: float | None = None) -> torch.Tensor:
    """q [T, Hq, D] attending, per sequence, to its context in the caches [num_blocks, block_size,
    Hkv, D], scores soft-capped when `softcap` is set; returns [T, Hq, D] in q's dtype."""
    tokens, q_heads, head_dim = q.shape
    _, block_size, kv_heads, cache_dim = k_cache.shape
    _check(cache_dim == head_dim and head_dim <= MAX_HEAD_DIM, f"head_dim {head_dim} vs cache {cache_dim}")
    _check(q_heads % kv_heads == 0, f"{q_heads} query heads are not a multiple of {kv_heads} KV heads")
    _check(q.dtype == k_cache.dtype == v_cache.dtype, "q and the caches must share a dtype")
    _check(q.stride(2) == 1 and k_cache.is_contiguous() and v_cache.is_contiguous(), "unsupported strides")
    out = torch.empty_like(q)  # [T, Hq, D]
    num_seqs = int(sequences.q_lens.shape[0])
    if num_seqs == 0 or tokens == 0:
        return out
    block_m = min(64, max(16, triton.next_power_of_2(sequences.max_q_len)))
    grid = (num_seqs, q_heads, triton.cdiv(sequences.max_q_len, block_m))
    kernels.paged_attention_kernel[grid](
        q, k_cache, v_cache, out,
        sequences.block_tables, sequences.q_starts, sequences.q_lens, sequences.context_lens,
        q.stride(0), q.stride(1), out.stride(0), out.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        sequences.block_tables.stride(0),
        scale, sliding_window or NO_WINDOW, softcap or 1.0,
        BLOCK_SIZE=block_size, GROUP=q_heads // kv_heads, HEAD_DIM=head_dim,
        BLOCK_M=block_m, BLOCK_N=64, BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        DOT_FP32=interpreting() or q.dtype == torch.float32, SOFTCAP=softcap is not None,
    )
    return out


class TritonAttention:
    """Paged attention for mixed steps on Triton kernels (see the module docstring)."""

    def prepare(self, context: Any) -> None:
        context.backend_state = step_sequences(context)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_cache: tuple[torch.Tensor, torch.Tensor],
                context: Any, *, scale: float, sliding_window: int | None,
                softcap: float | None = None) -> torch.Tensor:
        k_cache, v_cache = kv_cache  # each [num_blocks, block_size, Hkv, D]
        write_kv(k, v, k_cache, v_cache, context.slot_mapping)
        return paged_attention(q, k_cache, v_cache, context.backend_state, scale, sliding_window, softcap)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"triton attention: {message}")
