"""The "torch" attention backend: paged attention for mixed steps in plain torch ops.

Runs anywhere torch runs; the reference the faster backends are tested against. New K/V go into the
cache first, so every query reads its keys (the cached prefix and its own chunk alike) from the cache:
- each prefill chunk gathers its request's blocks and attends causally by position (one attention
  call per chunk; a step carries few chunks): SDPA's own causal path for a whole prompt, a mask for a
  chunk after a cached prefix or under a sliding window;
- all decodes at once: padded block tables gather every decode's keys, a length mask hides the padding.

Both use `scaled_dot_product_attention` with a boolean mask (cached prefix, causal, sliding window),
except decodes in bf16 on the CPU: there SDPA measured 6-13x slower than a plain matmul-softmax (16-64
decodes, 512-1024 context, one thread), while for prefill chunks it was as fast or faster in both dtypes
(2-3x in fp32 at 512 x 2048). The matmul-softmax path soft-maxes in fp32, as transformers' eager
attention does. Soft-capped scores (Gemma 2: c tanh(s / c)) take the matmul-softmax path everywhere,
since SDPA has no place to apply the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .context import AttentionContext


@dataclass(slots=True)
class _StepPlan:
    """Per-step gather indices and masks, shared by every layer; masks built on first use per window."""

    prefill_blocks: list[torch.Tensor]
    """Per chunk: [ceil(context_len / block_size)] the blocks holding its context."""
    prefill_masks: dict[int | None, list[torch.Tensor]] = field(default_factory=dict)
    """window -> per chunk: [q_len, context_len] bool, True where the query may see the key."""
    decode_masks: dict[int | None, torch.Tensor] = field(default_factory=dict)
    """window -> [N, 1, 1, L] bool over the padded decode context."""


class TorchAttention:
    """Paged attention with torch ops; see the module docstring."""

    def prepare(self, context: AttentionContext) -> None:
        bs = context.block_size
        tables = context.prefill_block_tables  # [P, max_blocks]
        blocks = [tables[i, : -(-length // bs)] for i, length in enumerate(context.prefill_context_lens)]
        context.backend_state = _StepPlan(prefill_blocks=blocks)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: tuple[torch.Tensor, torch.Tensor],
        context: AttentionContext,
        *,
        scale: float,
        sliding_window: int | None,
        softcap: float | None = None,
    ) -> torch.Tensor:
        k_cache, v_cache = kv_cache  # each [num_blocks, block_size, Hkv, D]
        num_kv_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
        k_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, context.slot_mapping, k)
        v_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, context.slot_mapping, v)
        out = torch.empty_like(q)  # [T, Hq, D]
        for i, start in enumerate(context.prefill_query_starts):
            end = start + context.prefill_query_lens[i]
            out[start:end] = self.attend_prefill(q[start:end], k_cache, v_cache, context, i, scale, sliding_window,
                                                 softcap)
        if context.num_decodes:
            n = context.num_prefill_tokens
            out[n:] = self.attend_decodes(q[n:], k_cache, v_cache, context, scale, sliding_window, softcap)
        return out

    def attend_prefill(
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        context: AttentionContext,
        i: int,
        scale: float,
        sliding_window: int | None,
        softcap: float | None = None,
    ) -> torch.Tensor:
        """Prefill chunk i of the step: q [q_len, Hq, D] over its context in the cache -> [q_len, Hq, D]."""
        plan: _StepPlan = context.backend_state
        length = context.prefill_context_lens[i]
        keys = k_cache[plan.prefill_blocks[i]].flatten(0, 1)[:length]  # [L, Hkv, D]
        values = v_cache[plan.prefill_blocks[i]].flatten(0, 1)[:length]  # [L, Hkv, D]
        if length == q.shape[0] and sliding_window is None and softcap is None:  # a whole prompt: plain causal
            return _attend_chunk(q, keys, values, None, scale)
        mask = _prefill_mask(plan, context, sliding_window, i)  # [q_len, L]
        if softcap is not None:
            return _attend_chunk_capped(q, keys, values, mask, scale, softcap)
        return _attend_chunk(q, keys, values, mask, scale)

    def attend_decodes(
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        context: AttentionContext,
        scale: float,
        sliding_window: int | None,
        softcap: float | None = None,
    ) -> torch.Tensor:
        """Every decode of the step: q [N, Hq, D] over its own context in the cache -> [N, Hq, D]."""
        mask = _decode_mask(context.backend_state, context, sliding_window)  # [N, 1, 1, L]
        return _attend_decodes(q, k_cache, v_cache, context, mask, scale, softcap)


def _attend_chunk(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """q [Tq, Hq, D] over keys/values [L, Hkv, D] where mask [Tq, L] allows -> [Tq, Hq, D]; without a
    mask, a whole prompt (L = Tq) attends causally. SDPA's causal path skips the blocks above the
    diagonal that a mask would only hide: a 1,024-token prompt's attention 16 -> 12 ms a layer on
    the CPU (bf16, 9 heads), with the same bits in fp32 and bf16 as the mask gives (torch 2.13)."""
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], keys.transpose(0, 1)[None], values.transpose(0, 1)[None],
        attn_mask=mask, is_causal=mask is None, scale=scale, enable_gqa=True,
    )  # [1, Hq, Tq, D]
    return out[0].transpose(0, 1)


def _attend_chunk_capped(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, scale: float, softcap: float
) -> torch.Tensor:
    """`_attend_chunk` with soft-capped scores, as transformers' eager attention computes them:
    q [Tq, Hq, D] over keys/values [L, Hkv, D] where mask [Tq, L] allows -> [Tq, Hq, D]."""
    tq, num_heads, head_dim = q.shape
    num_kv_heads = keys.shape[1]
    grouped = q.view(tq, num_kv_heads, num_heads // num_kv_heads, head_dim).permute(1, 2, 0, 3)  # [Hkv, G, Tq, D]
    scores = torch.matmul(grouped, keys.permute(1, 2, 0)[:, None]) * scale  # [Hkv, G, Tq, L]
    scores = torch.tanh(scores / softcap) * softcap
    scores.masked_fill_(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)  # [Hkv, G, Tq, L]
    out = torch.matmul(probs, values.transpose(0, 1)[:, None])  # [Hkv, G, Tq, D]
    return out.permute(2, 0, 1, 3).reshape(tq, num_heads, head_dim)


def _attend_decodes(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    context: AttentionContext,
    mask: torch.Tensor,
    scale: float,
    softcap: float | None = None,
) -> torch.Tensor:
    """Every decode at once: q [N, Hq, D] over its own padded context, mask [N, 1, 1, L] -> [N, Hq, D].

    The query heads of a KV head become that head's query rows, so no key is copied per query head.
    """
    n, num_heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[2]
    length = mask.shape[-1]
    tables = context.decode_block_tables[:, : -(-length // context.block_size)]  # [N, nb]
    keys = k_cache[tables].flatten(1, 2)[:, :length].transpose(1, 2)  # [N, Hkv, L, D]
    values = v_cache[tables].flatten(1, 2)[:, :length].transpose(1, 2)  # [N, Hkv, L, D]
    q = q.view(n, num_kv_heads, num_heads // num_kv_heads, head_dim)  # [N, Hkv, G, D]
    if softcap is None and (q.device.type != "cpu" or q.dtype == torch.float32):
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)  # [N, Hkv, G, D]
        return out.reshape(n, num_heads, head_dim)
    scores = torch.matmul(q, keys.transpose(-1, -2)) * scale  # [N, Hkv, G, L]
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores.masked_fill_(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)  # [N, Hkv, G, L]
    return torch.matmul(probs, values).reshape(n, num_heads, head_dim)  # [N, Hq, D]


def _prefill_mask(plan: _StepPlan, context: AttentionContext, window: int | None, i: int) -> torch.Tensor:
    """[q_len, L] bool for chunk i: key position <= query position, and within the window if any."""
    masks = plan.prefill_masks.get(window)
    if masks is None:
        masks = []
        for q_len, length in zip(context.prefill_query_lens, context.prefill_context_lens):
            device = context.slot_mapping.device
            q_pos = torch.arange(length - q_len, length, device=device)[:, None]  # [q_len, 1]
            k_pos = torch.arange(length, device=device)[None, :]  # [1, L]
            masks.append(_visible(q_pos, k_pos, window))
        plan.prefill_masks[window] = masks
    return masks[i]


def _decode_mask(plan: _StepPlan, context: AttentionContext, window: int | None) -> torch.Tensor:
    """[N, 1, 1, L] bool: each decode sees positions 0 .. its own, within the window if any."""
    mask = plan.decode_masks.get(window)
    if mask is None:
        length = context.decode_max_context_len
        q_pos = (context.decode_context_lens - 1)[:, None]  # [N, 1]
        k_pos = torch.arange(length, device=q_pos.device)[None, :]  # [1, L]
        mask = _visible(q_pos, k_pos, window)[:, None, None, :]  # [N, 1, 1, L]
        plan.decode_masks[window] = mask
    return mask


def _visible(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """Causal (and sliding-window) visibility of key positions from query positions, broadcast."""
    visible = k_pos <= q_pos
    if window is not None:
        visible &= k_pos > q_pos - window
    return visible
