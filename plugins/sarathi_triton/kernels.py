"""The Triton kernels: scatter a step's new K/V into the paged cache, and paged attention over every
sequence of a mixed step (prefill chunks and decodes alike) in one launch.

A step is a list of "sequences": each prefill chunk is one, with its query tokens contiguous in the
flat step and its context (the cached prefix plus the chunk itself) in the paged cache; each decode is
one with a single query token. Query token i of a sequence of `q_len` tokens and `context_len`
context is at position `context_len - q_len + i` and sees every key position up to its own (causal),
and only the last `window` of them with a sliding window. Keys and values are read in place from the
cache through the sequence's block table: `block_tables[s, pos // BLOCK_SIZE]` is the physical block,
`pos % BLOCK_SIZE` the slot in it. Softmax is online (flash attention), accumulated in fp32.

`tl.dot` needs tiles of at least 16 rows and columns on a GPU, so decodes use a 16-row query tile of
which one row is live. Under the interpreter bf16 `tl.dot` is unreliable, so `DOT_FP32` casts the
operands to fp32 there (and for fp32 models).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def write_kv_kernel(
    k_ptr, v_ptr,  # [T, Hkv, D] the step's new keys and values
    k_cache_ptr, v_cache_ptr,  # [num_slots, Hkv, D] the layer's caches, blocks flattened
    slot_ptr,  # [T] int64 flat slot of each token; negative means skip (padding)
    stride_kt, stride_kh, stride_vt, stride_vh,
    stride_cs, stride_ch,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
):
    token = tl.program_id(0)
    head = tl.program_id(1)
    slot = tl.load(slot_ptr + token)
    d = tl.arange(0, BLOCK_D)
    mask = (d < HEAD_DIM) & ((d * 0 + slot) >= 0)  # a tensor compare: the interpreter refuses scalar masks
    target = tl.maximum(slot, 0) * stride_cs + head * stride_ch + d
    k = tl.load(k_ptr + token * stride_kt + head * stride_kh + d, mask=mask)
    v = tl.load(v_ptr + token * stride_vt + head * stride_vh + d, mask=mask)
    tl.store(k_cache_ptr + target, k, mask=mask)
    tl.store(v_cache_ptr + target, v, mask=mask)


@triton.jit
def paged_attention_kernel(
    q_ptr,  # [T, Hq, D]
    k_cache_ptr, v_cache_ptr,  # [num_blocks, BLOCK_SIZE, Hkv, D]
    out_ptr,  # [T, Hq, D]
    block_tables_ptr,  # [S, max_blocks] int32
    q_start_ptr, q_len_ptr, context_len_ptr,  # [S] int32 each
    stride_qt, stride_qh, stride_ot, stride_oh,
    stride_cb, stride_cs, stride_ch,
    stride_bt,
    scale, window,  # window: keys a query sees counting itself; a huge number when there is none
    softcap,  # Gemma 2: scores s become softcap * tanh(s / softcap) (only when SOFTCAP)
    BLOCK_SIZE: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_FP32: tl.constexpr,
    SOFTCAP: tl.constexpr,
):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    tile = tl.program_id(2)
    q_start = tl.load(q_start_ptr + seq)
    q_len = tl.load(q_len_ptr + seq)
    context_len = tl.load(context_len_ptr + seq)
    kv_head = head // GROUP

    rows = tile * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M] query index in the sequence
    row_live = rows < q_len
    positions = context_len - q_len + rows  # [BLOCK_M]
    d = tl.arange(0, BLOCK_D)
    d_live = d < HEAD_DIM
    q = tl.load(q_ptr + (q_start + rows)[:, None] * stride_qt + head * stride_qh + d[None, :],
                mask=row_live[:, None] & d_live[None, :], other=0.0)  # [BLOCK_M, BLOCK_D]
    if DOT_FP32:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    last_row = tl.minimum((tile + 1) * BLOCK_M, q_len) - 1
    hi = tl.where(tile * BLOCK_M < q_len, context_len - q_len + last_row + 1, 0)
    lo = tl.maximum(context_len - q_len + tile * BLOCK_M - window + 1, 0)
    lo = (lo // BLOCK_N) * BLOCK_N
    for start in range(lo, hi, BLOCK_N):
        keys = start + tl.arange(0, BLOCK_N)  # [BLOCK_N] key positions
        key_live = keys < context_len
        block = tl.load(block_tables_ptr + seq * stride_bt + keys // BLOCK_SIZE, mask=key_live, other=0)
        offsets = block * stride_cb + (keys % BLOCK_SIZE) * stride_cs + kv_head * stride_ch  # [BLOCK_N]
        kv_mask = key_live[:, None] & d_live[None, :]
        k = tl.load(k_cache_ptr + offsets[:, None] + d[None, :], mask=kv_mask, other=0.0)  # [BLOCK_N, BLOCK_D]
        v = tl.load(v_cache_ptr + offsets[:, None] + d[None, :], mask=kv_mask, other=0.0)  # [BLOCK_N, BLOCK_D]
        if DOT_FP32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        scores = tl.dot(q, tl.trans(k)) * scale  # [BLOCK_M, BLOCK_N] fp32
        if SOFTCAP:  # tanh(x) = 1 - 2 / (exp(2x) + 1): exact at both ends, where exp over- or underflows
            scores = softcap * (1.0 - 2.0 / (tl.exp(2.0 * scores / softcap) + 1.0))
        distance = positions[:, None] - keys[None, :]
        allowed = key_live[None, :] & (distance >= 0) & (distance < window)
        scores = tl.where(allowed, scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with nothing visible yet
        p = tl.exp(scores - m_safe[:, None])  # [BLOCK_M, BLOCK_N]
        alpha = tl.exp(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(out_ptr + (q_start + rows)[:, None] * stride_ot + head * stride_oh + d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=row_live[:, None] & d_live[None, :])
