"""A float64 torch reference of paged attention for a mixed step, written position by position."""

from __future__ import annotations

import torch


def reference_attention(q, k_cache, v_cache, seqs, scale, window, softcap=None):
    """q [T, Hq, D]; caches [NB, BS, Hkv, D]; seqs: (q_start, q_len, context_len, block_table) each;
    scores capped to softcap * tanh(s / softcap) when softcap is set. Returns [T, Hq, D] float64."""
    q = q.double()
    block_size, kv_heads = k_cache.shape[1], k_cache.shape[2]
    group = q.shape[1] // kv_heads
    out = torch.zeros_like(q)
    for q_start, q_len, context_len, table in seqs:
        positions = torch.arange(context_len)
        blocks = torch.tensor([table[p // block_size] for p in range(context_len)])
        keys = k_cache[blocks, positions % block_size].double()  # [L, Hkv, D]
        values = v_cache[blocks, positions % block_size].double()
        for i in range(q_len):
            pos = context_len - q_len + i
            visible = positions <= pos
            if window is not None:
                visible &= positions > pos - window
            for h in range(q.shape[1]):
                scores = keys[:, h // group] @ q[q_start + i, h] * scale  # [L]
                if softcap is not None:
                    scores = torch.tanh(scores / softcap) * softcap
                scores[~visible] = float("-inf")
                out[q_start + i, h] = torch.softmax(scores, 0) @ values[:, h // group]
    return out
